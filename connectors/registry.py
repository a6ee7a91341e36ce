"""The persistent registry of configured sources: the sources file.

:class:`SourceRegistry` reads and writes the sources file and hands out one
connected connector per source. Reading, validating, writing and locking the
one sources file belong together, so this module is long on purpose. Connector
*types* are apart: :mod:`connectors.plugins` (``register_connector``,
``get_connector_class``) over :mod:`connectors.type_table`.

Example:
    >>> registry = SourceRegistry("sources.yaml")
    >>> registry.add({"id": "sample", "type": "local_file", "name": "Sample", "config": {"root": "data"}})
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

from connectors import plugins, type_table
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.deprecation import moved_names
from connectors.entry_checks import check_entry
from connectors.environment import read
from connectors.errors import ConfigurationError, NotFoundError
from connectors.ids import check_distinct, check_source_id, is_valid_source_id, shown
from connectors.secrets.references import get_logger
from connectors.secrets.store import atomic_write, file_lock
from connectors.settings import literal_secrets

__all__ = [
    "DEFAULT_SOURCES_FILE",
    "SAMPLE_DATA_DIR",
    "SAMPLE_ONLY_ENV",
    "SAMPLE_SOURCE_ID",
    "SOURCES_FILE_ENV",
    "InvalidSource",
    "SourceRegistry",
    "SourcesFile",
    "embedded_sample",
    "load_sources_file",
    "read_sources_file",
    "source_to_dict",
    "sources_file_named",
    "sources_file_path",
]

log = get_logger(__name__)

# Connector-type names this module used to re-export: importable from here for one more release.
__getattr__ = moved_names(__name__, {
    "ENTRY_POINT_GROUP": "connectors.type_table",
    "get_connector_class": "connectors.plugins",
    "known_type_names": "connectors.type_table",
    "register_connector": "connectors.plugins",
    "settings_model_for": "connectors.type_table",
    "type_name_of": "connectors.type_table",
    "unregister_connector": "connectors.plugins",
})

# --- the sources file ---------------------------------------------------------

SOURCES_FILE_ENV = "DA_SOURCES_FILE"
DEFAULT_SOURCES_FILE = "sources.yaml"


SAMPLE_SOURCE_ID = "sample"
SAMPLE_ONLY_ENV = "DA_SAMPLE_ONLY"  # "1": serve the embedded sample alone (scripts/run-sample)
# sample_data/ sits beside the packages in the repository (an editable install keeps it there)
SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def sources_file_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The sources file: ``path``, else ``$DA_SOURCES_FILE``, else ``./sources.yaml``.

    Args:
        path: a sources file given explicitly (``--sources``), or None.

    Returns:
        The path, not checked to exist.
    """
    return Path(path or read(SOURCES_FILE_ENV) or DEFAULT_SOURCES_FILE)


def sources_file_named(path: str | os.PathLike[str] | None = None) -> bool:
    """Whether the sources file was chosen (``path`` or ``$DA_SOURCES_FILE``), not the default.

    Args:
        path: a sources file given explicitly, or None.

    Returns:
        True when ``path`` or ``$DA_SOURCES_FILE`` is set.
    """
    return bool(path or read(SOURCES_FILE_ENV))


def embedded_sample() -> DataSourceConfig:
    """The embedded default source ``sample``: the small CSV and Parquet files of ``sample_data/``.

    It is served (by Dagster and ``da-sources``) when no sources file was named
    and ``./sources.yaml`` does not exist.

    Returns:
        A ``local_file`` source named ``sample`` rooted at ``sample_data/``.
    """
    return DataSourceConfig(
        id=SAMPLE_SOURCE_ID,
        type="local_file",
        name="Sample data (embedded)",
        config={"root": str(SAMPLE_DATA_DIR)},
        metadata={"embedded": True},
    )


def load_sources_file(path: str | os.PathLike[str]) -> list[DataSourceConfig]:
    """Parse and validate a sources file (``sources: [...]``), all or nothing.

    Args:
        path: the sources file.

    Returns:
        Every source of the file, in its order.

    Raises:
        ConfigurationError: unreadable YAML, a wrong shape, or a bad source (the
            first one: a bad field, a bad id, an id taken or colliding).
    """
    loaded = read_sources_file(path)
    if loaded.invalid:
        raise loaded.invalid[0].error
    return loaded.sources


def read_sources_file(path: str | os.PathLike[str]) -> SourcesFile:
    """Parse a sources file, keeping the valid sources and setting the invalid ones apart.

    One bad entry makes that entry invalid, not the file: the others are served.

    Args:
        path: the sources file.

    Returns:
        The valid sources and the invalid entries with their errors.

    Raises:
        ConfigurationError: the file does not exist, cannot be read, or is not ``sources: [...]``.
    """
    text = _read_text(Path(path))
    if text is None:
        raise ConfigurationError(f"sources file {str(path)!r} does not exist")
    return _parse_sources(text, path)[1]


@dataclass(frozen=True)
class InvalidSource:
    """An entry of the sources file that cannot be served, and why."""

    position: int  # 1-based, in file order
    id: str | None  # the entry's id when it is a string (may break the rule: show it with ``shown``)
    error: ConfigurationError


@dataclass(frozen=True)
class SourcesFile:
    """The sources of a sources file: the valid ones, and the invalid entries with their errors."""

    sources: list[DataSourceConfig] = field(default_factory=list)
    invalid: list[InvalidSource] = field(default_factory=list)
    embedded: bool = False  # True when this is the embedded sample (no sources file)
    positions: list[int] = field(default_factory=list)  # per valid source, its 1-based entry in the file


def _read_text(path: Path) -> str | None:
    """The file's text; None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(f"cannot read sources file {str(path)!r}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"sources file {str(path)!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _parse_sources(text: str | None, path: str | os.PathLike[str]) -> tuple[list[Any], SourcesFile]:
    """The raw entries of a sources file, and what they validate to."""
    if text is None:
        return [], SourcesFile()
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"cannot read sources file {str(path)!r}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("sources", []), list):
        raise ConfigurationError(f"{str(path)!r}: expected a mapping with a 'sources' list")
    unknown = set(document) - {"sources"}
    if unknown:
        raise ConfigurationError(f"{str(path)!r}: unknown top-level keys {sorted(unknown)}")
    raw: list[Any] = list(document.get("sources") or [])
    return raw, _validate_entries(raw, path)


def _validate_entries(raw: list[Any], path: str | os.PathLike[str]) -> SourcesFile:
    # an earlier entry keeps its id (and its Dagster name) even when it is invalid itself, so
    # fixing it later never silently takes the name from a source that is being served
    loaded = SourcesFile()
    earlier: list[str] = []
    for position, entry in enumerate(raw, start=1):
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        entry_id = entry_id if isinstance(entry_id, str) else None
        try:
            source = _anchored(check_entry(DataSourceConfig.from_dict(entry)), path)
            if source.id in earlier:
                raise ConfigurationError(f"{str(path)!r}: source id {source.id!r} appears twice")
            check_distinct(source.id, earlier)
            loaded.sources.append(source)
            loaded.positions.append(position)
        except ConfigurationError as exc:
            loaded.invalid.append(InvalidSource(position, entry_id, exc))
        if entry_id is not None:
            earlier.append(entry_id)
    return loaded


def _anchored(source: DataSourceConfig, sources_file: str | os.PathLike[str]) -> DataSourceConfig:
    """A ``local_file`` root written relative in the file is relative to the file's folder.

    Not to the folder the CLI, the API or Dagster happens to run in: the same
    entry must mean the same folder to all of them.
    """
    root = source.config.get("root")
    if source.type_name == "local_file" and isinstance(root, str) and root and not os.path.isabs(root):
        folder = os.path.dirname(os.path.abspath(sources_file))
        source.config["root"] = os.path.normpath(os.path.join(folder, root))
    return source


def source_to_dict(source: DataSourceConfig) -> dict[str, Any]:
    """The sources-file entry of ``source``: references stay references.

    Args:
        source: a complete source.

    Returns:
        The mapping written under ``sources:`` for it.

    Raises:
        ConfigurationError: the config is incomplete (a required field missing), or a secret field
            holds a literal value; only ``{env: NAME}`` / ``{secret: NAME}`` references are ever written.
    """
    source.check_complete()
    literal = literal_secrets(type_table.settings_model_for(source.type_name), source.config)
    if literal:
        raise ConfigurationError(
            f"{next(iter(literal.values()))}: a literal secret is never written to the sources file; give it "
            "as {env: NAME} or {secret: NAME} (store it with 'da-sources secrets set NAME')",
            source_id=source.id,
        )
    check_entry(source)
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

    def __init__(self, path: str | os.PathLike[str] | None = None, *, embedded_sample: bool = False) -> None:
        self.path = sources_file_path(path).absolute()
        # the sample stands in for a missing default file only, as in the Dagster code location
        self._with_sample = embedded_sample
        self._named = sources_file_named(path)
        self._pool: dict[str, DataSourceConnector] = {}
        self._retired: builtins.list[DataSourceConnector] = []
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"SourceRegistry({str(self.path)!r}, pooled={sorted(self._pool)})"

    # --- reading -------------------------------------------------------------

    def list(self) -> builtins.list[DataSourceConfig]:
        """Every valid source, in file order (none when the file does not exist).

        Invalid entries are left out; :meth:`load` lists them with their errors.

        Returns:
            The sources' configs.
        """
        return self.load().sources

    def load(self) -> SourcesFile:
        """The valid sources and the invalid entries (with their errors), in file order.

        With ``embedded_sample=True``, no sources file named and no
        ``./sources.yaml`` (or ``$DA_SAMPLE_ONLY=1``): the embedded ``sample`` source.

        Returns:
            The file read: its valid sources, its invalid entries and whether the sample stands in.
        """
        if self._with_sample and read(SAMPLE_ONLY_ENV) == "1":
            return SourcesFile(sources=[embedded_sample()], embedded=True)
        text = _read_text(self.path)
        if text is None and self._with_sample and not self._named:
            return SourcesFile(sources=[embedded_sample()], embedded=True)
        return _parse_sources(text, self.path)[1]

    def get(self, source_id: str) -> DataSourceConfig:
        """The source ``source_id``.

        Args:
            source_id: a configured source's id.

        Returns:
            Its config, secrets still as references.

        Raises:
            InvalidSourceIdError: ``source_id`` breaks the id rule.
            ConfigurationError: the source's entry in the file is invalid (its error).
            NotFoundError: no such source (the message lists the known ids).
        """
        check_source_id(source_id)
        loaded = self.load()
        for source in loaded.sources:
            if source.id == source_id:
                return source
        for invalid in loaded.invalid:
            if invalid.id == source_id:
                raise invalid.error
        raise _unknown_source(source_id, loaded.sources, self.path)

    def _read(self) -> builtins.list[Any]:
        return _parse_sources(_read_text(self.path), self.path)[0]

    # --- changing ------------------------------------------------------------

    def add(self, source: DataSourceConfig | Mapping[str, Any]) -> DataSourceConfig:
        """Validate ``source`` and append it to the file.

        Args:
            source: a config, or its mapping form (``id``, ``type``, ``name``, ``config``, ``metadata``).

        Returns:
            The stored config (a local root made absolute).

        Raises:
            ConfigurationError: invalid, a literal secret, or the id is taken.
        """
        config = _absolute_root(_as_config(source))
        entry = source_to_dict(config)
        with self._changing() as raw:
            ids = [_entry_id(existing) for existing in raw]
            if config.id in ids:
                raise ConfigurationError(f"source id {config.id!r} is taken", source_id=config.id)
            check_distinct(config.id, ids)
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

        Args:
            source_id: the source to change.
            name: a new display name.
            config: keys to set (None values remove them).
            metadata: keys to set (None values remove them).

        Returns:
            The stored config.

        Raises:
            NotFoundError: no such source.
            ConfigurationError: the result is invalid (nothing is written).
        """
        with self._changing() as raw:
            index = _index_of(raw, source_id, self.path)
            entry = copy.deepcopy(raw[index])
            if name is not None:
                entry["name"] = name
            entry["config"] = _merged(entry.get("config") or {}, config)
            if metadata is not None:
                entry["metadata"] = _merged(entry.get("metadata") or {}, metadata)
            updated = _absolute_root(_as_config(entry))
            raw[index] = source_to_dict(updated)
        self._retire(source_id)
        return updated

    def remove(self, source_id: str) -> DataSourceConfig:
        """Delete a source from the file.

        Args:
            source_id: the source to delete.

        Returns:
            What it was.

        Raises:
            NotFoundError: no such source.
            ConfigurationError: the entry is invalid (nothing is removed; see :meth:`discard`).
        """
        with self._changing() as raw:
            index = _index_of(raw, source_id, self.path)
            removed = _as_config(raw.pop(index))
        self._retire(source_id)
        return removed

    def discard(self, source_id: str) -> None:
        """Delete the entry ``source_id`` from the file, valid or not (how a broken entry is removed).

        Args:
            source_id: the entry's id.

        Raises:
            NotFoundError: no entry has this id.
        """
        with self._changing() as raw:
            raw.pop(_index_of(raw, source_id, self.path))
        self._retire(source_id)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[builtins.list[dict[str, Any]]]:
        """The raw entries, under the file lock; written back atomically when the block succeeds."""
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            raw = self._read()
            yield raw
            _parse_sources(yaml.safe_dump({"sources": raw}), self.path)  # the whole file stays valid
            text = yaml.safe_dump({"sources": raw}, sort_keys=False, allow_unicode=True)
            atomic_write(self.path, text.encode(), mode=_file_mode(self.path))

    # --- connectors ----------------------------------------------------------

    def create_connector(self, source_id: str) -> DataSourceConnector:
        """A new, unconnected connector for ``source_id``, owned by the caller.

        Args:
            source_id: a configured source's id.

        Returns:
            The connector, bound to the operator's reach policy for a source written through the API.

        Raises:
            NotFoundError: no such source.
            ConfigurationError: its entry is invalid or its connector type is unknown.
        """
        from connectors.api.policy import reach_for  # no FastAPI: the policy module is plain

        source = self.get(source_id)
        connector = plugins.get_connector_class(source.type_name)(source)
        connector.reach = reach_for(source, self.path)  # a source an API caller wrote: checked at connect time
        return connector

    async def connector(self, source_id: str) -> DataSourceConnector:
        """The shared connector of ``source_id``, connected on first use and reused.

        Do not ``disconnect`` it or use it in ``async with``: the registry closes
        it in :meth:`aclose`.

        Args:
            source_id: a configured source's id.

        Returns:
            The connected connector.

        Raises:
            NotFoundError: no such source.
            DataSourceError: connecting failed (a subclass says why).
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


def _absolute_root(source: DataSourceConfig) -> DataSourceConfig:
    """``source`` with a relative local ``root`` made absolute (against this process's folder), as stored.

    Stored as given, ``data`` would mean a different folder to each process that reads the file
    (the CLI, the API, Dagster runs), whatever folder each was started in.
    """
    root = source.config.get("root")
    if source.type_name != "local_file" or not isinstance(root, str) or os.path.isabs(root):
        return source
    config = {**source.config, "root": os.path.abspath(root)}
    return DataSourceConfig(id=source.id, type=source.type, name=source.name, config=config,
                            created_at=source.created_at, metadata=source.metadata)


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for key, value in (changes or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _entry_id(entry: Any) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _index_of(raw: list[Any], source_id: str, path: Path) -> int:
    for index, entry in enumerate(raw):
        if _entry_id(entry) == source_id:
            return index
    ids = [_entry_id(entry) for entry in raw]
    raise _unknown_source(source_id, [], path, known=[i if i and is_valid_source_id(i) else shown(i) for i in ids])


def _unknown_source(
    source_id: str, sources: list[DataSourceConfig], path: Path, known: list[str] | None = None
) -> NotFoundError:
    ids = known if known is not None else [s.id for s in sources]
    listed = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "") if ids else "none"
    close = difflib.get_close_matches(source_id, ids, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return NotFoundError(f"no source {shown(source_id)} in {str(path)!r} (known: {listed}){hint}")


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644
