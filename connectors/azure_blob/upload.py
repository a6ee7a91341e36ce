"""Uploading a local file as a block blob on the connector's data path.

Blocks are staged in parallel with their Content-MD5 and committed by one Put Block List, so a
name shows nothing or the whole blob; a file changing while it uploads is a
:class:`FileChangedError`, and without ``overwrite`` an existing name is a :class:`BlobExistsError`.
How an upload goes, step by step: ``docs/design/azure_blob.md``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote
from xml.sax.saxutils import escape

import yarl

from connectors.azure_blob.data_path import DataPath, iso_utc
from connectors.azure_blob.errors import HttpStatusError, error_code, translate
from connectors.azure_blob.ranged_download import run_all
from connectors.azure_blob.retries import RetryBudget, with_retries
from connectors.errors import ConfigurationError, DataFetchError, IntegrityError, WorkspaceError

# The names other packages (connectors.s3, connectors.api) use; the rest serve this package only.
__all__ = ["BLOCK", "BlobExistsError", "FileChangedError", "Uploaded", "check_metadata"]

BLOCK = 8 * 1024 * 1024  # bytes per Put Block: few requests, bounded memory per request in flight
MAX_BLOCKS = 50_000  # the service's limit of blocks per blob
MAX_METADATA_BYTES = 8 * 1024  # the service's limit of all x-ms-meta-* names and values together
_META_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # a C# identifier, as the service requires


class BlobExistsError(DataFetchError):
    """The blob name is taken and the upload was not asked to overwrite it."""


class FileChangedError(IntegrityError):
    """The local file changed while it was being uploaded; nothing was committed (retryable once it holds still)."""


@dataclass(frozen=True)
class Uploaded:
    """A committed upload: where it went and what it holds."""

    blob_name: str
    uri: str
    etag: str
    size: int
    content_md5: str
    sha256: str
    last_modified: str | None
    container: str = ""
    version_id: str | None = None  # set when the account keeps blob versions


def _block_size_for(size: int) -> int:
    """:data:`BLOCK`, or more when the file would need over :data:`MAX_BLOCKS` blocks."""
    return max(BLOCK, -(-size // MAX_BLOCKS))


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` as the service takes it: identifier names, ASCII values, 8 KiB in all.

    Args:
        metadata: User metadata for the blob (names and values are hostile input).

    Returns:
        A copy, checked.

    Raises:
        ConfigurationError: Naming the first key or value the service would refuse.
    """
    checked: dict[str, str] = {}
    for name, value in metadata.items():
        if not _META_NAME.match(name):
            raise ConfigurationError(f"metadata name {name!r}: letters, digits and '_', not starting with a digit")
        if not value.isascii() or any(ord(c) < 32 for c in value):
            raise ConfigurationError(f"metadata {name!r}: values are printable ASCII")
        checked[name] = value
    if sum(len(k) + len(v) for k, v in checked.items()) > MAX_METADATA_BYTES:
        raise ConfigurationError(f"metadata over {MAX_METADATA_BYTES} bytes in all")
    return checked


class BlobUpload:
    """One upload of the open file ``fd`` (the caller closes it) to blob ``name``."""

    def __init__(self, path: DataPath, fd: int, name: str, *, concurrency: int, retries: int) -> None:
        self._path = path
        self._fd = fd
        self._name = name
        self._concurrency = concurrency
        self._retries = retries
        self._what = f"uploading blob {name!r}"
        self._token = secrets.token_hex(8)
        # a key-signed SAS is read-only on the data path; an upload signs its own that may write
        for_writing = getattr(path.authorizer, "for_writing", None)
        self._authorizer = for_writing() if for_writing is not None else path.authorizer

    async def run(self, metadata: Mapping[str, str], overwrite: bool) -> Uploaded:
        """Stage every block, then commit them; raises :class:`BlobExistsError` on a taken name.

        Raises :class:`FileChangedError`, committing nothing, when the file changed meanwhile.
        """
        before = os.fstat(self._fd)
        size = before.st_size
        step = _block_size_for(size)
        offsets = list(range(0, size, step))  # none for an empty file: an empty block list makes an empty blob
        ids = [self._block_id(i) for i in range(len(offsets))]
        staged: dict[int, str] = {}  # block offset -> MD5 of the bytes sent
        hashes = asyncio.create_task(asyncio.to_thread(self._whole_file_digests, size, step))
        try:
            await self._stage_all(list(zip(ids, offsets, strict=True)), step, size, staged)
            md5, sha256, read_again = await hashes
        finally:
            hashes.cancel()
        self._check_unchanged(before, os.fstat(self._fd), staged, read_again)
        headers = self._commit_headers(md5, {**metadata, "sha256": sha256}, overwrite)
        answer = await self._commit(ids, headers)
        return Uploaded(self._name, self._path.blob_uri(self._name), answer.get("ETag", ""), size, md5, sha256,
                        iso_utc(answer.get("Last-Modified")), self._path.container,
                        answer.get("x-ms-version-id"))

    def _block_id(self, index: int) -> str:
        return base64.b64encode(f"{self._token}-{index:06d}".encode()).decode()

    async def _stage_all(self, blocks: list[tuple[str, int]], step: int, size: int, staged: dict[int, str]) -> None:
        pending = iter(blocks)

        async def worker() -> None:
            for block_id, offset in pending:  # one shared iterator: each block is staged once
                data = await asyncio.to_thread(self._read, offset, min(step, size - offset))
                md5 = _md5(data)
                await with_retries(partial(self._put_block, block_id, data, md5), self._what,
                                   self._path.source_id, self._retries)
                staged[offset] = md5

        await run_all(worker() for _ in range(min(self._concurrency, len(blocks))))

    def _read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; fewer means the file was cut short since the upload began."""
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as exc:
            raise WorkspaceError(f"{self._what}: cannot read the local file ({exc.strerror})") from exc
        if len(data) != length:
            raise self._changed("it got shorter")
        return data

    def _whole_file_digests(self, size: int, step: int) -> tuple[str, str, dict[int, str]]:
        """The file's MD5 and sha256, and each block's MD5 as read here (to compare with what was staged)."""
        md5, sha256 = hashlib.md5(), hashlib.sha256()  # noqa: S324 - the service's checksum
        blocks: dict[int, str] = {}
        for offset in range(0, size, step):
            data = self._read(offset, min(step, size - offset))
            md5.update(data)
            sha256.update(data)
            blocks[offset] = _md5(data)
        return base64.b64encode(md5.digest()).decode(), sha256.hexdigest(), blocks

    def _check_unchanged(self, before: os.stat_result, after: os.stat_result, staged: dict[int, str],
                         read_again: dict[int, str]) -> None:
        """Refuse to commit blocks of a file that changed (a writer still at work, or an edit meanwhile).

        The change time (ctime) is compared besides the modification time because a program
        can set mtime back, never ctime; a block's MD5 read twice catches a rewrite of the same
        size within the file system's clock tick.
        """
        if _fingerprint(before) != _fingerprint(after):
            raise self._changed(f"size {before.st_size} -> {after.st_size} bytes"
                                if before.st_size != after.st_size else "it was written to")
        if staged != read_again:
            raise self._changed("its content differs between two reads")

    def _changed(self, how: str) -> FileChangedError:
        return FileChangedError(f"{self._what}: the local file changed while it was being uploaded ({how}); "
                                "nothing was committed; upload it again once it is complete",
                                source_id=self._path.source_id)

    async def _put_block(self, block_id: str, data: bytes, md5: str) -> None:
        await self._put(f"comp=block&blockid={quote(block_id, safe='')}", data, {"Content-MD5": md5})

    def _commit_headers(self, md5: str, metadata: Mapping[str, str], overwrite: bool) -> dict[str, str]:
        headers = {"x-ms-blob-content-md5": md5, **{f"x-ms-meta-{k}": v for k, v in metadata.items()}}
        content_type = mimetypes.guess_type(self._name)[0]
        if content_type:
            headers["x-ms-blob-content-type"] = content_type
        if not overwrite:
            headers["If-None-Match"] = "*"
        return headers

    async def _commit(self, ids: list[str], headers: dict[str, str]) -> Mapping[str, str]:
        body = "".join(f"<Latest>{escape(i)}</Latest>" for i in ids)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
        budget = RetryBudget(self._retries)
        retried = False
        while True:
            try:
                return await self._put("comp=blocklist", xml, {**headers, "Content-Type": "application/xml"})
            except HttpStatusError as exc:
                if exc.status in (409, 412) and "If-None-Match" in headers:
                    if retried and (ours := await self._committed_by_us(headers)) is not None:
                        return ours  # our first commit landed and only its answer was lost
                    raise BlobExistsError(f"{self._what}: a blob of that name exists; give --overwrite "
                                          "(over the API, \"overwrite\": true) to replace "
                                          f"it (HTTP {exc.status} {error_code(exc.code) or ''})".rstrip(),
                                          source_id=self._path.source_id) from None
                if not await self._retry(budget, exc):
                    raise translate(exc, self._what, self._path.source_id) from exc
            except Exception as exc:
                if not await self._retry(budget, exc):
                    raise translate(exc, self._what, self._path.source_id) from exc
            retried = True

    async def _committed_by_us(self, headers: Mapping[str, str]) -> Mapping[str, str] | None:
        """The blob's headers when it holds exactly what we committed (same MD5 and sha256), else None."""
        found = await with_retries(partial(self._path.head, self._name), self._what, self._path.source_id,
                                   self._retries)
        same_md5 = found.get("Content-MD5") == headers["x-ms-blob-content-md5"]
        return found if same_md5 and found.get("x-ms-meta-sha256") == headers["x-ms-meta-sha256"] else None

    async def _retry(self, budget: RetryBudget, exc: Exception) -> bool:
        retry_after = exc.retry_after if isinstance(exc, HttpStatusError) else None
        return await budget.pause(translate(exc, self._what, self._path.source_id), retry_after)

    async def _put(self, query: str, data: bytes, headers: dict[str, str]) -> Mapping[str, str]:
        path = self._path
        auth = await self._authorizer.query()
        url = yarl.URL(f"{path.blob_uri(self._name)}?{query}" + (f"&{auth}" if auth else ""), encoded=True)
        sent = {"x-ms-version": path.api_version, **await self._authorizer.headers(), **headers}
        async with path.session.put(url, data=data, headers=sent, allow_redirects=False) as response:
            await response.read()
            if response.status != 201:
                raise HttpStatusError(response.status, response.headers.get("x-ms-error-code"),
                                      _seconds(response.headers.get("Retry-After")))
            return response.headers


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - the service's checksum


def _fingerprint(info: os.stat_result) -> tuple[int, ...]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def upload_file(
    path: DataPath, local: str | os.PathLike[str] | int, blob_name: str, *, overwrite: bool,
    metadata: Mapping[str, str], concurrency: int, retries: int,
) -> Uploaded:
    """Upload ``local`` (a path, or an open descriptor the caller keeps) as block blob ``blob_name``."""
    if isinstance(local, int):
        return await BlobUpload(path, local, blob_name, concurrency=concurrency, retries=retries).run(
            check_metadata(metadata), overwrite)
    try:
        fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise WorkspaceError(f"uploading {os.fspath(local)!r}: cannot open it ({exc.strerror})") from exc
    try:
        return await upload_file(path, fd, blob_name, overwrite=overwrite, metadata=metadata,
                                 concurrency=concurrency, retries=retries)
    finally:
        os.close(fd)
