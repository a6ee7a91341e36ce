"""Where the API keeps its files, and its limits; read from the environment by default.

| variable | default | what |
| --- | --- | --- |
| ``DA_SOURCES_FILE`` | ``./sources.yaml`` | the sources file (shared with the CLI and Dagster) |
| ``DA_API_KEYS_FILE`` | ``api-keys.json`` beside the sources file | hashed API keys |
| ``DA_API_AUDIT_LOG`` | ``api-audit.jsonl`` beside the sources file | the audit log |
| ``DA_WORKSPACE`` | ``./workspace`` | base folder of fetch workspaces |
| ``DA_API_MAX_ITEM_BYTES`` | 100 MiB | largest item a fetch or preview reads (``metadata.api.max_item_bytes``) |
| ``DA_API_PREVIEW_MAX_ROWS`` | 1000 | most rows a preview returns |
| ``DA_API_THREAD_MAX_ROWS`` | 5000000 | most rows one table or query attached to a thread may have |
| ``DA_API_THREAD_MAX_BYTES`` | 1 GiB | most bytes (planner's estimate) of one table or query attached to a thread |
| ``DA_API_CACHE_SECONDS`` | 60 | how long listings and metadata are cached per source |
| ``DA_API_MAX_JOBS`` / ``DA_API_MAX_JOBS_PER_SOURCE`` | 16 / 4 | fetch jobs running at once |
| ``DA_API_TIMEOUT_SECONDS`` | 60 | longest wait on a source within a request |
| ``DA_API_IDLE_SECONDS`` | 300 | a source's pooled connections are closed after this long unused |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from connectors.errors import ConfigurationError
from connectors.ids import SOURCE_ID_RULE, is_valid_source_id
from connectors.registry import sources_file_path
from connectors.rows import RowBudget

KEYS_FILE_ENV = "DA_API_KEYS_FILE"  # default: api-keys.json beside the sources file
AUDIT_LOG_ENV = "DA_API_AUDIT_LOG"
WORKSPACE_ENV = "DA_WORKSPACE"
MIB = 1 << 20

def _check_id(value: str, what: str = "id") -> str:
    """``value`` when it follows the one id rule of :mod:`connectors.ids` (source ids and workspace names)."""
    if not is_valid_source_id(value):
        raise ConfigurationError(f"{what} breaks the rule: {SOURCE_ID_RULE}")
    return value


@dataclass(frozen=True)
class ApiSettings:
    """Paths and limits of one API instance."""

    sources_file: Path
    keys_file: Path
    audit_log: Path
    workspace_base: Path
    max_item_bytes: int = 100 * MIB
    thread_max_rows: int = 5_000_000
    thread_max_bytes: int = 1024 * MIB
    preview_rows: int = 10
    preview_max_rows: int = 1000
    cache_seconds: float = 60.0
    max_jobs: int = 16
    max_jobs_per_source: int = 4
    timeout_seconds: float = 60.0
    idle_seconds: float = 300.0  # the next request reconnects: a little latency against held server sessions

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiSettings:
        """Settings from the environment (see the module table); ``overrides`` win."""
        env = os.environ
        sources = sources_file_path(overrides.pop("sources_file", None)).absolute()
        settings = cls(
            sources_file=sources,
            keys_file=Path(env.get(KEYS_FILE_ENV) or sources.with_name("api-keys.json")).absolute(),
            audit_log=Path(env.get(AUDIT_LOG_ENV) or sources.with_name("api-audit.jsonl")).absolute(),
            workspace_base=Path(env.get(WORKSPACE_ENV) or "workspace").absolute(),
            max_item_bytes=_number(env, "DA_API_MAX_ITEM_BYTES", 100 * MIB),
            preview_max_rows=_number(env, "DA_API_PREVIEW_MAX_ROWS", 1000),
            thread_max_rows=_number(env, "DA_API_THREAD_MAX_ROWS", 5_000_000),
            thread_max_bytes=_number(env, "DA_API_THREAD_MAX_BYTES", 1024 * MIB),
            cache_seconds=float(_number(env, "DA_API_CACHE_SECONDS", 60)),
            max_jobs=_number(env, "DA_API_MAX_JOBS", 16),
            max_jobs_per_source=_number(env, "DA_API_MAX_JOBS_PER_SOURCE", 4),
            timeout_seconds=float(_number(env, "DA_API_TIMEOUT_SECONDS", 60)),
            idle_seconds=float(_number(env, "DA_API_IDLE_SECONDS", 300)),
        )
        paths = {k: Path(v).absolute() if isinstance(v, str) else v for k, v in overrides.items()}
        return replace(settings, **paths)  # type: ignore[arg-type]

    def thread_budget(self) -> RowBudget:
        """The row and byte budget of one table or query attached to a thread (operator settings)."""
        return RowBudget(max_rows=self.thread_max_rows, max_bytes=self.thread_max_bytes)

    def item_limit(self, source_metadata: Mapping[str, Any]) -> int:
        """The largest item of a source: ``metadata.api.max_item_bytes`` when set, else the global one."""
        api = source_metadata.get("api")
        value = api.get("max_item_bytes") if isinstance(api, Mapping) else None
        return int(value) if isinstance(value, int) and value > 0 else self.max_item_bytes


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"${name} must be a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigurationError(f"${name} must be positive")
    return value
