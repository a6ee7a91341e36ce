"""The persistent registry of configured sources (the sources file), and connector types.

:class:`SourceRegistry` reads and writes the sources file and hands out one
connected connector per source. The connector-type functions
(:func:`register_connector`, :func:`get_connector_class`, ...) live in
:mod:`connectors.plugins` and are re-exported here, their documented home.

Example:
    >>> registry = SourceRegistry("sources.yaml")
    >>> registry.add({"id": "sample", "type": "local_file", "name": "Sample", "config": {"root": "data"}})
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import yaml

from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import ConfigurationError, NotFoundError
from connectors.plugins import (
    ENTRY_POINT_GROUP,
    get_connector_class,
    known_type_names,
    register_connector,
    settings_model_for,
    type_name_of,
    unregister_connector,
)
from connectors.secrets.references import Secret, get_logger
from connectors.secrets.store import atomic_write, file_lock

__all__ = [
    "DEFAULT_SOURCES_FILE",
    "ENTRY_POINT_GROUP",
    "SOURCES_FILE_ENV",
    "SourceRegistry",
    "get_connector_class",
    "known_type_names",
    "load_sources_file",
    "register_connector",
    "settings_model_for",
    "source_to_dict",
    "sources_file_path",
    "type_name_of",
    "unregister_connector",
]

log = get_logger(__name__)

# --- the sources file ---------------------------------------------------------

SOURCES_FILE_ENV = "DA_SOURCES_FILE"
DEFAULT_SOURCES_FILE = "sources.yaml"


def sources_file_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The sources file: ``path``, else ``$DA_SOURCES_FILE``, else ``./sources.yaml``."""
    return Path(path or os.environ.get(SOURCES_FILE_ENV) or DEFAULT_SOURCES_FILE)


def load_sources_file(path: str | os.PathLike[str]) -> list[DataSourceConfig]:
    """Parse and validate a sources file (``sources: [...]``).

    Raises:
        ConfigurationError: unreadable YAML, a wrong shape, a duplicate id, or a
            bad source (the message names the source and the field).
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read sources file {str(path)!r}: {exc}") from None
    return _parse_sources(text, path)[1]


def _parse_sources(
    text: str, path: str | os.PathLike[str]
) -> tuple[list[dict[str, Any]], list[DataSourceConfig]]:
    """The raw entries of a sources file and their validated configs."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"cannot read sources file {str(path)!r}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("sources", []), list):
        raise ConfigurationError(f"{str(path)!r}: expected a mapping with a 'sources' list")
    unknown = set(document) - {"sources"}
    if unknown:
        raise ConfigurationError(f"{str(path)!r}: unknown top-level keys {sorted(unknown)}")
    raw: list[dict[str, Any]] = list(document.get("sources") or [])
    sources = [DataSourceConfig.from_dict(entry) for entry in raw]
    seen: set[str] = set()
    for source in sources:
        if source.id in seen:
            raise ConfigurationError(f"{str(path)!r}: source id {source.id!r} appears twice")
        seen.add(source.id)
    return raw, sources


def source_to_dict(source: DataSourceConfig) -> dict[str, Any]:
    """The sources-file entry of ``source``: references stay references.

    Raises:
        ConfigurationError: a secret field holds a literal value; only
            ``{env: NAME}`` / ``{secret: NAME}`` references are ever written.
    """
    literal = sorted(key for key, value in source.config.items() if isinstance(value, Secret))
    if literal:
        raise ConfigurationError(
            f"config.{literal[0]}: a literal secret is never written to the sources file; give it "
            "as {env: NAME} or {secret: NAME} (store it with 'da-sources secrets set NAME')",
            source_id=source.id,
        )
    entry: dict[str, Any] = {"id": source.id, "type": source.type_name, "name": source.name}
    entry["config"] = copy.deepcopy(source.config)
    entry["created_at"] = source.created_at
    if source.metadata:
        entry["metadata"] = copy.deepcopy(source.metadata)
    return entry


class SourceRegistry:
    """The sources file as a persistent registry, and a pool of connected connectors.

    Every change re-reads the file under an exclusive ``flock`` on
    ``<file>.lock``, validates the whole result and replaces the file
    atomically, so two processes changing it at once both land and a reader
    never sees half a file. Entries are kept as written (references stay
    references); comments in the file are not preserved.

    :meth:`connector` hands out one connector per source id, connected once and
    shared (with its client or pool) by every caller in this process until
    :meth:`aclose`; :meth:`create_connector` makes a private, unconnected one.

    Example:
        >>> async with SourceRegistry("sources.yaml") as registry:
        ...     registry.add({"id": "docs", "type": "local_file", "name": "Docs",
        ...                   "config": {"root": "/srv/docs"}})
        ...     docs = await registry.connector("docs")
        ...     items = await docs.list_items()
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = sources_file_path(path).absolute()
        self._pool: dict[str, DataSourceConnector] = {}
        self._retired: builtins.list[DataSourceConnector] = []
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"SourceRegistry({str(self.path)!r}, pooled={sorted(self._pool)})"

    # --- reading -------------------------------------------------------------

    def list(self) -> builtins.list[DataSourceConfig]:
        """Every configured source, in file order (none when the file does not exist)."""
        return self._read()[1]

    def get(self, source_id: str) -> DataSourceConfig:
        """The source ``source_id``.

        Raises:
            NotFoundError: no such source (the message lists the known ids).
        """
        sources = self.list()
        for source in sources:
            if source.id == source_id:
                return source
        raise _unknown_source(source_id, sources, self.path)

    def _read(self) -> tuple[builtins.list[dict[str, Any]], builtins.list[DataSourceConfig]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            raise ConfigurationError(f"cannot read sources file {str(self.path)!r}: {exc}") from None
        return _parse_sources(text, self.path)

    # --- changing ------------------------------------------------------------

    def add(self, source: DataSourceConfig | Mapping[str, Any]) -> DataSourceConfig:
        """Validate ``source`` and append it to the file.

        Raises:
            ConfigurationError: invalid, a literal secret, or the id is taken.
        """
        config = _as_config(source)
        entry = source_to_dict(config)
        with self._changing() as raw:
            if any(existing.get("id") == config.id for existing in raw):
                raise ConfigurationError(f"source id {config.id!r} is taken", source_id=config.id)
            raw.append(entry)
        return config

    def update(
        self,
        source_id: str,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DataSourceConfig:
        """Change a source: ``config`` and ``metadata`` keys are merged, a None value removes a key.

        The pooled connector of the source, if any, is retired: the next
        :meth:`connector` call connects with the new settings.
        """
        with self._changing() as raw:
            index = _index_of(raw, source_id, self.path)
            entry = copy.deepcopy(raw[index])
            if name is not None:
                entry["name"] = name
            entry["config"] = _merged(entry.get("config") or {}, config)
            if metadata is not None:
                entry["metadata"] = _merged(entry.get("metadata") or {}, metadata)
            updated = _as_config(entry)
            raw[index] = source_to_dict(updated)
        self._retire(source_id)
        return updated

    def remove(self, source_id: str) -> DataSourceConfig:
        """Delete a source from the file; returns what it was."""
        with self._changing() as raw:
            index = _index_of(raw, source_id, self.path)
            removed = _as_config(raw.pop(index))
        self._retire(source_id)
        return removed

    @contextlib.contextmanager
    def _changing(self) -> Iterator[builtins.list[dict[str, Any]]]:
        """The raw entries, under the file lock; written back atomically when the block succeeds."""
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            raw, _ = self._read()
            yield raw
            _parse_sources(yaml.safe_dump({"sources": raw}), self.path)  # the whole file stays valid
            text = yaml.safe_dump({"sources": raw}, sort_keys=False, allow_unicode=True)
            atomic_write(self.path, text.encode(), mode=_file_mode(self.path))

    # --- connectors ----------------------------------------------------------

    def create_connector(self, source_id: str) -> DataSourceConnector:
        """A new, unconnected connector for ``source_id``, owned by the caller."""
        source = self.get(source_id)
        return get_connector_class(source.type_name)(source)

    async def connector(self, source_id: str) -> DataSourceConnector:
        """The shared connector of ``source_id``, connected on first use and reused.

        Do not ``disconnect`` it or use it in ``async with``: the registry closes
        it in :meth:`aclose`.
        """
        lock = self._locks.setdefault(source_id, asyncio.Lock())
        async with lock:
            connector = self._pool.get(source_id)
            if connector is None:
                connector = self.create_connector(source_id)
            if not connector.is_connected:
                await connector.connect()
            self._pool[source_id] = connector
        return connector

    def _retire(self, source_id: str) -> None:
        connector = self._pool.pop(source_id, None)
        if connector is not None:
            self._retired.append(connector)

    async def aclose(self) -> None:
        """Disconnect every connector this registry handed out; safe to call twice."""
        connectors = [*self._pool.values(), *self._retired]
        self._pool.clear()
        self._retired.clear()
        errors = await asyncio.gather(*(c.disconnect() for c in connectors), return_exceptions=True)
        for connector, error in zip(connectors, errors, strict=True):
            if isinstance(error, BaseException):
                log.warning("source %s: disconnect failed: %s", connector.source_id, error)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _as_config(source: DataSourceConfig | Mapping[str, Any]) -> DataSourceConfig:
    if isinstance(source, DataSourceConfig):
        return source
    return DataSourceConfig.from_dict(dict(source))


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for key, value in (changes or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _index_of(raw: list[dict[str, Any]], source_id: str, path: Path) -> int:
    for index, entry in enumerate(raw):
        if entry.get("id") == source_id:
            return index
    raise _unknown_source(source_id, [], path, known=[str(e.get("id")) for e in raw])


def _unknown_source(
    source_id: str, sources: list[DataSourceConfig], path: Path, known: list[str] | None = None
) -> NotFoundError:
    ids = known if known is not None else [s.id for s in sources]
    listed = ", ".join(ids) if ids else "none"
    return NotFoundError(f"no source {source_id!r} in {str(path)!r} (known: {listed})")


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644
