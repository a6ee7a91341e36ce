"""Where the API keeps its files, and its limits; read from the environment by default.

Each field's docstring says what it bounds (the generated settings reference shows them with their
defaults). A limit names its ``DA_*`` variable once, and its default is that variable's in the
registry (:mod:`connectors.environment`): :meth:`ApiSettings.from_env` reads the variables that are
set, and every other field keeps its default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from connectors.api.policy import ApiPolicy, policy_file_path
from connectors.environment import default_number, read
from connectors.errors import ConfigurationError
from connectors.ids import MAX_SOURCE_ID_LENGTH, SOURCE_ID_RULE, is_valid_source_id
from connectors.registry import sources_file_path
from connectors.rows import RowBudget

KEYS_FILE_ENV = "DA_API_KEYS_FILE"  # default: api-keys.json beside the sources file
AUDIT_LOG_ENV = "DA_API_AUDIT_LOG"
WORKSPACE_ENV = "DA_WORKSPACE"
CORS_ORIGINS_ENV = "DA_API_CORS_ORIGINS"
STATE_DIR_ENV = "DA_STATE_DIR"  # as connectors.threads.records (not imported: the key commands stay light)
STATE_FOLDER = "da-sources-state"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
JOBS_DIR_ENV = "DA_API_JOBS_DIR"
JOBS_DIR_NAME = ".fetch-jobs"
MIB = 1 << 20
VARIABLE = "variable"  # a limit field's metadata key: the DA_* variable that sets it


def _check_id(value: str, what: str = "id") -> str:
    """``value`` when it follows the one id rule of :mod:`connectors.ids` (source ids and workspace names)."""
    if not is_valid_source_id(value):
        rule = SOURCE_ID_RULE if "id" in what else (
            f"a {what} name is 1 to {MAX_SOURCE_ID_LENGTH} characters: ASCII letters, digits, '-' and '_', "
            "starting with a letter (e.g. thread-3f9d); it is one folder under the workspace base, never a path")
        raise ConfigurationError(f"{what} breaks the rule: {rule}")
    return value


def _limit(variable: str) -> int:
    """A limit field set by ``variable``, with its default from the registry (:mod:`connectors.environment`)."""
    return field(default=default_number(variable), metadata={VARIABLE: variable})


def _seconds(variable: str) -> float:
    """A duration field in seconds set by ``variable``, with its default from the registry."""
    return field(default=float(default_number(variable)), metadata={VARIABLE: variable})


@dataclass(frozen=True)
class ApiSettings:
    """Paths and limits of one API instance.

    Each field's docstring is its meaning on the generated settings reference (``docs/_gen/reference.py``).
    A limit (``_limit("DA_API_MAX_JOBS")``) takes its default from that variable's entry in
    :data:`connectors.environment.VARIABLES`, the one place the number is written.
    """

    sources_file: Path
    """The sources file, shared with the CLI and Dagster (``DA_SOURCES_FILE``, default ``./sources.yaml``)."""
    keys_file: Path
    """The API keys, stored hashed (mode 0600); default ``api-keys.json`` beside the sources file."""
    audit_log: Path
    """The audit log, a JSON line per change, data read or refusal; default ``api-audit.jsonl`` beside the
    sources file."""
    workspace_base: Path
    """The base folder of the thread folders, ``<base>/<thread_id>`` (``DA_WORKSPACE``, default ``./workspace``)."""
    max_item_bytes: int = _limit("DA_API_MAX_ITEM_BYTES")
    """The largest item a fetch, preview or attach reads, in bytes (413 past it); ``metadata.api.max_item_bytes``
    of a source, set by the operator, replaces it for that source."""
    thread_max_rows: int = _limit("DA_API_THREAD_MAX_ROWS")
    """Most rows of one table or query attached to a thread (413 past it)."""
    thread_max_bytes: int = _limit("DA_API_THREAD_MAX_BYTES")
    """Most bytes (the database planner's estimate) of one table or query attached to a thread (413 past it)."""
    preview_rows: int = 10
    """Rows a preview returns when the request gives no ``limit`` (at most ``preview_max_rows``)."""
    preview_max_rows: int = _limit("DA_API_PREVIEW_MAX_ROWS")
    """Most rows a preview returns (413 past it)."""
    cache_seconds: float = _seconds("DA_API_CACHE_SECONDS")
    """How long listings and metadata are cached per source, in seconds; a change of the source drops them."""
    max_jobs: int = _limit("DA_API_MAX_JOBS")
    """Fetch jobs running at once, in all (429 past it)."""
    max_jobs_per_source: int = _limit("DA_API_MAX_JOBS_PER_SOURCE")
    """Fetch jobs of one source running at once (429 past it)."""
    timeout_seconds: float = _seconds("DA_API_TIMEOUT_SECONDS")
    """Longest wait on a source within a request, in seconds (504 past it)."""
    idle_seconds: float = _seconds("DA_API_IDLE_SECONDS")
    """A source's pooled connections close after this many seconds unused; the next request reconnects
    (a little latency, against sessions held open on the source's server)."""
    policy: ApiPolicy = field(default_factory=ApiPolicy)
    """The operator's policy (``api-policy.yaml``): what callers may create and reach; callers never change it."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins ``da-sources serve`` answers, preflights included; none by default."""
    state_dir: Path | None = None
    """Our records of threads; None: ``DA_STATE_DIR``, else ``da-sources-state`` beside the sources file."""
    jobs_dir: Path | None = None
    """Where fetch jobs land; None: ``<workspace_base>/.fetch-jobs`` (a name no thread id has: those start
    with a letter or digit)."""
    max_body_bytes: int = _limit("DA_API_MAX_BODY_BYTES")
    """The largest request body, in bytes, counted while it is read (413 past it)."""
    preview_max_bytes: int = _limit("DA_API_PREVIEW_MAX_BYTES")
    """The largest preview answer, in bytes, whatever its row count (413 past it)."""
    keep_jobs: int = _limit("DA_API_KEEP_JOBS")
    """Finished jobs remembered at most; the oldest are forgotten first."""
    keep_jobs_bytes: int = _limit("DA_API_KEEP_JOBS_BYTES")
    """The size of the finished jobs' answers remembered at most, in bytes; the oldest are forgotten first."""
    max_connections: int = _limit("DA_API_MAX_CONNECTIONS")
    """``da-sources serve``: open connections at most; one more closes the oldest one not sending a request."""
    header_timeout_seconds: float = _seconds("DA_API_HEADER_TIMEOUT_SECONDS")
    """``da-sources serve``: seconds for a request's headers, from the connection opening or its first byte."""
    body_timeout_seconds: float = _seconds("DA_API_BODY_TIMEOUT_SECONDS")
    """``da-sources serve``: seconds for a request's body, once its headers are in."""

    def __post_init__(self) -> None:
        jobs, threads = self.jobs_base.absolute(), self.workspace_base.absolute()
        # a job must never write into a thread's folder: <base>/<thread id>, or the base itself
        inside = jobs.relative_to(threads).parts if jobs.is_relative_to(threads) else None
        if threads.is_relative_to(jobs) or (inside and inside[0][:1].isalnum()):
            raise ConfigurationError(f"${JOBS_DIR_ENV} must not be the workspace base, above it, or in a thread's "
                                     "folder (a folder of the base whose name starts with a letter or digit)")

    @property
    def jobs_base(self) -> Path:
        """Where fetch jobs land (``<jobs_base>/<workspace>``): never a thread's folder."""
        return self.jobs_dir if self.jobs_dir is not None else self.workspace_base / JOBS_DIR_NAME

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiSettings:
        """Settings from the ``DA_*`` variables, with their defaults where unset.

        Args:
            **overrides: fields to set instead (e.g. ``sources_file``, ``workspace_base``); a path given
                as text is made absolute.

        Returns:
            The settings, the operator's policy file read.

        Raises:
            ConfigurationError: a variable is not a positive whole number, a CORS origin is malformed,
                the policy file is unreadable, or the jobs folder would overlap the thread folders.
        """
        env = os.environ
        sources = sources_file_path(overrides.pop("sources_file", None)).absolute()
        settings = cls(
            sources_file=sources,
            keys_file=Path(read(KEYS_FILE_ENV, env) or sources.with_name("api-keys.json")).absolute(),
            audit_log=Path(read(AUDIT_LOG_ENV, env) or sources.with_name("api-audit.jsonl")).absolute(),
            workspace_base=Path(read(WORKSPACE_ENV, env) or "workspace").absolute(),
            **_limits(env),
            policy=ApiPolicy.load(policy_file_path(sources)),
            cors_origins=cors_origins((read(CORS_ORIGINS_ENV, env) or "").split(",")),
            jobs_dir=Path(jobs_dir).absolute() if (jobs_dir := read(JOBS_DIR_ENV, env)) else None,
        )
        paths = {k: Path(v).absolute() if isinstance(v, str) else v for k, v in overrides.items()}
        return replace(settings, **paths)  # type: ignore[arg-type]

    def thread_budget(self) -> RowBudget:
        """The row and byte budget of one table or query attached to a thread (operator settings).

        Returns:
            ``thread_max_rows`` and ``thread_max_bytes`` as a budget.
        """
        return RowBudget(max_rows=self.thread_max_rows, max_bytes=self.thread_max_bytes)

    @property
    def thread_state_dir(self) -> Path:
        """Where our records of threads live: ``state_dir``, else ``$DA_STATE_DIR``, else beside the sources file."""
        if self.state_dir is not None:
            return self.state_dir
        configured = read(STATE_DIR_ENV)
        return Path(configured).absolute() if configured else self.sources_file.with_name(STATE_FOLDER)

    def item_limit(self, source_metadata: Mapping[str, Any]) -> int:
        """The largest item a fetch, preview or attach of a source may land, in bytes.

        Args:
            source_metadata: the source's ``metadata``; ``api.max_item_bytes`` there is the operator's own cap.

        Returns:
            That cap when it is a positive whole number, else ``max_item_bytes``.
        """
        api = source_metadata.get("api")
        value = api.get("max_item_bytes") if isinstance(api, Mapping) else None
        return int(value) if isinstance(value, int) and value > 0 else self.max_item_bytes


def cors_origins(values: Iterable[str]) -> tuple[str, ...]:
    """Allowed browser origins, each ``http(s)://host[:port]`` (blanks skipped, duplicates dropped).

    Args:
        values: origins as given (``--cors-origin``, or ``DA_API_CORS_ORIGINS`` split on commas).

    Returns:
        The origins, a trailing ``/`` removed, in the order first given.

    Raises:
        ConfigurationError: ``*`` or anything that is not one origin (a path, a wildcard, no scheme).
    """
    origins: list[str] = []
    for value in (v.strip().rstrip("/") for v in values):
        if not value:
            continue
        if not _ORIGIN.fullmatch(value):
            raise ConfigurationError(f"CORS origin {value[:100]!r}: give origins as scheme://host[:port], e.g. "
                                     "https://ui.example.com (no wildcard, no path)")
        if value not in origins:
            origins.append(value)
    return tuple(origins)


def _limits(env: Mapping[str, str]) -> dict[str, Any]:
    """The limit fields whose variable is set in ``env``, as their field's type (the others keep their default)."""
    return {f.name: (float if isinstance(f.default, float) else int)(_number(text, name)) for f in fields(ApiSettings)
            if (name := f.metadata.get(VARIABLE)) and (text := read(name, env))}


def _number(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"${name} must be a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigurationError(f"${name} must be positive")
    return value
