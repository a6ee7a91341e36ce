"""What the routes share: the registry, keys, audit log, pooled connectors, the metadata cache and jobs.

One :class:`ApiState` per app. :func:`create_app` makes its own; an app that
only includes the router gets one built from the environment at the router's
startup (or on first use). Either way its :class:`ThreadJanitor` runs from
startup to shutdown and closes each source's pooled connections once no request
has used them for ``idle_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, TypeVar

from starlette.requests import Request

from connectors.api.api_keys import KeyStore
from connectors.api.api_settings import ApiSettings
from connectors.api.audit import AuditLog
from connectors.api.policy import connector_for
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import DataSourceError
from connectors.registry import SourceRegistry
from connectors.secrets.references import get_logger
from connectors.threads.ending import ThreadJanitor

__all__ = ["ApiState"]

log = get_logger(__name__)
T = TypeVar("T")
JANITOR_INTERVAL = 5.0  # seconds between two idle checks, at most
MAX_RENDERED = 1024  # cached answers (a source, a page of the list) at most


class _Leases:
    """The sources whose pooled connectors one request took: in use until the request ends."""

    def __init__(self) -> None:
        self.source_ids: set[str] = set()
        self.open = True


# a context variable, so that tasks a route starts (an attach's fetches) count for its request
_leases: contextvars.ContextVar[_Leases | None] = contextvars.ContextVar("da_sources_leases", default=None)


class ConnectorPool:
    """One connected connector per source, replaced as soon as the source's config changes.

    The config is compared on every use, so a change made by the CLI or another
    process is picked up too. A connector handed out inside :meth:`in_use` (every
    request) counts as in use until that block ends; :meth:`close_idle` closes only
    the others, once unused for the idle time.
    """

    def __init__(self, build: Callable[[DataSourceConfig], DataSourceConnector]) -> None:
        self._build = build  # a source's connector, bound to the operator's policy
        self._pool: dict[str, DataSourceConnector] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}  # requests under way that took the source's connector
        self._used_at: dict[str, float] = {}  # when it was last handed out or given back

    async def get(self, source: DataSourceConfig) -> DataSourceConnector:
        """The source's connected connector, made anew when its config changed or it disconnected."""
        async with self._lock(source.id):
            connector = self._pool.get(source.id)
            if connector is not None and (connector.config != source or not connector.is_connected):
                await self._close(self._pool.pop(source.id))
                connector = None
            if connector is None:
                connector = self._build(source)
                await connector.connect()
                self._pool[source.id] = connector
            self._lease(source.id)  # under the lock: close_idle never closes it after this
            return connector

    def pooled(self) -> list[str]:
        """The ids of the sources with an open pooled connector."""
        return sorted(self._pool)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Connectors handed out inside (also by tasks started inside) stay open until the block ends."""
        leases = _Leases()
        token = _leases.set(leases)
        try:
            yield
        finally:
            _leases.reset(token)
            leases.open = False
            for source_id in leases.source_ids:
                self._users[source_id] -= 1
                self._used_at[source_id] = time.monotonic()

    async def close_idle(self, idle_seconds: float) -> list[str]:
        """Close the connectors no request holds and none used for ``idle_seconds``; their source ids."""
        closed = []
        for source_id in list(self._pool):
            async with self._lock(source_id):
                if source_id in self._pool and self._idle(source_id, idle_seconds):
                    await self.close(source_id)
                    closed.append(source_id)
        return closed

    async def close(self, source_id: str) -> None:
        """Close the source's pooled connections (its connector disconnects)."""
        connector = self._pool.pop(source_id, None)
        if connector is not None:
            await self._close(connector)

    async def aclose(self) -> None:
        """Close every pooled connector (at shutdown)."""
        for source_id in list(self._pool):
            await self.close(source_id)

    def _lock(self, source_id: str) -> asyncio.Lock:
        return self._locks.setdefault(source_id, asyncio.Lock())

    def _lease(self, source_id: str) -> None:
        self._used_at[source_id] = time.monotonic()
        leases = _leases.get()
        if leases is not None and leases.open and source_id not in leases.source_ids:
            leases.source_ids.add(source_id)
            self._users[source_id] = self._users.get(source_id, 0) + 1

    def _idle(self, source_id: str, idle_seconds: float) -> bool:
        unused_for = time.monotonic() - self._used_at.get(source_id, 0.0)
        return not self._users.get(source_id) and unused_for >= idle_seconds

    @staticmethod
    async def _close(connector: DataSourceConnector) -> None:
        try:
            await connector.disconnect()
        except Exception as exc:
            log.warning("source %s: disconnect failed: %s", connector.source_id, exc)


class MetadataCache:
    """Listings and metadata per source, for ``ttl`` seconds, and only while the source's config is unchanged."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str, str], tuple[float, DataSourceConfig, Any]] = {}
        self._pending: dict[tuple[str, str, str], asyncio.Future[Any]] = {}

    async def get(self, source: DataSourceConfig, kind: str, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or ``load()``'s (one load at a time per key; concurrent callers share it)."""
        slot = (source.id, kind, key)
        entry = self._entries.get(slot)
        if entry is not None and entry[0] > time.monotonic() and entry[1] == source:
            return entry[2]  # type: ignore[no-any-return]
        pending = self._pending.get(slot)
        if pending is not None:
            return await asyncio.shield(pending)  # type: ignore[no-any-return]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[slot] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(slot, None)
        future.set_result(value)
        if self.ttl > 0:
            self._entries[slot] = (time.monotonic() + self.ttl, source, value)
        return value

    def invalidate(self, source_id: str) -> None:
        """Drop every cached answer of the source (it changed or went)."""
        for slot in [s for s in self._entries if s[0] == source_id]:
            del self._entries[slot]


class ApiState:
    """Everything one API instance holds: settings, sources, keys, audit log, pooled connectors, cache, jobs.

    Args:
        settings: its paths and limits (nothing is read or started until used or :meth:`start`).
    """

    def __init__(self, settings: ApiSettings) -> None:
        from connectors.api.fetch_jobs import JobManager  # jobs use the state's pool: built after it

        self.settings = settings
        self.registry = SourceRegistry(settings.sources_file)
        self.keys = KeyStore(settings.keys_file)
        self.audit = AuditLog(settings.audit_log)
        self.pool = ConnectorPool(lambda source: connector_for(source, settings))
        self.cache = MetadataCache(settings.cache_seconds)
        self.jobs = JobManager(settings)
        self.janitor = ThreadJanitor(self.pool, idle_seconds=settings.idle_seconds,
                                     interval=min(JANITOR_INTERVAL, settings.idle_seconds / 4),
                                     base_dir=settings.workspace_base, state_dir=settings.thread_state_dir)
        self._sources: tuple[tuple[int, ...] | None, list[DataSourceConfig]] | None = None
        self._sources_path = str(self.registry.path)
        self._rendered: dict[Hashable, bytes] = {}  # answers built from the sources as last read

    def start(self) -> None:
        """Start the janitor (at the app's startup, on its event loop); :meth:`aclose` stops it."""
        self.janitor.start()

    def sources(self) -> list[DataSourceConfig]:
        """The sources file, parsed again only when it changed (a YAML parse costs milliseconds per request).

        Returns:
            The sources as stored (references unresolved); a copy the caller may change.
        """
        try:
            stat = os.stat(self._sources_path)
            stamp: tuple[int, ...] | None = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if self._sources is None or self._sources[0] != stamp or stamp is None:
            self._rendered.clear()
            self._sources = (stamp, self.registry.list())
        return list(self._sources[1])

    def rendered(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """An answer built from the sources as :meth:`sources` last read them: cached until the file changes.

        Call :meth:`sources` first, in the same step (no ``await`` between): it drops the cache on a change.

        Args:
            key: names the answer (its route and parameters).
            build: makes the answer's bytes when it is not cached.

        Returns:
            The cached or newly built answer.
        """
        answer = self._rendered.get(key)
        if answer is None:
            if len(self._rendered) >= MAX_RENDERED:
                self._rendered.clear()  # keys come from callers' parameters: bounded
            answer = self._rendered[key] = build()
        return answer

    async def connector(self, source: DataSourceConfig) -> DataSourceConnector:
        """The pooled connector of a source, connected within the request timeout.

        Args:
            source: the stored source.

        Returns:
            Its connector, bound to the operator's policy and held until the request ends.

        Raises:
            TimeoutError: it did not connect within ``timeout_seconds``.
            DataSourceError: it could not connect (or the policy refused it).
        """
        async with asyncio.timeout(self.settings.timeout_seconds):
            return await self.pool.get(source)

    async def forget(self, source_id: str) -> None:
        """The source changed or went: drop its cache and close its connections.

        Args:
            source_id: the source's id.
        """
        self.sources_changed()
        self.cache.invalidate(source_id)
        await self.pool.close(source_id)

    def sources_changed(self) -> None:
        """The API changed the sources file: read it again, and build its answers again, at the next request.

        The file's stamp would tell too, unless a change kept its inode, size and mtime within a clock tick.
        """
        self._sources = None

    async def aclose(self) -> None:
        """Stop the janitor, cancel running jobs and close every pooled connector (at shutdown)."""
        await self.janitor.stop()
        await self.jobs.aclose()
        await self.pool.aclose()


_default: ApiState | None = None


def own_state(app: Any) -> ApiState | None:
    """The state ``create_app`` gave ``app``, if any."""
    state = getattr(getattr(app, "state", None), "da_sources", None)
    return state if isinstance(state, ApiState) else None


def get_state(request: Request) -> ApiState:
    """The app's state (``create_app``), else one built from the environment (an app that includes the router)."""
    return own_state(request.app) or _default_state()


def _default_state() -> ApiState:
    """The state built from the environment, built now if it is not yet."""
    global _default
    if _default is None:
        _default = ApiState(ApiSettings.from_env())
    return _default


def start_default_state() -> None:
    """Build the environment's state and start its janitor (at the router's startup, in an including app)."""
    try:
        _default_state().start()
    except DataSourceError as exc:  # the including app still starts; each request says what is wrong
        log.error("data sources API: %s", exc)


async def close_default_state() -> None:
    """Close the environment-built state, if any (at the router's shutdown)."""
    global _default
    state, _default = _default, None
    if state is not None:
        await state.aclose()
