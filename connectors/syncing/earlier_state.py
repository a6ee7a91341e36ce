"""What earlier syncs left, loaded into a SQLite file of its own while the source is listed.

A re-sync needs the prior manifest of each dataset and, for a full sync of a source whose
items land at their identifier, the records walked (``connectors.syncing.recorded``). Neither
depends on the listing, so a thread loads them into a second spill file (its own connection)
while the listing streams into the first; the sync then attaches it, and its queries find the
tables ``prior`` and ``recorded`` there by name. The listing (Python, and stats) and the
loading (mostly SQLite's C code, which releases the GIL) overlap on a second core.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Sequence
from pathlib import Path

from connectors.syncing.dataset_manifest import manifest_path
from connectors.syncing.dataset_store import DatasetStore
from connectors.syncing.datasets import Dataset
from connectors.syncing.recorded import load_recorded

ATTACHED = "earlier"


def load_earlier(db: sqlite3.Connection, folder: Path, datasets: Sequence[Dataset], records: bool) -> None:
    """Load every dataset's prior manifest (table ``prior``) and, when ``records``, the records (``recorded``).

    Args:
        db: The connection of the file to fill (used by this thread alone until it returns).
        folder: The source's workspace folder.
        datasets: The sync's datasets (a dataset's rows carry its position).
        records: Walk the records too.
    """
    store = DatasetStore(db, tables=("prior",))
    for number, dataset in enumerate(datasets):
        store.load_prior_manifest(number, manifest_path(folder, dataset.file_name))
    if records:
        load_recorded(db, folder)


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


def attach(db: sqlite3.Connection, path: str) -> None:
    """Attach the loaded file to the sync's connection (its tables then answer by their names).

    Args:
        db: The sync's connection (its listing's).
        path: The file :func:`load_earlier` filled.
    """
    db.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (path,))  # noqa: S608  (a constant)

