"""The download engine of the Azure Blob (and S3) connector: parallel ranged GETs straight into the landing file.

How a download goes:

* one GET for the first :data:`CHUNK` bytes gives the etag, the size and the
  whole-blob Content-MD5 (``x-ms-blob-content-md5``); a small blob is done
  after it;
* the rest is read as ranges, at most ``concurrency`` in flight, each pinned
  with ``If-Match: <etag>`` (a blob overwritten mid-download answers 412 and
  the whole download starts again: never a mixed file), each written with
  ``os.pwrite`` at its offset;
* :mod:`connectors.azure_blob.hashing` hashes the file in order as contiguous
  ranges complete;
* transient failures (5xx, 408/429 with Retry-After, resets, stalls, short
  bodies) retry the failed range within a :class:`~connectors.azure_blob.retries.RetryBudget`.

The requests themselves go through a :class:`RangeSource`: Azure's
:class:`~connectors.azure_blob.data_path.DataPath` or S3's.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import aiohttp

from connectors.azure_blob.data_path import BlobFacts
from connectors.azure_blob.errors import (
    BlobChangedError,
    HttpStatusError,
    TruncatedError,
    retry_after_of,
    translate,
)
from connectors.azure_blob.hashing import OrderedHasher, check_md5
from connectors.azure_blob.retries import RetryBudget
from connectors.errors import IntegrityError, WorkspaceError
from connectors.landing.dirs import finish_in_thread
from connectors.landing.progress import report_progress
from connectors.landing.syscalls import preallocate

# The names other packages (connectors.s3, connectors.api) use; the rest serve this package only.
__all__ = ["CHUNK", "SMALL_BLOB", "BlobDownload", "Downloaded", "RangeSource", "run_all"]

CHUNK = 16 * 1024 * 1024  # bytes per ranged GET: few requests, bounded memory per range
SMALL_BLOB = 1024 * 1024  # blobs up to this size are read into memory and landed in one step


@dataclass(frozen=True)
class Downloaded:
    """A finished download: the facts it was pinned to, and the sha256 of the bytes written.

    A small blob is not written: ``body`` holds its (verified) bytes and
    ``sha256`` is None, so the caller lands it in one step off the event loop.
    """

    facts: BlobFacts
    sha256: str | None
    body: bytes | None = None
    digests: dict[str, bytes] = field(default_factory=dict)  # every digest computed, by name (sha256 too)


@dataclass
class _FirstRange:
    facts: BlobFacts
    received: int
    digests: list[Any]
    body: bytes | None = None


class RangeSource(Protocol):
    """What :class:`BlobDownload` reads from: Azure's :class:`DataPath`, or ``connectors.s3``'s."""

    source_id: str | None
    noun: str  # what the store calls what it holds, for messages: "blob", "object"

    async def get(self, name: str, start: int, end: int | None, etag: str | None) -> aiohttp.ClientResponse:
        """One GET of a byte range, pinned to a version.

        Args:
            name: The blob's or object's full name.
            start: The first byte's offset.
            end: The last byte's offset (inclusive); None: the whole object.
            etag: The version to read (``If-Match``); None for the first request.

        Returns:
            The open answer (2xx; any other status raises).
        """
        ...

    def read_facts(self, response: aiohttp.ClientResponse) -> BlobFacts:
        """The facts the download pins to.

        Args:
            response: The first answer.

        Returns:
            Etag, size, whole-object MD5, last modified and type.
        """
        ...

    async def refine_facts(self, name: str, facts: BlobFacts) -> BlobFacts:
        """``facts`` with a stronger whole-object check the source names, if any.

        Args:
            name: The blob's or object's full name.
            facts: The facts read from the first answer.

        Returns:
            The facts to check the whole download against.
        """
        ...


def _preallocate(fd: int, size: int) -> None:
    try:
        preallocate(fd, size)
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        raise WorkspaceError(f"cannot reserve {size} bytes in the workspace: {reason}") from exc


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``; a local failure is a WorkspaceError, never retried."""
    view = memoryview(data)
    try:
        while view:
            done = os.pwrite(fd, view, offset)
            view, offset = view[done:], offset + done
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        raise WorkspaceError(f"cannot write into the workspace: {reason}") from exc


async def run_all(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines together; on the first failure cancel the rest and wait for them, then raise it.

    Args:
        coroutines: The coroutines to run.
    """
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class BlobDownload:
    """One download of one blob into a descriptor that ``open_target`` provides on first success."""

    def __init__(
        self,
        path: RangeSource,
        name: str,
        open_target: Callable[[], Awaitable[int]],
        *,
        concurrency: int,
        retries: int,
        checks: Callable[[BlobFacts, Iterable[str]], list[Any]] | None = None,
    ) -> None:
        """``checks(facts, have)``: more digests to compute, for checks the source names in ``facts``
        beyond those named in ``have`` (S3: its ``x-amz-checksum-*``); none when omitted."""
        self._path = path
        self._checks = checks or (lambda facts, have: [])
        self._name = name
        self._open_target = open_target
        self._concurrency = concurrency
        self._budget = RetryBudget(retries)
        self._what = f"reading {path.noun} {name!r}"
        self._fd: int | None = None
        self._done = 0
        self._size: int | None = None

    async def run(self) -> Downloaded:
        """Download everything, pinned to the first answer's etag.

        Returns:
            The facts and the digests of the bytes written (or, for a small blob, its ``body``).
        """
        first: _FirstRange = await self._retrying(self._first_range)
        facts, digests = first.facts, first.digests
        if first.body is not None:
            return Downloaded(facts, None, first.body)  # MD5 checked by whoever lands it: off the loop
        if facts.size > first.received:
            assert self._fd is not None
            # before the rest streams: the source may name a stronger check that makes the MD5 unneeded
            facts = await self._retrying(partial(self._path.refine_facts, self._name, facts))
            digests = [d for d in digests if d.name != "md5" or facts.content_md5]
            late = self._checks(facts, [d.name for d in digests])  # named by the refined facts: from byte 0
            hashers = [OrderedHasher(self._fd, digests, first.received)]
            if late:
                hashers.append(OrderedHasher(self._fd, late, 0))
                hashers[-1].add(0, first.received)
            try:
                await self._remaining(facts, first.received, hashers)
                for hasher in hashers:
                    await finish_in_thread(hasher.finish)
            finally:
                for hasher in hashers:
                    hasher.cancel()
            digests += late
        self._check_md5(facts, digests)
        return Downloaded(facts, digests[0].hexdigest(), digests={d.name: d.digest() for d in digests})

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        while True:
            try:
                return await attempt()
            except Exception as exc:
                error = translate(exc, self._what, self._path.source_id)
                if isinstance(error, BlobChangedError) or not await self._budget.pause(
                    error, retry_after_of(exc)
                ):
                    if error is exc:
                        raise
                    raise error from exc

    async def _first_range(self) -> _FirstRange:
        try:
            response = await self._path.get(self._name, 0, CHUNK - 1, None)
        except HttpStatusError as exc:
            if exc.status != 416:  # 416: an empty blob has no byte 0; ask for all of it
                raise
            response = await self._path.get(self._name, 0, None, None)
        async with response:
            facts = self._path.read_facts(response)
            self._size = facts.size
            whole = int(response.headers.get("Content-Length", -1)) == facts.size
            if whole and facts.size <= SMALL_BLOB and self._fd is None:
                return await self._small_body(response, facts)
            if self._fd is None:
                self._fd = await self._open_target()
            else:
                os.ftruncate(self._fd, 0)  # a retried first range may belong to a new, smaller blob
            _preallocate(self._fd, facts.size)
            digests = [hashlib.sha256()] + ([hashlib.md5()] if facts.content_md5 else [])  # noqa: S324
            digests += self._checks(facts, [d.name for d in digests])
            expected = int(response.headers.get("Content-Length", facts.size))
            self._done = 0
            received = await self._stream(response, 0, expected, digests)
        return _FirstRange(facts, received, digests)

    async def _small_body(self, response: aiohttp.ClientResponse, facts: BlobFacts) -> _FirstRange:
        body = await response.read()  # at most SMALL_BLOB bytes: the size was checked first
        if len(body) != facts.size:
            raise TruncatedError(f"{self._what}: the response ended after {len(body)} of {facts.size} bytes",
                                 source_id=self._path.source_id)
        report_progress(self._name, len(body), facts.size)
        return _FirstRange(facts, len(body), [], body)

    async def _remaining(self, facts: BlobFacts, first: int, hashers: list[OrderedHasher]) -> None:
        ranges = iter([(start, min(start + CHUNK, facts.size) - 1) for start in range(first, facts.size, CHUNK)])

        async def worker() -> None:
            for start, end in ranges:  # one shared iterator: each range is taken once
                await self._retrying(partial(self._one_range, start, end, facts.etag))
                for hasher in hashers:
                    hasher.add(start, end + 1)

        count = min(self._concurrency, (facts.size - first + CHUNK - 1) // CHUNK)
        await run_all(worker() for _ in range(count))

    async def _one_range(self, start: int, end: int, etag: str) -> None:
        response = await self._path.get(self._name, start, end, etag)
        async with response:
            if response.status != 206 or not response.headers.get("Content-Range", "").startswith(
                f"bytes {start}-{end}/"
            ):
                raise IntegrityError(f"{self._what}: the service answered another range than asked",
                                     source_id=self._path.source_id)
            if response.headers.get("ETag") != etag:
                raise BlobChangedError(f"{self._what}: the blob changed while it was read",
                                       source_id=self._path.source_id)
            await self._stream(response, start, end - start + 1, ())

    async def _stream(
        self, response: aiohttp.ClientResponse, offset: int, expected: int, digests: Iterable[Any]
    ) -> int:
        assert self._fd is not None
        position, end = offset, offset + expected
        try:
            async for piece in response.content.iter_any():
                if position + len(piece) > end:
                    raise IntegrityError(f"{self._what}: the service sent more bytes than it announced",
                                         source_id=self._path.source_id)
                _pwrite_all(self._fd, piece, position)
                for digest in digests:
                    digest.update(piece)
                position += len(piece)
                self._done += len(piece)
                report_progress(self._name, self._done, self._size)
        except BaseException:
            self._done -= position - offset  # a failed attempt's bytes will come again
            raise
        if position != end:
            raise TruncatedError(
                f"{self._what}: the response ended after {position - offset} of {expected} bytes",
                source_id=self._path.source_id,
            )
        return expected

    def _check_md5(self, facts: BlobFacts, digests: list[Any]) -> None:
        if facts.content_md5 is not None:
            check_md5(facts, next(d for d in digests if d.name == "md5"), self._name, self._path.source_id,
                      self._path.noun)
