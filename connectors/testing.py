"""An in-memory connector, shipped for your own tests (no services, no disk but the workspace).

``MemoryConnector`` (type ``memory``) serves objects held in a process-wide
:class:`MemoryStore`: fast, with failures that can be injected per item. It is
not registered by default; call ``register_connector("memory", MemoryConnector)``
in your test set-up. It lands files with :func:`connectors.landing.landing`,
like every connector, so lineage records and atomicity are the real ones.

Example:
    >>> store = memory_store("unit")
    >>> store.put("a.csv", b"x,y\\n1,2\\n", modified_at=1_700_000_000)
    >>> register_connector("memory", MemoryConnector)
    >>> DataSourceConfig(id="mem", type="memory", name="Mem", config={"store": "unit"})
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from connectors.base import DataItem, DataSourceConnector
from connectors.errors import AuthenticationError, DataSourceError, NotFoundError
from connectors.landing.atomic import landing
from connectors.secrets.references import Secret
from connectors.settings import ConnectorSettings


@dataclass
class MemoryObject:
    """One stored item; ``table`` holds row_count / columns / table for table-like items."""

    data: bytes
    modified_at: int
    version: str
    table: dict[str, Any] | None = None


@dataclass
class MemoryStore:
    """Items of a memory source, and errors to raise on their next fetches."""

    objects: dict[str, MemoryObject] = field(default_factory=dict)
    failures: dict[str, list[DataSourceError]] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, path: str, data: bytes, modified_at: int, version: str | None = None,
            table: dict[str, Any] | None = None) -> MemoryObject:
        """Store (or overwrite) an item; the version defaults to a digest of the data.

        Args:
            path: The item's identifier.
            data: Its bytes.
            modified_at: Its modification time, Unix seconds.
            version: Its version; None for the first 16 hex digits of its sha256.
            table: For a table-like item, ``row_count``/``columns``/``table`` facts added to its record; or None.

        Returns:
            What was stored.
        """
        import hashlib

        stored = MemoryObject(data, modified_at, version or hashlib.sha256(data).hexdigest()[:16], table)
        self.objects[path] = stored
        return stored

    def fail_next(self, path: str, *errors: DataSourceError) -> None:
        """Make the next fetches of ``path`` raise ``errors``, in order.

        Args:
            path: The item's identifier.
            errors: One error per fetch to fail, raised in this order.
        """
        self.failures.setdefault(path, []).extend(errors)

    def _take_failure(self, path: str) -> DataSourceError | None:
        with self.lock:
            pending = self.failures.get(path)
            return pending.pop(0) if pending else None


_STORES: dict[str, MemoryStore] = {}


def memory_store(name: str, *, fresh: bool = True) -> MemoryStore:
    """The store called ``name`` (a new, empty one when ``fresh``).

    Args:
        name: The store's name, as a memory source's ``config.store`` names it.
        fresh: Start empty, replacing a store of that name.

    Returns:
        The store, shared by every memory source naming it in this process.
    """
    if fresh or name not in _STORES:
        _STORES[name] = MemoryStore()
    return _STORES[name]


class MemorySettings(ConnectorSettings):
    """Settings of a ``memory`` source."""

    store: str = Field(description="Name of the MemoryStore to serve.")
    token: Secret | None = Field(None, description="Optional secret, checked to be non-empty.")


class MemoryConnector(DataSourceConnector):
    """Serves a :class:`MemoryStore`; identifiers are the stored paths."""

    settings_model = MemorySettings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._store: MemoryStore | None = None
        self._name = ""

    async def connect(self) -> bool:
        settings: MemorySettings = self.resolve_settings()
        if settings.token is not None and not settings.token.reveal():
            raise AuthenticationError("empty token", source_id=self.source_id)
        if settings.store not in _STORES:
            raise NotFoundError(f"no memory store {settings.store!r}", source_id=self.source_id)
        self._store, self._name, self._connected = _STORES[settings.store], settings.store, True
        return True

    async def disconnect(self) -> None:
        self._connected = False

    async def test_connection(self) -> bool:
        return self._store is not None

    def _objects(self) -> dict[str, MemoryObject]:
        self._require_connected()
        assert self._store is not None
        return self._store.objects

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        return [
            DataItem(name=p.rsplit("/", 1)[-1], path=p, size=len(o.data), modified_at=o.modified_at,
                     metadata={"version": o.version})
            for p, o in sorted(self._objects().items())
            if path is None or p.startswith(path)
        ]

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        stored = self._objects().get(identifier)
        assert self._store is not None
        failure = self._store._take_failure(identifier)
        if failure is not None:
            raise failure
        if stored is None:
            raise NotFoundError(f"{identifier!r} does not exist", source_id=self.source_id)
        self._store.fetches.append(identifier)
        with landing(workspace, identifier, source_id=self.source_id) as land:
            land.write(stored.data)
            provenance = {"source_type": "memory", "source_uri": f"memory://{self._name}/{identifier}",
                          "source_version": stored.version, **(stored.table or {})}
            landed = land.commit(provenance=provenance, expected_size=len(stored.data))
        return str(landed.path)

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        stored = self._objects()[identifier]
        return {"path": identifier, "size": len(stored.data), "version": stored.version}
