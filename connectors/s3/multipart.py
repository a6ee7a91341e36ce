"""Uploading a large local file as one S3 object in parts (multipart upload).

How it goes (files over :data:`~connectors.s3.upload.IN_MEMORY` bytes, and any over 5 GiB):

* one pass over the file gives its sha256 and MD5 (the lineage and the result) and the MD5 of
  every part; size, inode and change times are taken before it;
* CreateMultipartUpload (the sha256 and the caller's metadata as ``x-amz-meta-*``), then up to
  :data:`PARTS_IN_FLIGHT` UploadPart requests at once, each read again into memory, sent with the
  Content-MD5 of those very bytes (the store refuses a part that does not hash to it) and retried
  alone within the connector's retry budget; a part whose bytes hash otherwise than in the first
  pass, or a file whose size or times moved, is a ``FileChangedError``;
* CompleteMultipartUpload commits them: nothing is visible under the key before it, the whole
  object after it; unless ``overwrite`` it carries ``If-None-Match: *`` (``BlobExistsError`` when the
  key is taken, whoever took it meanwhile). A retried Complete that meets 412 or NoSuchUpload checks
  whether the object is ours (the multipart ETag of our part MD5s and our sha256): then the first
  attempt committed and only its answer was lost;
* on any failure or cancellation before the commit the upload is aborted (AbortMultipartUpload),
  so no parts are left behind for the bucket to bill.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from xml.sax.saxutils import escape, unescape

import yarl

from connectors.azure_blob.errors import HttpStatusError, translate
from connectors.azure_blob.ranged_download import run_all
from connectors.azure_blob.retries import RetryBudget, with_retries
from connectors.azure_blob.upload import BlobExistsError, FileChangedError
from connectors.errors import DataFetchError, WorkspaceError
from connectors.s3.auth import EMPTY_SHA256, query_string
from connectors.s3.data_path import S3DataPath, S3StatusError

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

PART = 16 * 1024 * 1024  # bytes per part (S3: 5 MiB at least, 10,000 parts at most)
MAX_PARTS = 10_000
PARTS_IN_FLIGHT = 4  # parts read into memory and sent at once: memory is PARTS_IN_FLIGHT * part size
UNSIGNED = "UNSIGNED-PAYLOAD"  # parts are checked by their Content-MD5; not hashing them twice
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]{1,1024})</UploadId>")
_ETAG = re.compile(rb"<ETag>([^<]{1,200})</ETag>")
_QUOTES = {"&quot;": '"', "&#34;": '"'}
_ERROR = re.compile(rb"<Error>.*?<Code>([A-Za-z0-9.]{1,64})</Code>", re.S)


def part_size_for(size: int) -> int:
    """:data:`PART`, or more (whole MiB) when the file would need over :data:`MAX_PARTS` parts."""
    needed = -(-size // MAX_PARTS)
    return max(PART, -(-needed // (1 << 20)) << 20)


@dataclass(frozen=True)
class FileDigests:
    """What the first pass read: the whole file's sha256 and MD5, and every part's MD5 (base64)."""

    sha256: str
    md5: str
    part_md5s: list[str]

    def multipart_etag(self) -> str:
        """The ETag S3 gives the object these parts make: MD5 of the parts' MD5s, then ``-<parts>``."""
        joined = b"".join(base64.b64decode(m) for m in self.part_md5s)
        return f'"{hashlib.md5(joined).hexdigest()}-{len(self.part_md5s)}"'  # noqa: S324 - S3's ETag


def digest_file(fd: int, size: int, part: int, what: str) -> FileDigests:
    """One sequential pass: whole-file sha256 and MD5, and each part's MD5 (run it in a thread)."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - the store's checksum
    part_md5s = []
    for start in range(0, size, part):
        data = _read(fd, start, min(part, size - start), what)
        sha256.update(data)
        md5.update(data)
        part_md5s.append(base64.b64encode(hashlib.md5(data).digest()).decode())  # noqa: S324
    return FileDigests(sha256.hexdigest(), base64.b64encode(md5.digest()).decode(), part_md5s)


def _read(fd: int, offset: int, length: int, what: str) -> bytes:
    try:
        data = os.pread(fd, length, offset)
    except OSError as exc:
        raise WorkspaceError(f"{what}: cannot read the local file ({exc.strerror})") from exc
    if len(data) != length:
        raise FileChangedError(f"{what}: the local file changed while it was being uploaded (it got shorter); "
                               "upload it again once it is complete")
    return data


class MultipartUpload:
    """One multipart upload of descriptor ``fd`` (``size`` bytes, digests known) as object ``key``."""

    def __init__(self, path: S3DataPath, key: str, fd: int, size: int, digests: FileDigests, *,
                 retries: int, what: str) -> None:
        self.path = path
        self.key = key
        self.fd = fd
        self.size = size
        self.digests = digests
        self.part = part_size_for(size)
        self.retries = retries
        self.what = what
        self.upload_id: str | None = None

    async def run(self, headers: Mapping[str, str], overwrite: bool,
                  unchanged: Callable[[], None]) -> Mapping[str, str]:
        """Create, send the parts, check ``unchanged()``, complete; abort on any failure. The answer's headers."""
        self.upload_id = await self._create(headers)
        try:
            etags = await self._parts()
            unchanged()
            return await self._complete(etags, overwrite)
        except BaseException:
            await asyncio.shield(self._abort())
            raise

    # --- the requests ----------------------------------------------------------

    async def _create(self, headers: Mapping[str, str]) -> str:
        body = await with_retries(partial(self._call, "POST", {"uploads": ""}, headers), self.what,
                                  self.path.source_id, self.retries)
        found = _UPLOAD_ID.search(body[1])
        if not found:
            raise DataFetchError(f"{self.what}: the store did not start a multipart upload",
                                 source_id=self.path.source_id)
        return found.group(1).decode()

    async def _parts(self) -> list[str]:
        count = len(self.digests.part_md5s)
        etags = [""] * count
        numbers = iter(range(count))

        async def worker() -> None:
            for index in numbers:  # one shared iterator: each part is taken once
                etags[index] = await with_retries(partial(self._send_part, index), self.what,
                                                  self.path.source_id, self.retries)

        await run_all(worker() for _ in range(min(PARTS_IN_FLIGHT, count)))
        return etags

    async def _send_part(self, index: int) -> str:
        start = index * self.part
        data = await asyncio.to_thread(_read, self.fd, start, min(self.part, self.size - start), self.what)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - the store's checksum
        if md5 != self.digests.part_md5s[index]:
            raise FileChangedError(f"{self.what}: the local file changed while it was being uploaded (part "
                                   f"{index + 1} was rewritten); upload it again once it is complete",
                                   source_id=self.path.source_id)
        params = {"partNumber": str(index + 1), "uploadId": self._id}
        answer, _ = await self._call("PUT", params, {"Content-MD5": md5, "Content-Length": str(len(data))}, data,
                                     UNSIGNED)
        return answer.get("ETag", "")

    async def _complete(self, etags: list[str], overwrite: bool) -> Mapping[str, str]:
        parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(e)}</ETag></Part>"
                        for n, e in enumerate(etags, 1))
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        headers = {"Content-Type": "application/xml", **({} if overwrite else {"If-None-Match": "*"})}
        budget, retried = RetryBudget(self.retries), False
        while True:
            try:
                answer, text = await self._call("POST", {"uploadId": self._id}, headers, body,
                                                hashlib.sha256(body).hexdigest())
                _raise_embedded_error(text)  # S3 may answer 200 and put the error in the body
                etag = _ETAG.search(text)  # the new object's ETag is in the body, not the headers
                return {**answer, **({"ETag": unescape(etag.group(1).decode(), _QUOTES)} if etag else {})}
            except HttpStatusError as exc:
                if (exc.status == 412 or exc.code == "NoSuchUpload") and retried:
                    if (ours := await self._committed_by_us()) is not None:
                        return ours
                if exc.status in (409, 412) and not overwrite:
                    raise BlobExistsError(f"{self.what}: an object of that key exists; give overwrite to "
                                          f"replace it (HTTP {exc.status})", source_id=self.path.source_id) from None
                if not await budget.pause(translate(exc, self.what, self.path.source_id), exc.retry_after):
                    raise translate(exc, self.what, self.path.source_id) from exc
            except Exception as exc:
                if not await budget.pause(translate(exc, self.what, self.path.source_id), None):
                    raise translate(exc, self.what, self.path.source_id) from exc
            retried = True

    async def _committed_by_us(self) -> Mapping[str, str] | None:
        found = await with_retries(partial(self.path.head, self.key), self.what, self.path.source_id, self.retries)
        ours = found.get("ETag") == self.digests.multipart_etag() and \
            found.get("x-amz-meta-sha256") == self.digests.sha256
        return found if ours else None

    async def _abort(self) -> None:
        """AbortMultipartUpload, best effort within the retry budget (the bucket's lifecycle rules are the net)."""
        if self.upload_id is None:
            return
        try:
            await with_retries(partial(self._call, "DELETE", {"uploadId": self.upload_id}, {}), self.what,
                               self.path.source_id, self.retries)
        except Exception:  # noqa: S110 - the failure that made us abort is the one to report
            pass

    @property
    def _id(self) -> str:
        assert self.upload_id is not None
        return self.upload_id

    async def _call(self, method: str, params: Mapping[str, str], headers: Mapping[str, str],
                    body: bytes = b"", payload_sha256: str = EMPTY_SHA256) -> tuple[Mapping[str, str], bytes]:
        """One signed request on the object's URL with query ``params``; its headers and body (2xx only)."""
        url = f"{self.path.blob_uri(self.key)}?{query_string(params)}"
        signed = await self.path.signer.headers(method, url, headers, payload_sha256)
        async with self.path.session.request(method, yarl.URL(url, encoded=True), data=body or None,
                                             headers=signed, allow_redirects=False) as response:
            text = await response.read()
            if response.status // 100 != 2:
                code = _ERROR.search(text)
                raise S3StatusError(response.status, code.group(1).decode() if code else None, None)
            return response.headers, text


def _raise_embedded_error(body: bytes) -> None:
    found = _ERROR.search(body)
    if found:
        code = found.group(1).decode()
        raise S3StatusError(412 if code == "PreconditionFailed" else 500, code, None)
