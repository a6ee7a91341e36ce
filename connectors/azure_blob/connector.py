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

import contextlib
import hashlib
import os
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, ExponentialRetry

from connectors.azure_blob.auth import credentials_for, endpoint_of
from connectors.azure_blob.data_path import DataPath, iso_utc
from connectors.azure_blob.hashing import check_md5
from connectors.azure_blob.listing import list_pages, probe, quoted_etag
from connectors.azure_blob.ranged_download import Downloaded
from connectors.azure_blob.reach import WHERE, check_url
from connectors.azure_blob.upload import Uploaded, upload_file
from connectors.base import DataItem
from connectors.errors import ConfigurationError, NotFoundError
from connectors.landing.atomic import Landing
from connectors.object_store import ObjectStoreConnector, StoreClients, disk_pool, open_session
from connectors.reach import ReachPolicy
from connectors.settings import AzureBlobSettings

LIST_PAGE = 5000  # blobs per listing page: the service's maximum, fewest round trips


@dataclass
class _Clients(StoreClients):
    """Besides the session the SDK shares with the data path: the SDK's clients and the credential."""

    data: DataPath
    service: BlobServiceClient
    container: ContainerClient
    credential: Any  # an azure-identity credential to close, or None


class AzureBlobConnector(ObjectStoreConnector[_Clients, AzureBlobSettings]):
    """Serves the blobs of one container in scope (``prefix``, ``pattern``); identifiers are full blob names."""

    settings_model = AzureBlobSettings
    noun = "blob"

    # --- connection --------------------------------------------------------

    async def connect(self) -> bool:
        """Build the clients; no request is sent (:meth:`test_connection` asks the service).

        Returns:
            True.

        Raises:
            ConfigurationError: The config has no ``container_name``, or a setting or secret reference is invalid.
        """
        if self._clients is None and self.config.config.get("container_name") is None:
            # DeepAnalyze's own example builds such a config
            raise ConfigurationError("config.container_name: required: an azure_blob source reads one container "
                                     "(account-level access is not supported); add container_name to its config",
                                     source_id=self.source_id)
        return await super().connect()

    async def _open_clients(self, settings: AzureBlobSettings) -> _Clients:
        return await _open_clients(settings, self.source_id, self.reach)

    async def _close_clients(self, clients: _Clients) -> None:
        with contextlib.suppress(Exception):
            await clients.service.close()
        if clients.credential is not None:
            with contextlib.suppress(Exception):
                await clients.credential.close()

    def _what(self) -> str:
        if not isinstance(self.config.config.get("container_name"), str):  # a reference: its value is not shown
            return "container (config.container_name)"
        name = self._settings.container_name if self._settings else self.config.config.get("container_name")
        return f"container {name!r}"

    # --- listing -------------------------------------------------------------

    def _list_pages(self, clients: _Clients, prefix: str, retries: int,
                    what: str) -> AsyncGenerator[list[DataItem], None]:
        return list_pages(clients.data, prefix, page_size=LIST_PAGE, retries=retries, what=what)

    async def _probe(self, clients: _Clients, prefix: str, retries: int, what: str) -> None:
        await probe(clients.data, prefix, retries=retries, what=what)

    def _properties(self, headers: Mapping[str, str]) -> dict[str, Any]:
        return _properties(headers)

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
        clients, settings = self._require()
        self._scope.check_readable(blob_name, "uploading blob")
        return await upload_file(clients.data, local_path, blob_name, overwrite=overwrite, metadata=metadata or {},
                                 concurrency=settings.max_concurrency, retries=settings.retry_total)

    # --- fetching: what Azure checks and records ----------------------------

    async def _verified(self, clients: _Clients, identifier: str, result: Downloaded,
                        opened: list[Landing]) -> Downloaded:
        if result.facts.is_folder and result.facts.size == 0:  # ADLS Gen2: a directory, not a file
            raise _folder_error(identifier, self.source_id)
        return result

    def _check_body(self, result: Downloaded, identifier: str) -> None:
        """Compare a small blob's bytes with its Content-MD5, when it has one."""
        if result.facts.content_md5 is not None:
            check_md5(result.facts, hashlib.md5(result.body or b""), identifier, self.source_id)  # noqa: S324

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


def _folder_error(identifier: str, source_id: str) -> NotFoundError:
    return NotFoundError(f"fetching blob {identifier!r}: it is a folder placeholder (hdi_isfolder, or a name "
                         "ending in '/'), not a file", source_id=source_id)


# --- building the clients ------------------------------------------------------


async def _open_clients(settings: AzureBlobSettings, source_id: str, reach: ReachPolicy | None = None) -> _Clients:
    endpoint = endpoint_of(settings, source_id)
    if reach is not None:  # before any credential is built or any request sent
        check_url(endpoint.account_url, reach)
    credential, authorizer, closable = credentials_for(settings, endpoint, source_id)
    session = open_session(settings.connect_timeout, settings.read_timeout, reach, WHERE)
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
    return _Clients(session=session, data=data, disk=disk_pool("da-azure-land"), service=service,
                    container=container, credential=closable)


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
