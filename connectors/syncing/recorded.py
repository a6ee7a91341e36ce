"""The lineage records of a source's landed items, walked once per sync into the sync's SQLite file.

A re-sync asks two things of every landed item's record: is it there (else the item is
fetched again), and is its item still listed (else it is reported removed at the source).
One walk of ``.lineage`` (names and types from the folder listings, no stat per record)
answers both: the ``recorded`` table joins the prior manifest's rows and the listing
(``connectors.syncing.source_sync._Spill``) in SQL. Only for sources whose items land at
their identifier (local files, blobs, objects), where a record's path is its item.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from connectors.landing.names import LINEAGE_DIR, LOCK_DIR, RECORD_SUFFIX, TEMP_PREFIX

BATCH = 4096


def load_recorded(db: sqlite3.Connection, folder: Path) -> None:
    """Fill the table ``recorded`` with the landed path of every record under ``folder/.lineage``.

    Records are regular files named ``<path>.json`` (a link, a folder or a FIFO is no record, as
    ``read_record`` says); the lock folder and temporaries are left out; no link is followed.

    Args:
        db: The sync's SQLite connection (the one holding its listing).
        folder: The source's workspace folder.
    """
    db.execute("CREATE TABLE IF NOT EXISTS recorded (path BLOB PRIMARY KEY) WITHOUT ROWID")
    batch: list[tuple[bytes]] = []
    for relative in _records(str(folder.absolute() / LINEAGE_DIR)):
        batch.append((relative.encode("utf-8", "surrogatepass"),))
        if len(batch) >= BATCH:
            _insert(db, batch)
            batch = []
    _insert(db, batch)


def unlisted_recorded(db: sqlite3.Connection) -> Iterator[str]:
    """The recorded paths the listing (its table ``listed``) does not hold, in key order.

    Args:
        db: The sync's SQLite connection, after :func:`load_recorded` and the listing.

    Yields:
        Each such path (for these sources, the item's identifier).
    """
    cursor = db.execute("SELECT path FROM recorded r WHERE NOT EXISTS (SELECT 1 FROM listed l WHERE l.id = r.path) "
                        "ORDER BY path")
    while rows := cursor.fetchmany(BATCH):
        yield from (raw.decode("utf-8", "surrogatepass") for (raw,) in rows)


def _insert(db: sqlite3.Connection, batch: list[tuple[bytes]]) -> None:
    if batch:
        with db:
            db.executemany("INSERT OR IGNORE INTO recorded VALUES (?)", batch)


def _records(base: str) -> Iterator[str]:
    """Relative landed paths of the regular ``*.json`` files below ``base``, depth first; links not followed."""
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            with os.scandir(f"{base}/{prefix}" if prefix else base) as scanned:
                entries = list(scanned)
        except OSError:  # gone meanwhile, or a link where a folder was
            continue
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                if prefix or name != LOCK_DIR:
                    stack.append(prefix + name + "/")
            elif name.endswith(RECORD_SUFFIX) and not name.startswith(TEMP_PREFIX) \
                    and entry.is_file(follow_symlinks=False):
                yield prefix + name[: -len(RECORD_SUFFIX)]
