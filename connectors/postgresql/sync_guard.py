"""One incremental sync of a dataset at a time, and the staging a crashed one left behind.

* **Lock**: a sync of ``<schema>.<table>`` holds an exclusive ``flock`` on ``.<schema>.<table>.lock``
  in the source's folder (opened without following a link) from before it reads the dataset's
  record until its new record is written. Two syncs of the same dataset would otherwise both start
  from the same last cursor and number their parts alike (one overwriting the other's part, or the
  same rows landed twice). A second sync does not wait: it fails at once, retryable, naming the
  dataset, so the CLI says so and Dagster's retry policy runs it again later. The lock is the file
  system's, so it holds across processes and Dagster's step workers sharing the workspace; the
  kernel releases it when its holder dies.
* **Sweep**: under that lock, a staging folder of this dataset (``.<schema>.<table>.parts-<12 hex>``)
  is a crashed sync's leftover and is removed; nothing else is touched (another dataset's staging,
  a link, a file of another name).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from connectors.errors import DataFetchError

# The package's public surface is its connector; these are the names other packages and the docs use.
__all__ = ["SyncBusyError"]

LOCK_NAME = ".{}.lock"


class SyncBusyError(DataFetchError):
    """Another sync of the same dataset is running (retryable: it will be free once that one ends)."""

    retryable = True


@contextlib.contextmanager
def dataset_lock(root: Path, name: str, source_id: str | None = None) -> Iterator[None]:
    """Hold the dataset's lock for the block; :class:`SyncBusyError` at once when another sync holds it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME.format(name), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise SyncBusyError(f"{name}: another sync of this dataset is running; try again when it ends",
                                source_id=source_id) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sweep_staging(root: Path, name: str) -> list[str]:
    """Remove this dataset's leftover staging folders (call it under :func:`dataset_lock`); their names."""
    pattern = re.compile(rf"\.{re.escape(name)}\.parts-[0-9a-f]{{12}}")
    removed = []
    with os.scandir(root) as entries:
        for entry in entries:
            if not pattern.fullmatch(entry.name):
                continue
            info = os.lstat(entry.path)
            if stat.S_ISDIR(info.st_mode):  # a real folder, not a link to one
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
    return removed
