"""What earlier syncs left, loaded into a SQLite file of its own while the source is listed.

A re-sync needs the prior manifest of each dataset and, for a full sync of a source whose
items land at their identifier, the walk of its folder (``connectors.syncing.landed_walk``:
every record, every landed file's size). Neither depends on the listing, so a thread loads
the manifests into a second spill file (its own connection) while the listing streams into
the first, and the walk fills a third file; the sync then attaches both, and its queries find
the tables ``prior``, ``recorded`` and ``landed`` there by name. The listing (Python, and
stats) and the loading (mostly SQLite's C code, which releases the GIL) overlap on a second
core; a large folder is walked by a child process (its Python work never waits on the
listing's GIL), a small one by the thread (a child's start would cost more than the walk).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path

from connectors.landing.names import LINEAGE_DIR, LOCK_DIR, RECORD_SUFFIX, TEMP_PREFIX
from connectors.syncing.dataset_manifest import manifest_path
from connectors.syncing.dataset_store import DatasetStore
from connectors.syncing.datasets import Dataset
from connectors.syncing.landed_walk import Names, start_walk, walk

ATTACHED = "earlier"
WALKED = "walked"
NAMES = Names(LINEAGE_DIR, LOCK_DIR, RECORD_SUFFIX, TEMP_PREFIX)
# prior manifests of more bytes than this (~20,000 entries) have their folder walked by a child process
CHILD_FROM_BYTES = 4 << 20


def load_earlier(db: sqlite3.Connection, folder: Path, datasets: Sequence[Dataset], walked: str | None) -> None:
    """Load every dataset's prior manifest (table ``prior``) and, when ``walked``, walk the folder into that file.

    Args:
        db: The connection of the file to fill (used by this thread alone until it returns).
        folder: The source's workspace folder.
        datasets: The sync's datasets (a dataset's rows carry its position).
        walked: The SQLite file the walk fills (tables ``recorded`` and ``landed``); None: no walk.
    """
    manifests = [manifest_path(folder, dataset.file_name) for dataset in datasets]
    child = _start(walked, folder) if walked and _bytes(manifests) > CHILD_FROM_BYTES else None
    try:
        store = DatasetStore(db, tables=("prior",))
        for number, manifest in enumerate(manifests):
            store.load_prior_manifest(number, manifest)
    finally:
        done = child is not None and child.wait() == 0
    if walked and not done:  # a small folder, or the child failed: walked here, from the start
        _walk_here(walked, folder)


@contextlib.contextmanager
def walk_file(wanted: bool) -> Iterator[str | None]:
    """A new empty file for the walk's tables (removed afterwards), or None when no walk is ``wanted``.

    Args:
        wanted: Whether the sync walks its folder.

    Yields:
        The file's path, or None.
    """
    if not wanted:
        yield None
        return
    handle, path = tempfile.mkstemp(prefix="da-walked-", suffix=".sqlite")
    os.close(handle)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _start(walked: str, folder: Path) -> subprocess.Popen[bytes] | None:
    """The walk's child process, or None when none could start (then the thread walks)."""
    try:
        return start_walk(walked, str(folder.absolute()), NAMES)
    except (OSError, ValueError):  # no interpreter to start (an embedded one), no process left
        return None


def _bytes(manifests: Sequence[Path]) -> int:
    total = 0
    for manifest in manifests:
        with contextlib.suppress(OSError):
            total += manifest.stat().st_size
    return total


def _walk_here(path: str, folder: Path) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("DROP TABLE IF EXISTS recorded")
            db.execute("DROP TABLE IF EXISTS landed")
        walk(db, str(folder.absolute()), NAMES)
    finally:
        db.close()


async def while_loading(work: Awaitable[None], loading: Awaitable[None]) -> None:
    """Await ``work``, then ``loading`` (a thread that cannot be stopped: it is awaited whatever happens).

    Args:
        work: What runs meanwhile (the listing).
        loading: The load of :func:`load_earlier`, already started.

    Raises:
        What ``work`` raised first (``loading`` is still awaited, its error dropped), else what ``loading`` raised.
    """
    try:
        await work
    except BaseException:
        with contextlib.suppress(Exception):
            await loading
        raise
    await loading


def attach(db: sqlite3.Connection, path: str, walked: str | None = None) -> None:
    """Attach the loaded files to the sync's connection (their tables then answer by their names).

    Args:
        db: The sync's connection (its listing's).
        path: The file :func:`load_earlier` filled.
        walked: The file its walk filled, if any.
    """
    db.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (path,))  # noqa: S608  (a constant)
    if walked:
        db.execute(f"ATTACH DATABASE ? AS {WALKED}", (walked,))  # noqa: S608  (a constant)

