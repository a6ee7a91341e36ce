"""``azure_blob``: a container of Azure Blob Storage (or Azurite).

Identifiers are full blob names (``DataItem.path``); a blob lands at ``<workspace>/<blob name>``,
and a name outside the scope (``prefix``, ``pattern``) is an ``OutOfScopeError`` before any
request. Every request goes on one data path (one pool, one retry budget, one pair of
timeouts). How and why: ``docs/design/azure_blob.md``.

Example:
    >>> config = DataSourceConfig(id="lake", type="azure_blob", name="Lake", config={
    ...     "connection_string": {"env": "AZURE_STORAGE_CONNECTION_STRING"},
    ...     "container_name": "data", "prefix": "exports/", "pattern": "*.parquet"})
    >>> async with AzureBlobConnector(config) as lake:
    ...     async for item in lake.iter_items("exports/2024/"):
    ...         await lake.fetch_data(item.path, "/tmp/ws")   # -> /tmp/ws/exports/2024/...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, ExponentialRetry

from connectors.azure_blob.auth import credentials_for, endpoint_of
from connectors.azure_blob.data_path import DataPath, iso_utc
from connectors.azure_blob.errors import BlobChangedError, mapped_errors
from connectors.azure_blob.hashing import check_md5
from connectors.azure_blob.listing import list_pages, probe, quoted_etag
from connectors.azure_blob.ranged_download import BlobDownload, Downloaded
from connectors.azure_blob.reach import check_url, checked_connector, trace_configs
from connectors.azure_blob.retries import with_retries
from connectors.azure_blob.scope import BlobScope
from connectors.azure_blob.upload import Uploaded, upload_file
from connectors.base import DataItem, DataSourceConnector, FetchResult, collect_results
from connectors.errors import ConfigurationError, NotFoundError
from connectors.landing.atomic import Landing, landing
from connectors.landing.dirs import finish_in_thread
from connectors.landing.group_commit import MAX_PENDING, GroupCommit
from connectors.landing.names import safe_relative_path
from connectors.reach import ReachPolicy
from connectors.secrets.references import get_logger
from connectors.settings import AzureBlobSettings

log = get_logger(__name__)

CHANGED_RESTARTS = 2  # a blob overwritten mid-download is downloaded again this many times at most
LIST_PAGE = 5000  # blobs per listing page: the service's maximum, fewest round trips
# threads for landing files one by one (fetch_data, and large blobs): mostly waiting on fsyncs;
# fetch_many lands its small blobs in groups instead (connectors.landing.group_commit)
DISK_THREADS = 8


@dataclass
class _Clients:
    """What one connection holds: one aiohttp session shared by the SDK and the data path."""

    session: aiohttp.ClientSession
    service: BlobServiceClient
    container: ContainerClient
    data: DataPath
    credential: Any  # an azure-identity credential to close, or None
    disk: ThreadPoolExecutor  # landing work (open, fsync, rename): mostly waiting on the disk


class AzureBlobConnector(DataSourceConnector):
    """Serves the blobs of one container in scope (``prefix``, ``pattern``); identifiers are full blob names."""

    settings_model = AzureBlobSettings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._settings: AzureBlobSettings | None = None
        self._clients: _Clients | None = None
        self._scope = BlobScope("", None, self.source_id)

    # --- connection --------------------------------------------------------

    async def connect(self) -> bool:
        """Build the clients; no request is sent (:meth:`test_connection` asks the service).

        Returns:
            True.

        Raises:
            ConfigurationError: The config has no ``container_name``, or a setting or secret reference is invalid.
        """
        if self._clients is not None:
            return True
        if self.config.config.get("container_name") is None:  # DeepAnalyze's own example builds such a config
            raise ConfigurationError("config.container_name: required: an azure_blob source reads one container "
                                     "(account-level access is not supported); add container_name to its config",
                                     source_id=self.source_id)
        settings: AzureBlobSettings = self.resolve_settings()
        self._clients = await _open_clients(settings, self.source_id, self.reach)
        self._settings = settings
        self._scope = BlobScope(settings.prefix, settings.pattern, self.source_id)
        self._connected = True
        return True

    async def disconnect(self) -> None:
        """Close the SDK client, the credential and the session. Safe to call twice."""
        clients, self._clients, self._connected = self._clients, None, False
        if clients is None:
            return
        with contextlib.suppress(Exception):
            await clients.service.close()
        if clients.credential is not None:
            with contextlib.suppress(Exception):
                await clients.credential.close()
        await clients.session.close()
        clients.disk.shutdown(wait=True)

    async def test_connection(self) -> bool:
        """Ask the container for a one-blob listing of the scope with these credentials.

        Raises rather than returning False, so the caller can say why.

        Returns:
            True when the container answered.

        Raises:
            ConfigurationError: The settings are invalid or a secret reference cannot be resolved.
            NotFoundError: The container does not exist.
            AuthenticationError: The key, SAS or credential is refused.
            ConnectionError: The endpoint is unreachable or silent (after the retry budget).
        """
        if not self._connected:
            await self.connect()
        clients = self._require_clients()
        assert self._settings is not None
        await probe(clients.data, self._scope.folder, retries=self._settings.retry_total,
                    what=f"listing {self._container_what()}")
        return True

    def _require_clients(self) -> _Clients:
        self._require_connected()
        assert self._clients is not None
        return self._clients

    def _container_what(self) -> str:
        if not isinstance(self.config.config.get("container_name"), str):  # a reference: its value is not shown
            return "container (config.container_name)"
        name = self._settings.container_name if self._settings else self.config.config.get("container_name")
        return f"container {name!r}"

    # --- listing -------------------------------------------------------------

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        """Every blob in scope under folder ``path`` (a full blob-name folder, as listed), recursively.

        Args:
            path: The folder to list; None for the whole scope.

        Returns:
            One item per blob; folder placeholders are left out.

        Raises:
            OutOfScopeError: ``path`` lies outside ``prefix`` (before any request).
        """
        return [item async for item in self.iter_items(path)]

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        """The blobs under ``path`` page by page (5,000 per request), never all pages at once.

        Args:
            path: The folder to list; None for the whole scope.

        Yields:
            One item per blob in scope, in name order.
        """
        clients = self._require_clients()
        prefix = self._scope.listing_prefix(path)
        assert self._settings is not None
        what = f"listing {self._container_what()}"
        pages = list_pages(clients.data, prefix, page_size=LIST_PAGE, retries=self._settings.retry_total, what=what)
        # aclosing: a consumer that stops early also stops the prefetch of the next page, now
        async with mapped_errors(what, source_id=self.source_id), contextlib.aclosing(pages):
            async for page in pages:
                for item in page:
                    if self._scope.matches(item.path):
                        yield item

    # --- metadata ------------------------------------------------------------

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        """The blob's properties: size, version (= etag), type, MD5, tier, lease, version id, user metadata.

        Args:
            identifier: The blob's full name.

        Returns:
            The properties, with ``path`` and ``source_uri`` (no query string: no SAS).

        Raises:
            OutOfScopeError: The name is outside ``prefix`` / ``pattern`` (before any request).
            UnsafeNameError: The name has a '.' or '..' segment (before any request).
            NotFoundError: The blob or container is missing.
            AuthenticationError: Access is denied.
            ConnectionError: The service stayed unreachable within the retry budget.
        """
        clients = self._require_clients()
        assert self._settings is not None
        what = "reading properties of blob"
        self._scope.check_readable(identifier, what)
        headers = await with_retries(partial(clients.data.head, identifier), f"{what} {identifier!r}",
                                     self.source_id, self._settings.retry_total)
        return {"name": identifier.rstrip("/").rsplit("/", 1)[-1], "path": identifier,
                **_properties(headers), "source_uri": clients.data.blob_uri(identifier)}

    # --- uploading -----------------------------------------------------------

    async def upload(
        self, local_path: str | os.PathLike[str] | int, blob_name: str, overwrite: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Uploaded:
        """Upload a local file (or an open descriptor) as block blob ``blob_name``.

        Blocks are staged in parallel and committed together: a failure leaves no blob.

        Args:
            local_path: The file, or an open descriptor the caller keeps.
            blob_name: The blob's full name (inside the source's scope).
            overwrite: Replace a blob of that name; without it a taken name is refused.
            metadata: User metadata for the blob.

        Returns:
            Where it went (name, URI, container) and what it holds (etag, size, MD5, sha256).

        Raises:
            OutOfScopeError: The name is outside the scope.
            UnsafeNameError: The name has a '.' or '..' segment.
            BlobExistsError: The name is taken and ``overwrite`` is not set (nothing changed).
            FileChangedError: The local file changed during the upload (nothing committed).
            AuthenticationError: Access is denied.
            ConnectionError: The service stayed unreachable within the retry budget.
        """
        clients = self._require_clients()
        assert self._settings is not None
        self._scope.check_readable(blob_name, "uploading blob")
        return await upload_file(clients.data, local_path, blob_name, overwrite=overwrite, metadata=metadata or {},
                                 concurrency=self._settings.max_concurrency, retries=self._settings.retry_total)

    # --- fetching ------------------------------------------------------------

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        """Land blob ``identifier`` at ``<workspace>/<identifier>`` with its provenance record.

        Args:
            identifier: The blob's full name, as listed.
            workspace: The folder to land it in.

        Returns:
            The landed file's absolute path.

        Raises:
            UnsafeNameError: Before any request, for a name that cannot land safely.
            NotFoundError: The blob or container is missing.
            AuthenticationError: Access is denied.
            IntegrityError: Short body, Content-MD5 mismatch, or the blob kept changing.
            ConnectionError: The service stayed unreachable within the retry budget.
        """
        return await self._fetch(identifier, workspace, None)

    async def _fetch(self, identifier: str, workspace: str, batch: _Batch | None) -> str:
        safe_relative_path(identifier)
        clients = self._require_clients()
        self._scope.check(identifier, "fetching blob")
        for restart in range(CHANGED_RESTARTS + 1):
            try:
                async with mapped_errors(f"fetching blob {identifier!r}", source_id=self.source_id):
                    return await self._fetch_once(clients, identifier, workspace, batch)
            except BlobChangedError:
                if restart == CHANGED_RESTARTS:
                    raise
                log.info("source %s: blob %r changed while downloading; starting again", self.source_id, identifier)
        raise AssertionError("unreachable")

    async def _fetch_once(self, clients: _Clients, identifier: str, workspace: str, batch: _Batch | None) -> str:
        # batch.waiting bounds the small bodies held in memory until their group lands
        async with batch.waiting if batch else contextlib.nullcontext():
            return await self._download_and_land(clients, identifier, workspace, batch)

    async def _download_and_land(
        self, clients: _Clients, identifier: str, workspace: str, batch: _Batch | None
    ) -> str:
        assert self._settings is not None
        with contextlib.ExitStack() as stack:
            opened: list[Landing] = []

            async def open_target() -> int:
                # opened only once the service said the blob exists: a 404 leaves no folders behind;
                # in a thread, because mkdir/open/flock would stall every other transfer on the loop
                target = landing(workspace, identifier, source_id=self.source_id)
                opened.append(await finish_in_thread(partial(stack.enter_context, target), clients.disk))
                return opened[0].fd

            download = BlobDownload(
                clients.data, identifier, open_target,
                concurrency=self._settings.max_concurrency, retries=self._settings.retry_total,
            )
            # the gate counts network work only: a blob waiting for its group to land does not hold it
            async with batch.downloads if batch else contextlib.nullcontext():
                result = await download.run()
            if result.facts.is_folder and result.facts.size == 0:  # ADLS Gen2: a directory, not a file
                raise _folder_error(identifier, self.source_id)
            provenance = self._provenance(clients, identifier, result)
            if result.body is not None and batch is not None:
                check = partial(_check_body, result, identifier, self.source_id)
                landed = await batch.group.land(workspace, identifier, result.body, source_id=self.source_id,
                                                provenance=provenance, check=check)
                return str(landed.path)
            if result.body is not None:  # a small blob: open, write and commit in one trip to a thread
                small = partial(_land_bytes, workspace, identifier, self.source_id, result, provenance)
                return str(await finish_in_thread(small, clients.disk))
            commit = partial(opened[0].commit, provenance=provenance,
                             expected_size=result.facts.size, sha256=result.sha256)
            landed = await finish_in_thread(commit, clients.disk)  # fsyncs: off the event loop
            return str(landed.path)

    def _provenance(self, clients: _Clients, identifier: str, result: Downloaded) -> dict[str, Any]:
        facts = result.facts
        return {
            "source_type": self.type_name(),
            "source_uri": clients.data.blob_uri(identifier),
            "source_version": facts.etag,
            "container": self._settings.container_name if self._settings else None,
            "etag": facts.etag,
            "last_modified": facts.last_modified,
            "content_md5": facts.content_md5,
            "content_type": facts.content_type,
        }

    async def fetch_many(
        self, identifiers: Iterable[str], workspace: str, concurrency: int = 16
    ) -> list[FetchResult]:
        """Fetch several blobs, ``concurrency`` downloads at once on the shared pool.

        Small blobs take one GET each and land in groups with one file-system sync per group
        (:mod:`connectors.landing.group_commit`). One failure never undoes the others.

        Args:
            identifiers: The blobs' full names.
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


@dataclass
class _Batch:
    """What the fetches of one ``fetch_many`` share."""

    downloads: asyncio.Semaphore  # downloads in flight
    waiting: asyncio.Semaphore  # items from the start of their download until landed
    group: GroupCommit


def _folder_error(identifier: str, source_id: str) -> NotFoundError:
    return NotFoundError(f"fetching blob {identifier!r}: it is a folder placeholder (hdi_isfolder, or a name "
                         "ending in '/'), not a file", source_id=source_id)


def _check_body(result: Downloaded, identifier: str, source_id: str) -> None:
    """Compare a small blob's bytes with its Content-MD5, when it has one."""
    if result.facts.content_md5 is not None:
        check_md5(result.facts, hashlib.md5(result.body or b""), identifier, source_id)  # noqa: S324


def _land_bytes(
    workspace: str, identifier: str, source_id: str, result: Downloaded, provenance: dict[str, Any]
) -> Path:
    """Verify and land a small blob already in memory, in a landing thread (sha256 computed on write).

    Hashing here rather than on the event loop: a hash call releases the GIL,
    and getting it back from busy landing threads would stall every transfer.
    """
    body = result.body
    assert body is not None
    _check_body(result, identifier, source_id)
    with landing(workspace, identifier, source_id=source_id) as land:
        land.write(body)
        return land.commit(provenance=provenance, expected_size=len(body)).path


# --- building the clients ------------------------------------------------------


async def _open_clients(settings: AzureBlobSettings, source_id: str, reach: ReachPolicy | None = None) -> _Clients:
    endpoint = endpoint_of(settings, source_id)
    if reach is not None:  # before any credential is built or any request sent
        check_url(endpoint.account_url, reach)
    credential, authorizer, closable = credentials_for(settings, endpoint, source_id)
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout,
                                      sock_read=settings.read_timeout),
        auto_decompress=False,  # bytes land exactly as stored
        read_bufsize=1 << 20,  # fewer pause/resume cycles of the socket on large bodies
        connector=checked_connector(reach, limit=64, enable_cleanup_closed=True),
        trace_configs=trace_configs(reach),
    )
    try:
        service = BlobServiceClient(
            endpoint.account_url, credential=credential,
            # the transport, not the client, applies timeouts to a session it was given
            transport=AioHttpTransport(session=session, session_owner=False,
                                       connection_timeout=settings.connect_timeout, read_timeout=settings.read_timeout),
            retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=settings.retry_total,
                                          random_jitter_range=1),
            connection_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
        )
    except ValueError:  # its text may quote the URL; ours does not
        await session.close()
        if closable is not None:
            await closable.close()
        raise ConfigurationError("config.account_url: the storage client refused this URL (expected "
                                 "https://<account>.blob.core.windows.net or an emulator's URL)",
                                 source_id=source_id) from None
    container = service.get_container_client(settings.container_name)
    data = DataPath(session, container.url, service.api_version, authorizer, source_id)
    disk = ThreadPoolExecutor(max_workers=DISK_THREADS, thread_name_prefix="da-azure-land")
    return _Clients(session, service, container, data, closable, disk)


# --- small pure helpers ----------------------------------------------------------


def _properties(headers: Mapping[str, str]) -> dict[str, Any]:
    """The facts of a Get Blob Properties answer, keyed as listings key them."""
    etag = quoted_etag(headers.get("ETag", ""))
    return {
        "size": int(headers.get("Content-Length") or 0),
        "version": etag,
        "etag": etag,
        "content_type": headers.get("Content-Type"),
        "content_encoding": headers.get("Content-Encoding"),
        "content_md5": headers.get("Content-MD5"),
        "last_modified": iso_utc(headers.get("Last-Modified")),
        "access_tier": headers.get("x-ms-access-tier"),
        "lease_state": headers.get("x-ms-lease-state"),
        "version_id": headers.get("x-ms-version-id"),
        # user metadata keeps the case it was stored with (the SDK does the same)
        "metadata": {k[len(_META):]: v for k, v in headers.items() if k.lower().startswith(_META)},
    }


_META = "x-ms-meta-"
