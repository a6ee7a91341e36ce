"""Uploading a local file as one S3 object, never over an existing one unless asked.

How an upload goes:

* the file is read once and hashed (MD5 and sha256) while its size, inode and change
  times are taken before and after; a file of up to :data:`IN_MEMORY` bytes is sent
  from exactly the bytes hashed; a larger one goes in parts (:mod:`connectors.s3.multipart`:
  parts in parallel, each checked by its Content-MD5, aborted on any failure);
* one PutObject, with ``If-None-Match: *``
  unless ``overwrite``: the store refuses it when the key exists
  (:class:`~connectors.azure_blob.upload.BlobExistsError`), whoever created it meanwhile;
* a retried PutObject that meets 412 checks whether the object holds exactly our bytes
  (its ETag is our MD5 and its ``x-amz-meta-sha256`` our sha256): then the first attempt
  landed and only its answer was lost;
* a change of the local file is a :class:`~connectors.azure_blob.upload.FileChangedError`,
  the same error ``azure_blob`` raises, so the CLI and the API answer it the same way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
import os
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from connectors.azure_blob.data_path import iso_utc
from connectors.azure_blob.errors import HttpStatusError, translate
from connectors.azure_blob.retries import RetryBudget, with_retries
from connectors.azure_blob.upload import BlobExistsError, FileChangedError, Uploaded, check_metadata
from connectors.errors import WorkspaceError
from connectors.s3.data_path import S3DataPath, etag_md5
from connectors.s3.multipart import MultipartUpload, digest_file, part_size_for

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

IN_MEMORY = 64 * 1024 * 1024  # bytes: files up to this size are sent from the very buffer that was hashed
STREAM_CHUNK = 1024 * 1024

_Send = Callable[[], Awaitable[Mapping[str, str]]]  # one PutObject attempt


async def upload_file(
    path: S3DataPath, local: str | os.PathLike[str] | int, key: str, *, overwrite: bool,
    metadata: Mapping[str, str], retries: int,
) -> Uploaded:
    """Upload ``local`` (a path, or an open descriptor the caller keeps) as object ``key``."""
    if isinstance(local, int):
        return await _upload_fd(path, local, key, overwrite=overwrite, metadata=check_metadata(metadata),
                                retries=retries)
    try:
        fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise WorkspaceError(f"uploading {os.fspath(local)!r}: cannot open it ({exc.strerror})") from exc
    try:
        return await upload_file(path, fd, key, overwrite=overwrite, metadata=metadata, retries=retries)
    finally:
        os.close(fd)


async def _upload_fd(path: S3DataPath, fd: int, key: str, *, overwrite: bool, metadata: Mapping[str, str],
                     retries: int) -> Uploaded:
    what = f"uploading object {key!r}"
    before = os.fstat(fd)
    if before.st_size > IN_MEMORY:
        return await _upload_in_parts(path, fd, key, before, overwrite=overwrite, metadata=metadata,
                                      retries=retries, what=what)
    body, md5, sha256 = await asyncio.to_thread(_read_and_hash, fd, before.st_size, what, path.source_id)
    _check_unchanged(before, os.fstat(fd), what, path.source_id)
    headers = _headers(key, before.st_size, md5, sha256, metadata, overwrite)
    # what was stored is what was hashed: the very bytes; a change after this point is the next upload's
    send: _Send = partial(path.put, key, body, headers, sha256)
    answer = await _put_once(path, key, send, headers, retries, what)
    return Uploaded(key, path.blob_uri(key), answer.get("ETag", ""), before.st_size, md5, sha256,
                    iso_utc(answer.get("Last-Modified")), path.container, answer.get("x-amz-version-id"))


async def _upload_in_parts(path: S3DataPath, fd: int, key: str, before: os.stat_result, *, overwrite: bool,
                           metadata: Mapping[str, str], retries: int, what: str) -> Uploaded:
    size = before.st_size
    digests = await asyncio.to_thread(digest_file, fd, size, part_size_for(size), what)
    _check_unchanged(before, os.fstat(fd), what, path.source_id)
    every = _headers(key, size, digests.md5, digests.sha256, metadata, overwrite=True)
    create = {k: v for k, v in every.items() if k.startswith("x-amz-meta-") or k == "Content-Type"}
    upload = MultipartUpload(path, key, fd, size, digests, retries=retries, what=what)
    answer = await upload.run(create, overwrite,
                              lambda: _check_unchanged(before, os.fstat(fd), what, path.source_id))
    return Uploaded(key, path.blob_uri(key), answer.get("ETag", ""), size, digests.md5, digests.sha256,
                    iso_utc(answer.get("Last-Modified")), path.container, answer.get("x-amz-version-id"))


def _read_and_hash(fd: int, size: int, what: str, source_id: str | None) -> tuple[bytes, str, str]:
    """The file's bytes (at most :data:`IN_MEMORY`), base64 MD5 and hex sha256."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()  # noqa: S324 - the store's checksum
    kept = bytearray()
    offset = 0
    while offset < size:
        try:
            data = os.pread(fd, min(8 * STREAM_CHUNK, size - offset), offset)
        except OSError as exc:
            raise WorkspaceError(f"{what}: cannot read the local file ({exc.strerror})") from exc
        if not data:
            raise _changed(what, "it got shorter", source_id)
        md5.update(data)
        sha256.update(data)
        kept += data
        offset += len(data)
    return bytes(kept), base64.b64encode(md5.digest()).decode(), sha256.hexdigest()


def _headers(key: str, size: int, md5: str, sha256: str, metadata: Mapping[str, str],
             overwrite: bool) -> dict[str, str]:
    headers = {
        "Content-Length": str(size),
        "Content-MD5": md5,
        "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode(),
        **{f"x-amz-meta-{k}": v for k, v in {**metadata, "sha256": sha256}.items()},
    }
    content_type = mimetypes.guess_type(key)[0]
    if content_type:
        headers["Content-Type"] = content_type
    if not overwrite:
        headers["If-None-Match"] = "*"
    return headers


async def _put_once(path: S3DataPath, key: str, send: _Send, headers: Mapping[str, str], retries: int,
                    what: str) -> Mapping[str, str]:
    budget = RetryBudget(retries)
    retried = False
    while True:
        try:
            return await send()
        except HttpStatusError as exc:
            if exc.status in (409, 412) and "If-None-Match" in headers:
                if retried and (ours := await _committed_by_us(path, key, headers, retries, what)) is not None:
                    return ours
                raise BlobExistsError(f"{what}: an object of that key exists; give overwrite to replace it "
                                      f"(HTTP {exc.status})", source_id=path.source_id) from None
            if exc.status == 400 and exc.code in ("BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody"):
                raise _changed(what, f"the store refused its bytes: {exc.code}", path.source_id) from None
            if not await budget.pause(translate(exc, what, path.source_id), exc.retry_after):
                raise translate(exc, what, path.source_id) from exc
        except Exception as exc:
            if not await budget.pause(translate(exc, what, path.source_id), None):
                raise translate(exc, what, path.source_id) from exc
        retried = True


async def _committed_by_us(path: S3DataPath, key: str, headers: Mapping[str, str], retries: int,
                           what: str) -> Mapping[str, str] | None:
    found = await with_retries(partial(path.head, key), what, path.source_id, retries)
    same_md5 = etag_md5(found.get("ETag", "")) == headers["Content-MD5"]
    return found if same_md5 and found.get("x-amz-meta-sha256") == headers["x-amz-meta-sha256"] else None


def _check_unchanged(before: os.stat_result, after: os.stat_result, what: str, source_id: str | None) -> None:
    fingerprint = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    if fingerprint != (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns):
        how = f"size {before.st_size} -> {after.st_size} bytes" if before.st_size != after.st_size \
            else "it was written to"
        raise _changed(what, how, source_id)


def _changed(what: str, how: str, source_id: str | None) -> FileChangedError:
    return FileChangedError(f"{what}: the local file changed while it was being uploaded ({how}); upload it "
                            "again once it is complete", source_id=source_id)
