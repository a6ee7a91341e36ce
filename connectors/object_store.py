"""What the object-store connectors (``azure_blob``, ``s3``) share: scope, listing, metadata, fetching, landing.

:class:`ObjectStoreConnector` holds the logic; a subclass supplies the transport in small hooks
(its clients, listing pages, probe, the properties of a HEAD, its provenance record, the checks
its service names) and :attr:`~ObjectStoreConnector.noun`, the word its messages use ("blob",
"object"). How bytes move: ``docs/design/azure_blob.md``; S3's checks: ``docs/design/s3.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp

from connectors.azure_blob.errors import BlobChangedError, mapped_errors
from connectors.azure_blob.ranged_download import BlobDownload, Downloaded, RangeSource
from connectors.azure_blob.reach import checked_connector, trace_configs
from connectors.azure_blob.retries import with_retries
from connectors.azure_blob.scope import BlobScope
from connectors.base import DataItem, DataSourceConnector, FetchResult, collect_results
from connectors.landing.atomic import Landing, landing
from connectors.landing.dirs import finish_in_thread
from connectors.landing.group_commit import MAX_PENDING, GroupCommit
from connectors.landing.names import safe_relative_path
from connectors.reach import ReachPolicy
from connectors.secrets.references import get_logger

__all__ = ["CHANGED_RESTARTS", "DISK_THREADS", "ObjectStoreConnector", "StoreClients", "disk_pool", "open_session",
           "prefetched_pages"]

CHANGED_RESTARTS = 2  # an item overwritten mid-download is downloaded again this many times at most
# threads for landing files one by one (fetch_data, and large items): mostly waiting on fsyncs;
# fetch_many lands its small items in groups instead (connectors.landing.group_commit)
DISK_THREADS = 8


class StorePath(RangeSource, Protocol):
    """The requests a connector sends besides ranged GETs: a HEAD, and the URI it names in records."""

    async def head(self, name: str, /) -> Mapping[str, str]:
        """The item's properties, as response headers."""
        ...

    def blob_uri(self, name: str, /) -> str:
        """The item's URI, without query string or credential."""
        ...


class StoreSettings(Protocol):
    """The settings every object store has (``AzureBlobSettings``, ``S3Settings``)."""

    prefix: str
    pattern: str | None
    max_concurrency: int
    retry_total: int


@dataclass
class StoreClients:
    """What one connection holds: one aiohttp session, the service's data path, the landing threads."""

    session: aiohttp.ClientSession
    data: StorePath
    disk: ThreadPoolExecutor  # landing work (open, fsync, rename): mostly waiting on the disk


ClientsT = TypeVar("ClientsT", bound=StoreClients)
SettingsT = TypeVar("SettingsT", bound=StoreSettings)
AnswerT = TypeVar("AnswerT")
PageT = TypeVar("PageT")


@dataclass
class _Batch:
    """What the fetches of one ``fetch_many`` share."""

    downloads: asyncio.Semaphore  # downloads in flight
    waiting: asyncio.Semaphore  # items from the start of their download until landed
    group: GroupCommit


class ObjectStoreConnector(DataSourceConnector, Generic[ClientsT, SettingsT]):
    """Serves the items of one container or bucket in scope (``prefix``, ``pattern``); identifiers are full names."""

    noun: ClassVar[str]  # what the store calls what it holds, in messages: "blob", "object"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._settings: SettingsT | None = None
        self._clients: ClientsT | None = None
        self._scope = BlobScope("", None, self.source_id)

    # --- hooks: what each store does its own way -----------------------------

    @abstractmethod
    async def _open_clients(self, settings: SettingsT) -> ClientsT:
        """Build the clients; send no request."""
        ...

    async def _close_clients(self, clients: ClientsT) -> None:
        """Close what the store opened besides the session and the landing threads."""

    @abstractmethod
    def _what(self) -> str:
        """The container or bucket, as messages name it."""
        ...

    @abstractmethod
    def _list_pages(self, clients: ClientsT, prefix: str, retries: int,
                    what: str) -> AsyncGenerator[list[DataItem], None]:
        """The items under ``prefix``, a page at a time."""
        ...

    @abstractmethod
    async def _probe(self, clients: ClientsT, prefix: str, retries: int, what: str) -> None:
        """A one-item listing: the store answers and these credentials may list it."""
        ...

    def _refusals(self, action: str) -> AbstractContextManager[None]:
        """Around a request that may be refused (``action``: "list" or "read"): lets the refusal through."""
        return contextlib.nullcontext()

    @abstractmethod
    def _properties(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """The facts of a HEAD answer, keyed as listings key them."""
        ...

    def _stored_checks(self, facts: Any, have: Iterable[str]) -> list[Any]:
        """More digests for the download engine to compute, for checks the store names in ``facts``."""
        return []

    async def _verified(self, clients: ClientsT, identifier: str, result: Downloaded,
                        opened: list[Landing]) -> Downloaded:
        """The download once the store's own checks of it passed (``opened``: the landing of a large item)."""
        return result

    @abstractmethod
    def _check_body(self, result: Downloaded, identifier: str) -> None:
        """Check a small item's bytes against what the store says of them (runs in a landing thread)."""
        ...

    @abstractmethod
    def _provenance(self, clients: ClientsT, identifier: str, result: Downloaded) -> dict[str, Any]:
        """The lineage record's facts of the source."""
        ...

    # --- connection --------------------------------------------------------

    async def connect(self) -> bool:
        """Resolve the settings and build the clients; no request is sent.

        Returns:
            True.
        """
        if self._clients is not None:
            return True
        settings: SettingsT = self.resolve_settings()
        self._clients = await self._open_clients(settings)
        self._settings = settings
        self._scope = BlobScope(settings.prefix, settings.pattern, self.source_id)
        self._connected = True
        return True

    async def disconnect(self) -> None:
        """Close the clients and the session. Safe to call twice."""
        clients, self._clients, self._connected = self._clients, None, False
        if clients is None:
            return
        await self._close_clients(clients)
        await clients.session.close()
        clients.disk.shutdown(wait=True)

    async def test_connection(self) -> bool:
        """Ask for a one-item listing of the scope with these credentials.

        Raises rather than returning False, so the caller can say why.

        Returns:
            True when the container or bucket answered.

        Raises:
            ConfigurationError: The settings are invalid or a secret reference cannot be resolved.
            NotFoundError: The container or bucket does not exist.
            AuthenticationError: The credentials are refused.
            ConnectionError: The endpoint is unreachable or silent (after the retry budget).
        """
        if not self._connected:
            await self.connect()
        clients, settings = self._require()
        with self._refusals("list"):
            await self._probe(clients, self._scope.folder, settings.retry_total, f"listing {self._what()}")
        return True

    def _require(self) -> tuple[ClientsT, SettingsT]:
        self._require_connected()
        assert self._clients is not None and self._settings is not None
        return self._clients, self._settings

    # --- listing -------------------------------------------------------------

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        """Every item in scope under folder ``path`` (a full-name folder, as listed), recursively.

        Args:
            path: The folder to list; None for the whole scope.

        Returns:
            One item per blob or object; folder placeholders are left out.

        Raises:
            OutOfScopeError: ``path`` lies outside ``prefix`` (before any request).
        """
        return [item async for item in self.iter_items(path)]

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        """The items under ``path`` page by page (as many per request as the service allows), never all at once.

        Args:
            path: The folder to list; None for the whole scope.

        Yields:
            One item per blob or object in scope, in name order.
        """
        clients, settings = self._require()
        prefix = self._scope.listing_prefix(path)
        what = f"listing {self._what()}"
        pages = self._list_pages(clients, prefix, settings.retry_total, what)
        # aclosing: a consumer that stops early also stops the prefetch of the next page, now
        with self._refusals("list"):  # never an empty listing: a refusal is an error
            async with mapped_errors(what, source_id=self.source_id), contextlib.aclosing(pages):
                async for page in pages:
                    for item in page:
                        if self._scope.matches(item.path):
                            yield item

    # --- metadata ------------------------------------------------------------

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        """The item's properties: size, version (= etag), type, and what else the store keeps.

        Args:
            identifier: The item's full name.

        Returns:
            The properties, with ``path`` and ``source_uri`` (no query string, no credential).

        Raises:
            OutOfScopeError: The name is outside ``prefix`` / ``pattern`` (before any request).
            UnsafeNameError: The name has a '.' or '..' segment (before any request).
            NotFoundError: The item, container or bucket is missing.
            AuthenticationError: Access is denied.
            ConnectionError: The service stayed unreachable within the retry budget.
        """
        clients, settings = self._require()
        what = f"reading properties of {self.noun}"
        self._scope.check_readable(identifier, what)
        headers = await with_retries(partial(clients.data.head, identifier), f"{what} {identifier!r}",
                                     self.source_id, settings.retry_total)
        return {"name": identifier.rstrip("/").rsplit("/", 1)[-1], "path": identifier,
                **self._properties(headers), "source_uri": clients.data.blob_uri(identifier)}

    # --- fetching ------------------------------------------------------------

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        """Land item ``identifier`` at ``<workspace>/<identifier>`` with its provenance record.

        Args:
            identifier: The item's full name, as listed.
            workspace: The folder to land it in.

        Returns:
            The landed file's absolute path.

        Raises:
            UnsafeNameError: Before any request, for a name that cannot land safely.
            OutOfScopeError: Before any request, for a name outside the scope.
            NotFoundError: The item, container or bucket is missing.
            AuthenticationError: Access is denied.
            IntegrityError: Short body, MD5 or checksum mismatch, or the item kept changing.
            ConnectionError: The service stayed unreachable within the retry budget.
        """
        return await self._fetch(identifier, workspace, None)

    async def _fetch(self, identifier: str, workspace: str, batch: _Batch | None) -> str:
        safe_relative_path(identifier)
        clients, _ = self._require()
        self._scope.check(identifier, f"fetching {self.noun}")
        for restart in range(CHANGED_RESTARTS + 1):
            try:
                with self._refusals("read"):
                    async with mapped_errors(f"fetching {self.noun} {identifier!r}", source_id=self.source_id):
                        # batch.waiting bounds the small bodies held in memory until their group lands
                        async with batch.waiting if batch else contextlib.nullcontext():
                            return await self._download_and_land(clients, identifier, workspace, batch)
            except BlobChangedError:
                if restart == CHANGED_RESTARTS:
                    raise
                get_logger(type(self).__module__).info(
                    "source %s: %s %r changed while downloading; starting again", self.source_id, self.noun, identifier)
        raise AssertionError("unreachable")

    async def _download_and_land(self, clients: ClientsT, identifier: str, workspace: str,
                                 batch: _Batch | None) -> str:
        _, settings = self._require()
        with contextlib.ExitStack() as stack:
            opened: list[Landing] = []

            async def open_target() -> int:
                # opened only once the service said the item exists: a 404 leaves no folders behind;
                # in a thread, because mkdir/open/flock would stall every other transfer on the loop
                target = landing(workspace, identifier, source_id=self.source_id)
                opened.append(await finish_in_thread(partial(stack.enter_context, target), clients.disk))
                return opened[0].fd

            download = BlobDownload(clients.data, identifier, open_target, concurrency=settings.max_concurrency,
                                    retries=settings.retry_total, checks=self._stored_checks)
            # the gate counts network work only: an item waiting for its group to land does not hold it
            async with batch.downloads if batch else contextlib.nullcontext():
                result = await self._verified(clients, identifier, await download.run(), opened)
            return await self._land(clients, workspace, identifier, result, opened, batch)

    async def _land(self, clients: ClientsT, workspace: str, identifier: str, result: Downloaded,
                    opened: list[Landing], batch: _Batch | None) -> str:
        provenance = self._provenance(clients, identifier, result)
        if result.body is not None and batch is not None:
            check = partial(self._check_body, result, identifier)
            landed = await batch.group.land(workspace, identifier, result.body, source_id=self.source_id,
                                            provenance=provenance, check=check)
            return str(landed.path)
        if result.body is not None:  # a small item: open, write and commit in one trip to a thread
            small = partial(_land_bytes, workspace, identifier, self.source_id, result.body, provenance,
                            partial(self._check_body, result, identifier))
            return str(await finish_in_thread(small, clients.disk))
        commit = partial(opened[0].commit, provenance=provenance,
                         expected_size=result.facts.size, sha256=result.sha256)
        landed = await finish_in_thread(commit, clients.disk)  # fsyncs: off the event loop
        return str(landed.path)

    async def fetch_many(
        self, identifiers: Iterable[str], workspace: str, concurrency: int = 16
    ) -> list[FetchResult]:
        """Fetch several items, ``concurrency`` downloads at once on the shared pool.

        Small items take one GET each and land in groups with one file-system sync per group
        (:mod:`connectors.landing.group_commit`). One failure never undoes the others.

        Args:
            identifiers: The items' full names.
            workspace: The folder to land them in.
            concurrency: How many downloads run at once.

        Returns:
            One result per identifier, in order: its path, or the error it met.
        """
        group = GroupCommit()
        waiting = asyncio.Semaphore(max(concurrency, MAX_PENDING))
        batch = _Batch(asyncio.Semaphore(max(1, concurrency)), waiting, group)
        try:
            return await collect_results(identifiers, partial(self._fetch, workspace=workspace, batch=batch))
        finally:
            await group.close()


def _land_bytes(workspace: str, identifier: str, source_id: str, body: bytes, provenance: dict[str, Any],
                check: Callable[[], None]) -> Path:
    """Verify and land a small item already in memory, in a landing thread (sha256 computed on write).

    Hashing here rather than on the event loop: a hash call releases the GIL,
    and getting it back from busy landing threads would stall every transfer.
    """
    check()
    with landing(workspace, identifier, source_id=source_id) as land:
        land.write(body)
        return land.commit(provenance=provenance, expected_size=len(body)).path


def open_session(connect_timeout: float, read_timeout: float, reach: ReachPolicy | None,
                 where: str) -> aiohttp.ClientSession:
    """The one aiohttp session of a connection: its timeouts, and under a policy every name and URL checked.

    Args:
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds a read may wait for bytes.
        reach: The policy of what may be reached; None for no policy.
        where: The setting a refusal of the policy names (``config.account_url``).

    Returns:
        The session (the caller closes it).
    """
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout),
        auto_decompress=False,  # bytes land exactly as stored
        read_bufsize=1 << 20,  # fewer pause/resume cycles of the socket on large bodies
        connector=checked_connector(reach, where, limit=64, enable_cleanup_closed=True),
        trace_configs=trace_configs(reach, where),
    )


def disk_pool(name: str) -> ThreadPoolExecutor:
    """The threads that land files one by one (``name``: their name's prefix, as ``da-s3-land``).

    Args:
        name: The threads' name prefix.

    Returns:
        The pool (the caller shuts it down).
    """
    return ThreadPoolExecutor(max_workers=DISK_THREADS, thread_name_prefix=name)


async def prefetched_pages(request: Callable[[str], Awaitable[AnswerT]], next_token: Callable[[AnswerT], str],
                           page: Callable[[AnswerT], PageT]) -> AsyncGenerator[PageT, None]:
    """The pages of a listing one at a time, the next asked for as soon as its token is read.

    The service prepares the next page while this one is read; at most two are held. A consumer
    that stops early cancels the request in flight.

    Args:
        request: Sends the request for the page after a token ('' for the first page).
        next_token: The next page's token in an answer ('' after the last).
        page: An answer's page, as it is yielded.

    Yields:
        Each page, in order.
    """
    pending: asyncio.Future[AnswerT] | None = asyncio.ensure_future(request(""))
    try:
        while pending is not None:
            answer = await pending
            token = next_token(answer)
            pending = asyncio.ensure_future(request(token)) if token else None
            yield page(answer)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
