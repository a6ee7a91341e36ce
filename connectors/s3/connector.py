"""``s3``: a bucket of Amazon S3 or of an S3-compatible store (MinIO, Cloudflare R2, Ceph, GCS interop).

Identifiers are full object keys (``DataItem.path``); an object lands at ``<workspace>/<key>``,
with the scope rules and the download engine of ``azure_blob``; the logic is the base class both
share (:mod:`connectors.object_store`), the hooks here are S3's own. How bytes move and are
checked, and how requests are signed: ``docs/design/s3.md``.

Example:
    >>> config = DataSourceConfig(id="lake", type="s3", name="Lake", config={
    ...     "bucket": "data", "region": "eu-west-1",
    ...     "access_key_id": {"env": "AWS_ACCESS_KEY_ID"}, "secret_access_key": {"env": "AWS_SECRET_ACCESS_KEY"}})
    >>> async with S3Connector(config) as lake:
    ...     await lake.fetch_data("exports/2024/a.parquet", "/tmp/ws")
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from connectors.azure_blob.data_path import iso_utc
from connectors.azure_blob.hashing import check_md5
from connectors.azure_blob.listing import quoted_etag
from connectors.azure_blob.ranged_download import SMALL_BLOB, Downloaded
from connectors.azure_blob.reach import check_url
from connectors.azure_blob.retries import with_retries
from connectors.azure_blob.upload import Uploaded
from connectors.base import DataItem
from connectors.errors import AuthenticationError, IntegrityError
from connectors.landing.atomic import Landing
from connectors.landing.dirs import finish_in_thread
from connectors.object_store import ObjectStoreConnector, StoreClients, disk_pool, open_session
from connectors.s3.auth import bucket_url, signer_for
from connectors.s3.checksums import digests_for, missing, new_digest
from connectors.s3.data_path import S3DataPath, S3Facts, checksum_problem, checksums_of
from connectors.s3.listing import list_pages, probe
from connectors.s3.upload import upload_file
from connectors.settings import S3Settings


@dataclass
class _Clients(StoreClients):
    data: S3DataPath


WHERE = "config.endpoint_url"  # what a refusal of the policy names
_ACTIONS = {"list": "list this bucket", "read": "read this object"}  # what an anonymous refusal says was refused


class S3Connector(ObjectStoreConnector[_Clients, S3Settings]):
    """Serves the objects of one bucket in scope (``prefix``, ``pattern``); identifiers are full keys."""

    settings_model = S3Settings
    noun = "object"

    # --- connection --------------------------------------------------------

    async def _open_clients(self, settings: S3Settings) -> _Clients:
        if self.reach is not None:  # before any credential is looked up or any request sent
            check_url(bucket_url(settings), self.reach, WHERE)
        signer = await signer_for(settings, self.source_id)
        # under a policy: every name resolved by us and checked, every request's URL checked
        session = open_session(settings.connect_timeout, settings.read_timeout, self.reach, WHERE)
        data = S3DataPath(session, bucket_url(settings), signer, self.source_id, bucket=settings.bucket,
                          verify_etag_md5=settings.verify_etag_md5)
        return _Clients(session, data, disk_pool("da-s3-land"))

    def _what(self) -> str:
        name = self._settings.bucket if self._settings else self.config.config.get("bucket")
        return f"bucket {name!r}"

    @contextlib.contextmanager
    def _refusals(self, action: str) -> Iterator[None]:
        try:
            yield
        except AuthenticationError as exc:
            denied = self._anonymous_denied(exc, _ACTIONS[action])
            if denied is exc:
                raise  # as it was: ``from exc`` would make the error its own cause
            raise denied from exc

    def _anonymous_denied(self, error: AuthenticationError, action: str) -> AuthenticationError:
        """A refusal of an unsigned request says so: not public (no key was sent to check)."""
        if self._settings is None or self._settings.credential != "anonymous":
            return error
        return AuthenticationError(f"{error.message.split('; check')[0]}; the source reads anonymously "
                                   f"(credential: anonymous), and the store does not let anyone {action}: "
                                   "it is not public", source_id=self.source_id)

    # --- listing and metadata ------------------------------------------------

    def _list_pages(self, clients: _Clients, prefix: str, retries: int,
                    what: str) -> AsyncGenerator[list[DataItem], None]:
        return list_pages(clients.data, prefix, retries=retries, what=what)

    async def _probe(self, clients: _Clients, prefix: str, retries: int, what: str) -> None:
        await probe(clients.data, prefix, retries=retries, what=what)

    def _properties(self, headers: Mapping[str, str]) -> dict[str, Any]:
        return properties(headers)

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

    # --- fetching: what S3 checks and records ---------------------------------

    def _stored_checks(self, facts: Any, have: Iterable[str]) -> list[Any]:
        """The engine's extra digests: one per full-object x-amz-checksum-* the facts name, beyond ``have``."""
        return digests_for(facts.checksums, have) if isinstance(facts, S3Facts) else []

    async def _verified(self, clients: _Clients, identifier: str, result: Downloaded,
                        opened: list[Landing]) -> Downloaded:
        if result.body is None:
            result = await self._check_stored_checksum(clients, identifier, result, opened[0].fd)
        return result

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

    def _check_body(self, result: Downloaded, identifier: str) -> None:
        _check_body(result, identifier, self.source_id)

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
