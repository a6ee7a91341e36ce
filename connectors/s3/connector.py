"""``s3``: a bucket of Amazon S3 or of an S3-compatible store (MinIO, Cloudflare R2, Ceph, GCS interop).

Identifiers are full object keys (``DataItem.path``); an object lands at ``<workspace>/<key>``,
with the scope rules and the download engine of ``azure_blob``. How bytes move and are checked,
and how requests are signed: ``docs/design/s3.md``.

Example:
    >>> config = DataSourceConfig(id="lake", type="s3", name="Lake", config={
    ...     "bucket": "data", "region": "eu-west-1",
    ...     "access_key_id": {"env": "AWS_ACCESS_KEY_ID"}, "secret_access_key": {"env": "AWS_SECRET_ACCESS_KEY"}})
    >>> async with S3Connector(config) as lake:
    ...     await lake.fetch_data("exports/2024/a.parquet", "/tmp/ws")
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

from connectors.azure_blob.data_path import iso_utc
from connectors.azure_blob.errors import BlobChangedError, mapped_errors
from connectors.azure_blob.hashing import check_md5
from connectors.azure_blob.listing import quoted_etag
from connectors.azure_blob.ranged_download import SMALL_BLOB, BlobDownload, Downloaded
from connectors.azure_blob.reach import check_url, checked_connector, trace_configs
from connectors.azure_blob.retries import with_retries
from connectors.azure_blob.scope import BlobScope
from connectors.azure_blob.upload import Uploaded
from connectors.base import DataItem, DataSourceConnector, FetchResult, collect_results
from connectors.errors import AuthenticationError, IntegrityError
from connectors.landing.atomic import Landing, landing
from connectors.landing.dirs import finish_in_thread
from connectors.landing.group_commit import MAX_PENDING, GroupCommit
from connectors.landing.names import safe_relative_path
from connectors.s3.auth import bucket_url, signer_for
from connectors.s3.checksums import digests_for, missing, new_digest
from connectors.s3.data_path import S3DataPath, S3Facts, checksum_problem, checksums_of
from connectors.s3.listing import list_pages, probe
from connectors.s3.upload import upload_file
from connectors.secrets.references import get_logger
from connectors.settings import S3Settings

log = get_logger(__name__)

CHANGED_RESTARTS = 2  # an object overwritten mid-download is downloaded again this many times at most
DISK_THREADS = 8


@dataclass
class _Clients:
    session: aiohttp.ClientSession
    data: S3DataPath
    disk: ThreadPoolExecutor


WHERE = "config.endpoint_url"  # what a refusal of the policy names


class S3Connector(DataSourceConnector):
    """Serves the objects of one bucket in scope (``prefix``, ``pattern``); identifiers are full keys."""

    settings_model = S3Settings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._settings: S3Settings | None = None
        self._clients: _Clients | None = None
        self._scope = BlobScope("", None, self.source_id)

    # --- connection --------------------------------------------------------

    async def connect(self) -> bool:
        """Resolve the credentials and open the session; no request is sent to the bucket.

        Returns:
            True.
        """
        if self._clients is not None:
            return True
        settings: S3Settings = self.resolve_settings()
        if self.reach is not None:  # before any credential is looked up or any request sent
            check_url(bucket_url(settings), self.reach, WHERE)
        signer = await signer_for(settings, self.source_id)
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout,
                                          sock_read=settings.read_timeout),
            auto_decompress=False, read_bufsize=1 << 20,
            # under a policy: every name resolved by us and checked, every request's URL checked
            connector=checked_connector(self.reach, WHERE, limit=64, enable_cleanup_closed=True),
            trace_configs=trace_configs(self.reach, WHERE),
        )
        data = S3DataPath(session, bucket_url(settings), signer, self.source_id, bucket=settings.bucket,
                          verify_etag_md5=settings.verify_etag_md5)
        disk = ThreadPoolExecutor(max_workers=DISK_THREADS, thread_name_prefix="da-s3-land")
        self._clients = _Clients(session, data, disk)
        self._settings = settings
        self._scope = BlobScope(settings.prefix, settings.pattern, self.source_id)
        self._connected = True
        return True

    async def disconnect(self) -> None:
        """Close the session. Safe to call twice."""
        clients, self._clients, self._connected = self._clients, None, False
        if clients is not None:
            await clients.session.close()
            clients.disk.shutdown(wait=True)

    async def test_connection(self) -> bool:
        """Ask the bucket for a one-key listing of the scope with these credentials.

        Raises rather than returning False, so the caller can say why.

        Returns:
            True when the bucket answered.

        Raises:
            ConfigurationError: The settings are invalid, or a profile or secret reference cannot be resolved.
            NotFoundError: The bucket does not exist.
            AuthenticationError: The keys or credentials are refused.
            ConnectionError: The endpoint is unreachable, silent or throttling (after the retry budget).
        """
        if not self._connected:
            await self.connect()
        clients, settings = self._require()
        try:
            await probe(clients.data, self._scope.folder, retries=settings.retry_total, what=f"listing {self._what()}")
        except AuthenticationError as exc:
            raise self._anonymous_denied(exc, "list this bucket") from exc
        return True

    def _require(self) -> tuple[_Clients, S3Settings]:
        self._require_connected()
        assert self._clients is not None and self._settings is not None
        return self._clients, self._settings

    def _what(self) -> str:
        name = self._settings.bucket if self._settings else self.config.config.get("bucket")
        return f"bucket {name!r}"

    # --- listing -------------------------------------------------------------

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        """Every object in scope under folder ``path`` (a full key folder), recursively.

        Args:
            path: The folder to list; None for the whole scope.

        Returns:
            One item per object; folder placeholders are left out.

        Raises:
            OutOfScopeError: ``path`` lies outside ``prefix`` (before any request).
        """
        return [item async for item in self.iter_items(path)]

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        """The objects under ``path`` page by page (1,000 per request), never all pages at once.

        Args:
            path: The folder to list; None for the whole scope.

        Yields:
            One item per object in scope, in key order.

        Raises:
            AuthenticationError: the store refused the listing (an anonymous source: the bucket is not
                public); never an empty listing.
        """
        clients, settings = self._require()
        prefix = self._scope.listing_prefix(path)
        what = f"listing {self._what()}"
        pages = list_pages(clients.data, prefix, retries=settings.retry_total, what=what)
        try:
            async with mapped_errors(what, source_id=self.source_id), contextlib.aclosing(pages):
                async for page in pages:
                    for item in page:
                        if self._scope.matches(item.path):
                            yield item
        except AuthenticationError as exc:  # never an empty listing: a refusal is an error
            raise self._anonymous_denied(exc, "list this bucket") from exc

    # --- metadata ------------------------------------------------------------

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        """The object's properties: size, version (= etag), version id, checksums, type, user metadata.

        Args:
            identifier: The object's full key.

        Returns:
            The properties, with ``path`` and ``source_uri`` (no query string, no credential).

        Raises:
            OutOfScopeError: The key is outside ``prefix`` / ``pattern`` (before any request).
            UnsafeNameError: The key has a '.' or '..' segment (before any request).
            NotFoundError: The object or bucket is missing.
            AuthenticationError: Access is denied.
            ConnectionError: The store stayed unreachable or throttling within the retry budget.
        """
        clients, settings = self._require()
        what = "reading properties of object"
        self._scope.check_readable(identifier, what)
        headers = await with_retries(partial(clients.data.head, identifier), f"{what} {identifier!r}",
                                     self.source_id, settings.retry_total)
        return {"name": identifier.rstrip("/").rsplit("/", 1)[-1], "path": identifier,
                **properties(headers), "source_uri": clients.data.blob_uri(identifier)}

    # --- uploading -----------------------------------------------------------

    async def upload(
        self, local_path: str | os.PathLike[str] | int, blob_name: str, overwrite: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Uploaded:
        """Upload a local file (or an open descriptor) as object ``blob_name``.

        A big file goes as a multipart upload, completed only once every part is in; a failure
        aborts it and leaves no object.

        Args:
            local_path: The file, or an open descriptor the caller keeps.
            blob_name: The object's full key (inside the source's scope).
            overwrite: Replace an object of that key; without it a taken key is refused.
            metadata: User metadata for the object.

        Returns:
            Where it went (key, URI) and what it holds (etag, size, MD5, sha256).

        Raises:
            OutOfScopeError: The key is outside the scope.
            UnsafeNameError: The key has a '.' or '..' segment.
            BlobExistsError: The key is taken and ``overwrite`` is not set (nothing changed).
            FileChangedError: The file changed while it was read (nothing committed).
        """
        clients, settings = self._require()
        self._scope.check_readable(blob_name, "uploading object")
        return await upload_file(clients.data, local_path, blob_name, overwrite=overwrite,
                                 metadata=metadata or {}, retries=settings.retry_total)

    # --- fetching ------------------------------------------------------------

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        """Land object ``identifier`` at ``<workspace>/<identifier>`` with its provenance record.

        Args:
            identifier: The object's full key, as listed.
            workspace: The folder to land it in.

        Returns:
            The landed file's absolute path.

        Raises:
            UnsafeNameError: Before any request, for a key that cannot land safely.
            OutOfScopeError: Before any request, for a key outside the scope.
            NotFoundError: The object or bucket is missing.
            AuthenticationError: Access is denied.
            IntegrityError: Short body, ETag-MD5 or checksum mismatch, or the object kept changing.
            ConnectionError: Unreachable or throttled past the retry budget.
        """
        return await self._fetch(identifier, workspace, None)

    async def _fetch(self, identifier: str, workspace: str, batch: _Batch | None) -> str:
        safe_relative_path(identifier)
        clients, _ = self._require()
        self._scope.check(identifier, "fetching object")
        for restart in range(CHANGED_RESTARTS + 1):
            try:
                async with mapped_errors(f"fetching object {identifier!r}", source_id=self.source_id):
                    async with batch.waiting if batch else contextlib.nullcontext():
                        return await self._download_and_land(clients, identifier, workspace, batch)
            except AuthenticationError as exc:
                raise self._anonymous_denied(exc, "read this object") from exc
            except BlobChangedError:
                if restart == CHANGED_RESTARTS:
                    raise
                log.info("source %s: object %r changed while downloading; starting again", self.source_id, identifier)
        raise AssertionError("unreachable")

    def _anonymous_denied(self, error: AuthenticationError, action: str) -> AuthenticationError:
        """A refusal of an unsigned request says so: not public (no key was sent to check)."""
        if self._settings is None or self._settings.credential != "anonymous":
            return error
        return AuthenticationError(f"{error.message.split('; check')[0]}; the source reads anonymously "
                                   f"(credential: anonymous), and the store does not let anyone {action}: "
                                   "it is not public", source_id=self.source_id)

    async def _download_and_land(self, clients: _Clients, identifier: str, workspace: str,
                                 batch: _Batch | None) -> str:
        _, settings = self._require()
        with contextlib.ExitStack() as stack:
            opened: list[Landing] = []

            async def open_target() -> int:
                target = landing(workspace, identifier, source_id=self.source_id)
                opened.append(await finish_in_thread(partial(stack.enter_context, target), clients.disk))
                return opened[0].fd

            download = BlobDownload(clients.data, identifier, open_target, concurrency=settings.max_concurrency,
                                    retries=settings.retry_total, checks=_stored_checks)
            async with batch.downloads if batch else contextlib.nullcontext():
                result = await download.run()
                if result.body is None:
                    result = await self._check_stored_checksum(clients, identifier, result, opened[0].fd)
            provenance = self._provenance(clients, identifier, result)
            if result.body is not None and batch is not None:
                check = partial(_check_body, result, identifier, self.source_id)
                landed = await batch.group.land(workspace, identifier, result.body, source_id=self.source_id,
                                                provenance=provenance, check=check)
                return str(landed.path)
            if result.body is not None:
                small = partial(_land_bytes, workspace, identifier, self.source_id, result, provenance)
                return str(await finish_in_thread(small, clients.disk))
            commit = partial(opened[0].commit, provenance=provenance,
                             expected_size=result.facts.size, sha256=result.sha256)
            return str((await finish_in_thread(commit, clients.disk)).path)

    async def _check_stored_checksum(self, clients: _Clients, identifier: str, result: Downloaded,
                                     fd: int) -> Downloaded:
        """After a ranged download: the bytes against every full-object ``x-amz-checksum-*`` of the object.

        Ranged GETs carry no checksum: the engine asked for them with one HEAD
        (If-Match) before the rest of the ranges and hashed beside them; an object
        the first range covered is asked now, and a checksum that answer names
        and the first GET did not is computed from the landed bytes (16 MiB at
        most). Returns the result with the checksums it was checked against.
        """
        _, settings = self._require()
        facts = result.facts
        if not (isinstance(facts, S3Facts) and facts.refined):
            facts = await with_retries(partial(clients.data.refine_facts, identifier, facts),
                                       f"reading checksums of object {identifier!r}", self.source_id,
                                       settings.retry_total)
        assert result.sha256 is not None and isinstance(facts, S3Facts)
        digests = dict(result.digests)
        if late := missing(facts.checksums, digests):
            digests |= await finish_in_thread(partial(_digest_landed, fd, facts.size, late), clients.disk)
        problem = checksum_problem(facts.checksums, result.sha256, digests)
        if problem:
            raise IntegrityError(f"reading object {identifier!r}: {problem}", source_id=self.source_id)
        return Downloaded(facts, result.sha256, result.body, digests)

    def _provenance(self, clients: _Clients, identifier: str, result: Downloaded) -> dict[str, Any]:
        facts = result.facts
        extra = facts if isinstance(facts, S3Facts) else None
        return {
            "source_type": self.type_name(),
            "source_uri": clients.data.blob_uri(identifier),
            "source_version": facts.etag,
            "bucket": self._settings.bucket if self._settings else None,
            "etag": facts.etag,
            "version_id": extra.version_id if extra else None,
            "checksums": dict(extra.checksums) if extra else {},
            "last_modified": facts.last_modified,
            "content_type": facts.content_type,
        }

    async def fetch_many(
        self, identifiers: Iterable[str], workspace: str, concurrency: int = 16
    ) -> list[FetchResult]:
        """Land several objects with bounded concurrency; small ones land in groups (one sync per group).

        One failure never undoes the others.

        Args:
            identifiers: The objects' full keys.
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
    downloads: asyncio.Semaphore
    waiting: asyncio.Semaphore
    group: GroupCommit


def _stored_checks(facts: Any, have: Iterable[str]) -> list[Any]:
    """The engine's extra digests: one per full-object x-amz-checksum-* the facts name, beyond ``have``."""
    return digests_for(facts.checksums, have) if isinstance(facts, S3Facts) else []


def _digest_landed(fd: int, size: int, algorithms: list[str]) -> dict[str, bytes]:
    """Digests of the landed file's ``size`` bytes (read back from the page cache; run it in a thread)."""
    digests = [new_digest(name) for name in algorithms]
    for start in range(0, size, SMALL_BLOB):
        piece = os.pread(fd, min(SMALL_BLOB, size - start), start)
        for digest in digests:
            digest.update(piece)
    return {d.name: d.digest() for d in digests}


def _check_body(result: Downloaded, identifier: str, source_id: str) -> None:
    """A small object's bytes against its ETag MD5 and its full-object x-amz-checksum-*, when it has them."""
    body = result.body or b""
    if result.facts.content_md5 is not None:
        check_md5(result.facts, hashlib.md5(body), identifier, source_id, "object")  # noqa: S324 - the store's
    checksums = result.facts.checksums if isinstance(result.facts, S3Facts) else {}
    digests = digests_for(checksums)
    for digest in digests:
        digest.update(body)
    problem = checksum_problem(checksums, hashlib.sha256(body).hexdigest(), {d.name: d.digest() for d in digests})
    if problem:
        raise IntegrityError(f"reading object {identifier!r}: {problem}", source_id=source_id)


def _land_bytes(workspace: str, identifier: str, source_id: str, result: Downloaded,
                provenance: dict[str, Any]) -> Path:
    body = result.body
    assert body is not None and len(body) <= SMALL_BLOB
    _check_body(result, identifier, source_id)
    with landing(workspace, identifier, source_id=source_id) as land:
        land.write(body)
        return land.commit(provenance=provenance, expected_size=len(body)).path


def properties(headers: Mapping[str, str]) -> dict[str, Any]:
    """The facts of a HeadObject answer, keyed as listings key them.

    Args:
        headers: The answer's headers.

    Returns:
        Size, version (= etag), version id, type, encoding, storage class, last modified,
        checksums and user metadata.
    """
    etag = quoted_etag(headers.get("ETag", ""))
    return {
        "size": int(headers.get("Content-Length") or 0),
        "version": etag,
        "etag": etag,
        "version_id": headers.get("x-amz-version-id"),
        "content_type": headers.get("Content-Type"),
        "content_encoding": headers.get("Content-Encoding"),
        "storage_class": headers.get("x-amz-storage-class"),
        "last_modified": iso_utc(headers.get("Last-Modified")),
        "checksums": checksums_of(headers),
        "metadata": {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-amz-meta-")},
    }
