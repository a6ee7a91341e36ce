"""The lineage records of a source's landed items, as walked once per sync (``connectors.syncing.landed_walk``).

A re-sync asks two things of every landed item's record: is it there (else the item is
fetched again), and is its item still listed (else it is reported removed at the source).
One walk of ``.lineage`` (names and types from the folder listings, no stat per record)
answers both: the ``recorded`` table joins the prior manifest's rows and the listing
(``connectors.syncing.source_sync._Spill``) in SQL. Only for sources whose items land at
their identifier (local files, blobs, objects), where a record's path is its item.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

BATCH = 4096


def unlisted_recorded(db: sqlite3.Connection) -> Iterator[str]:
    """The recorded paths the listing (its table ``listed``) does not hold, in key order.

    Args:
        db: The sync's SQLite connection, after the walk (``connectors.syncing.landed_walk``) and the listing.

    Yields:
        Each such path (for these sources, the item's identifier).
    """
    cursor = db.execute("SELECT path FROM recorded r WHERE NOT EXISTS (SELECT 1 FROM listed l WHERE l.id = r.path) "
                        "ORDER BY path")
    while rows := cursor.fetchmany(BATCH):
        yield from (raw.decode("utf-8", "surrogatepass") for (raw,) in rows)
