"""Verifying downloaded bytes: in-order hashing of a file as its ranges land, and the Content-MD5 check.

Worker threads hash the file in order (sha256, and MD5 when the blob has one)
as contiguous ranges complete, reading back from the page cache, so memory
stays bounded whatever the size and hashing overlaps the network; the sha256
thread also starts the disk writeback of what it has hashed, so the landing's
final fsync finds little left to write.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable
from typing import Any

from connectors.azure_blob.data_path import BlobFacts
from connectors.errors import IntegrityError, WorkspaceError
from connectors.landing.syscalls import start_writeback

# The names other packages (connectors.s3, connectors.api) use; the rest serve this package only.
__all__ = ["OrderedHasher", "check_md5"]

HASH_BUFFER = 4 * 1024 * 1024  # one reused read-back buffer per hashing thread


class OrderedHasher:
    """Hashes a file in order as ranges of it complete, one thread per digest.

    Ranges are announced with :meth:`add` from the event loop; each thread
    reads the contiguous prefix back (page cache) and feeds its digest, so the
    digests equal those of the finished file and memory stays one buffer per thread.
    """

    def __init__(self, fd: int, digests: Iterable[Any], start: int) -> None:
        self._fd = fd
        self._cond = threading.Condition()
        self._ready = start
        self._pending: dict[int, int] = {}
        self._closed = self._cancelled = False
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, args=(d, start, i == 0), name="da-azure-hash", daemon=True)
            for i, d in enumerate(digests)
        ]
        for thread in self._threads:
            thread.start()

    def add(self, start: int, end: int) -> None:
        """Bytes ``start``..``end`` (exclusive) are on disk.

        Args:
            start: The first byte's offset.
            end: The offset just after the last byte.
        """
        with self._cond:
            self._pending[start] = end
            while self._ready in self._pending:
                self._ready = self._pending.pop(self._ready)
            self._cond.notify_all()

    def finish(self) -> None:
        """Wait until every announced byte is hashed (blocking; run it in a thread).

        Raises:
            WorkspaceError: The landed bytes could not be read back.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._join()
        if self._errors:
            raise WorkspaceError(f"cannot read the landed bytes back to hash them: {self._errors[0]}")

    def cancel(self) -> None:
        """Stop the threads now (before the file descriptor is closed)."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
        self._join()

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _run(self, digest: Any, position: int, writeback: bool) -> None:
        view = memoryview(bytearray(HASH_BUFFER))
        try:
            while (limit := self._wait_for(position)) is not None:
                while position < limit:
                    done = os.preadv(self._fd, [view[: min(HASH_BUFFER, limit - position)]], position)
                    if done <= 0:
                        raise OSError("short read")
                    digest.update(view[:done])
                    if writeback:
                        start_writeback(self._fd, position, done)
                    position += done
        except OSError as exc:
            self._errors.append(exc)

    def _wait_for(self, position: int) -> int | None:
        with self._cond:
            while position >= self._ready and not (self._closed or self._cancelled):
                self._cond.wait()
            if self._cancelled or position >= self._ready:
                return None
            return self._ready


def check_md5(facts: BlobFacts, md5: Any, name: str, source_id: str | None, noun: str = "blob") -> None:
    """Check the bytes' MD5 against the blob's Content-MD5, when the blob has one.

    Args:
        facts: The facts the download was pinned to.
        md5: A hashlib MD5 object fed every byte landed.
        name: The blob's name, for the message.
        source_id: The source to name in the error.
        noun: What the store calls what it holds (``"object"``: S3, whose MD5 is its ETag).

    Raises:
        IntegrityError: The digests differ.
    """
    actual = base64.b64encode(md5.digest()).decode()
    if facts.content_md5 is not None and actual != facts.content_md5:
        raise IntegrityError(
            f"reading {noun} {name!r}: {'Content-MD5' if noun == 'blob' else 'ETag MD5'} mismatch "
            f"(the {noun} says {facts.content_md5}, "
            f"the bytes hash to {actual})",
            source_id=source_id,
        )
