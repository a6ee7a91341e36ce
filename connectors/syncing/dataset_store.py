"""The manifest entries of one dataset sync, on disk: the prior ones and the new ones, per dataset.

A sync of a million items cannot hold a million entries (~300 bytes each in
Python) per dataset, twice (before and after). This store keeps them in the
SQLite file that already holds the sync's listing (``connectors.syncing.source_sync._Spill``):
the sync reads the prior entries of one listing batch at a time (a key range),
writes each batch's outcome, and streams the entries back in identifier order
to digest the data version and write the manifest. Identifiers, versions and
paths are stored as UTF-8 bytes (lone surrogates kept), so their byte order is
Python's string order: the order of a manifest and of :func:`data_version`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from connectors.syncing.dataset_manifest import ManifestEntry

Table = Literal["prior", "entries"]  # the only names put into a query's text
BATCH = 4096  # rows written or read at once

# one manifest line per element of a JSON array, each field read once (a materialized CTE); an element that is
# not an object of the five fields with their types makes a NULL key, which the table refuses (the batch is
# then parsed by Python, with its errors)
_INSERT_LINES = (
    "WITH e AS MATERIALIZED (SELECT value ->> 'identifier' AS i, value ->> 'version' AS v, value ->> 'sha256' AS h, "
    "value ->> 'size' AS n, value ->> 'path' AS p FROM json_each(?2)) "
    "INSERT OR REPLACE INTO prior SELECT CASE WHEN typeof(i) = 'text' AND typeof(v) = 'text' AND typeof(h) = 'text' "
    "AND typeof(n) = 'integer' AND typeof(p) = 'text' THEN CAST(i AS BLOB) END, ?1, CAST(v AS BLOB), h, n, "
    "CAST(p AS BLOB) FROM e")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")  # json.dumps escapes every non-ASCII character

_COLUMNS = "id BLOB, ds INTEGER, version BLOB, sha256 TEXT, size INTEGER, path BLOB, PRIMARY KEY (id, ds)"


def _key(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _low(low: str | bytes | None) -> bytes:
    """The stored key of a range's exclusive lower bound (None: from the start)."""
    return b"" if low is None else low if isinstance(low, bytes) else _key(low)


def _high(high: str | bytes) -> bytes:
    return high if isinstance(high, bytes) else _key(high)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


Row = tuple[bytes, int, bytes, str, int, bytes]  # as stored: id, dataset, version, sha256, size, path


def row_entry(row: Row) -> ManifestEntry:
    """The manifest entry of a stored row.

    Args:
        row: A row as :meth:`DatasetStore.prior_rows_between` gives it.

    Returns:
        The entry it stores.
    """
    identifier, _, version, sha256, size, path = row
    return _entry((identifier, version, sha256, size, path))


def entry_row(dataset: int, entry: ManifestEntry) -> Row:
    """The row ``entry`` is stored as in ``dataset``.

    Args:
        dataset: The dataset's position in the sync's list of datasets.
        entry: A manifest entry.

    Returns:
        The row.
    """
    return (_key(entry.identifier), dataset, _key(entry.version), entry.sha256, entry.size, _key(entry.path))


def row_path(row: Row) -> str:
    """The landed path (relative to the source's folder) a stored row holds.

    Args:
        row: A row as :meth:`DatasetStore.prior_rows_between` gives it.

    Returns:
        The path.
    """
    return _text(row[5])


def row_version(row: Row) -> str:
    """The version a stored row holds.

    Args:
        row: A row as :meth:`DatasetStore.prior_rows_between` gives it.

    Returns:
        The item's landed version.
    """
    return _text(row[2])


def _entry(row: tuple[bytes, bytes, str, int, bytes]) -> ManifestEntry:
    identifier, version, sha256, size, path = row
    return ManifestEntry(identifier=_text(identifier), version=_text(version), sha256=sha256, size=size,
                         path=_text(path))


class DatasetStore:
    """Prior and new entries of the datasets of a sync (dataset = its index in the sync's list)."""

    def __init__(self, db: sqlite3.Connection, tables: tuple[Table, ...] = ("prior", "entries")) -> None:
        """A store on ``db``, creating ``tables`` there (a sync's ``prior`` may be in a file attached to it)."""
        self._db = db
        for table in tables:
            db.execute(f"CREATE TABLE {table} ({_COLUMNS}) WITHOUT ROWID")

    def load_prior(self, dataset: int, entries: Iterable[ManifestEntry]) -> None:
        """Add a dataset's prior manifest entries, streamed a batch at a time.

        Args:
            dataset: The dataset's position in the sync's list of datasets.
            entries: Its last manifest's entries.
        """
        self.add("prior", ((dataset, entry) for entry in entries))

    def load_prior_fields(self, dataset: int, fields: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`load_prior` of a manifest's parsed lines (``iter_manifest_fields``): no entry built per line.

        Args:
            dataset: The dataset's position in the sync's list of datasets.
            fields: Its last manifest's entries, as parsed JSON objects.
        """
        self._write_all("prior", ((_key(f["identifier"]), dataset, _key(f["version"]), f["sha256"], f["size"],
                                   _key(f["path"])) for f in fields))

    def load_prior_manifest(self, dataset: int, path: Path) -> None:
        """:meth:`load_prior_fields` of a manifest file, its lines parsed by SQLite's JSON functions a batch at a time.

        A batch that SQLite cannot take as it is (an escaped surrogate, whose UTF-8 this store keeps as
        Python's ``surrogatepass`` does; a line that is not an object of the five fields with their types)
        is parsed line by line as :meth:`load_prior_fields` does, with its errors.

        Args:
            dataset: The dataset's position in the sync's list of datasets.
            path: Its manifest (a header line, then one JSON object per entry); a missing one holds nothing.
        """
        if not path.is_file():
            return
        with path.open(encoding="utf-8") as handle:
            next(handle, None)  # the header
            while lines := list(itertools.islice(handle, BATCH)):
                if not self._load_lines_in_sql(dataset, lines):
                    self.load_prior_fields(dataset, map(json.loads, lines))

    def _load_lines_in_sql(self, dataset: int, lines: list[str]) -> bool:
        """Insert the entries of ``lines`` in one statement; False (nothing kept) when a line needs Python's parse."""
        text = "".join(lines)
        if _ESCAPED_SURROGATE.search(text):
            return False
        with self._db:
            self._db.execute("SAVEPOINT lines")
            before = self._db.total_changes
            try:
                self._db.execute(_INSERT_LINES, (dataset, f"[{','.join(lines)}]"))
            except (sqlite3.OperationalError, sqlite3.IntegrityError):  # not JSON, or not an entry
                pass
            else:
                if self._db.total_changes - before == len(lines):
                    self._db.execute("RELEASE lines")
                    return True
            self._db.execute("ROLLBACK TO lines")
            self._db.execute("RELEASE lines")
        return False

    def add(self, table: Table, rows: Iterable[tuple[int, ManifestEntry]]) -> None:
        """Write (dataset, entry) rows; a later row of the same item and dataset replaces an earlier one.

        Args:
            table: ``"prior"`` (the last manifest's entries) or ``"entries"`` (this sync's).
            rows: ``(dataset position, entry)`` pairs.
        """
        self._write_all(table, (entry_row(dataset, entry) for dataset, entry in rows))

    def _write_all(self, table: Table, rows: Iterable[Row]) -> None:
        """Write rows a batch of :data:`BATCH` at a time (an iterable of any length, never held whole)."""
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                self._write(table, batch)
                batch = []
        self._write(table, batch)

    def _write(self, table: Table, batch: list[Row]) -> None:
        if batch:
            with self._db:
                self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?, ?)", batch)  # noqa: S608  (Table)

    def prior_between(self, low: str | None, high: str) -> dict[str, dict[int, ManifestEntry]]:
        """The prior entries of the items after ``low`` up to ``high``: one key range.

        Args:
            low: The last identifier of the previous range; None from the start.
            high: The last identifier of this range (included).

        Returns:
            Identifier -> dataset position -> prior entry.
        """
        rows = self._db.execute(
            "SELECT id, ds, version, sha256, size, path FROM prior WHERE id > ? AND id <= ?",
            (_key(low) if low is not None else b"", _key(high)))
        found: dict[str, dict[int, ManifestEntry]] = defaultdict(dict)
        for identifier, dataset, version, sha256, size, path in rows:
            found[_text(identifier)][dataset] = _entry((identifier, version, sha256, size, path))
        return found

    def prior_rows_between(self, low: str | bytes | None, high: str | bytes) -> dict[str, dict[int, Row]]:
        """:meth:`prior_between` as stored rows: nothing decoded but the identifiers (a re-sync reads every row).

        Args:
            low: The last identifier of the previous range; None from the start.
            high: The last identifier of this range (included).

        Returns:
            Identifier -> dataset position -> stored row (:func:`row_entry` makes it an entry).
        """
        rows = self._db.execute(
            "SELECT id, ds, version, sha256, size, path FROM prior WHERE id > ? AND id <= ?", (_low(low), _high(high)))
        found: dict[str, dict[int, Row]] = defaultdict(dict)
        for row in rows:
            found[_text(row[0])][row[1]] = row
        return found

    def copy_prior_between(self, low: str | bytes | None, high: str | bytes) -> None:
        """Copy the prior rows of the items after ``low`` up to ``high`` to this sync's entries, in one statement.

        Args:
            low: The last identifier of the previous range; None from the start.
            high: The last identifier of this range (included).
        """
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO entries SELECT * FROM prior WHERE id > ? AND id <= ?",
                             (_low(low), _high(high)))

    def prior_rows_by_sight(self, low: bytes | None, high: bytes, *,
                            recorded: bool = False) -> tuple[list[Row], dict[str, dict[int, Row]]]:
        """The prior rows of the items after ``low`` up to ``high``, in one scan, split in two: those (of dataset 0)
        whose item the listing (its ``listed`` table, :class:`~connectors.syncing.source_sync._Spill`) shows wanted
        at the very version it landed at, and the others (items changed, removed, excluded, forced or new).

        The first are the re-sync's usual items: the sync still checks each one's name (and, without
        ``recorded``, its landed file); the others it plans item by item.

        Args:
            low: The stored key of the last item of the previous range; None from the start.
            high: The stored key of the last item of this range (included).
            recorded: Only rows whose landed path has a record in the table ``recorded`` and a regular file
                of the row's size in the table ``landed`` (``connectors.syncing.landed_walk``) are in the
                first part: their landed files need no other check.

        Returns:
            The first rows, in key order; and the others, identifier -> dataset position -> stored row.
        """
        known = "AND EXISTS (SELECT 1 FROM recorded r WHERE r.path = p.path) AND EXISTS (SELECT 1 FROM landed f " \
            "WHERE f.path = p.path AND f.size = p.size)" if recorded else ""
        rows = self._db.execute(
            "SELECT id, ds, version, sha256, size, path, ds = 0 AND EXISTS (SELECT 1 FROM listed l WHERE l.id = p.id "  # noqa: S608  (a constant)
            f"AND l.wanted = 1 AND l.version != x'' AND l.version = p.version) {known} FROM prior p "
            "WHERE id > ?1 AND id <= ?2 ORDER BY id, ds", (_low(low), high))
        seen: list[Row] = []
        others: dict[str, dict[int, Row]] = defaultdict(dict)
        for row in rows:
            if row[6]:
                seen.append(row[:6])
            else:
                others[_text(row[0])][row[1]] = row[:6]
        return seen, others

    def prior_after(self, high: bytes) -> bool:
        """Whether a prior row's item comes after ``high`` (the last listed key).

        Args:
            high: A stored key.

        Returns:
            True when some prior row's identifier sorts after it.
        """
        return self._db.execute("SELECT 1 FROM prior WHERE id > ? LIMIT 1", (high,)).fetchone() is not None

    def drop_entries(self, keys: list[tuple[bytes, int]]) -> None:
        """Take rows out of this sync's entries.

        Args:
            keys: ``(stored identifier, dataset position)`` of each row.
        """
        if keys:
            with self._db:
                self._db.executemany("DELETE FROM entries WHERE id = ? AND ds = ?", keys)

    def add_rows(self, table: Table, rows: list[Row]) -> None:
        """Write stored rows as they are (a prior row carried over: nothing encoded again).

        Args:
            table: ``"prior"`` or ``"entries"``.
            rows: Rows as :meth:`prior_rows_between` gives them, each with the dataset it goes to.
        """
        self._write_all(table, rows)

    def keep_prior(self, dataset: int) -> None:
        """Carry over every prior entry of ``dataset`` this sync did not write (a sync of chosen items).

        Args:
            dataset: The dataset's position in the sync's list of datasets.
        """
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO entries SELECT * FROM prior WHERE ds = ?", (dataset,))

    def entries(self, table: Table, dataset: int) -> Iterator[ManifestEntry]:
        """The dataset's entries in identifier order, read a batch at a time.

        Args:
            table: ``"prior"`` (the last manifest's entries) or ``"entries"`` (this sync's).
            dataset: The dataset's position in the sync's list of datasets.

        Yields:
            Each entry.
        """
        cursor = self._db.execute(
            f"SELECT id, version, sha256, size, path FROM {table} WHERE ds = ? ORDER BY id",  # noqa: S608  (Table)
            (dataset,))
        while rows := cursor.fetchmany(BATCH):
            yield from (_entry(row) for row in rows)

    def data_version(self, table: Table, dataset: int) -> str:
        """:func:`~connectors.syncing.dataset_manifest.data_version` of the dataset's entries, from the raw rows.

        The stored bytes are the UTF-8 (lone surrogates kept) the digest hashes: no entry is built per row.

        Args:
            table: ``"prior"`` (the last manifest's entries) or ``"entries"`` (this sync's).
            dataset: The dataset's position in the sync's list of datasets.

        Returns:
            The same digest as ``data_version_sorted`` of :meth:`entries`.
        """
        digest = hashlib.sha256()
        # each row's line joined by SQLite (blobs and text concatenated as their bytes): nothing done per row here
        cursor = self._db.execute(
            f"SELECT CAST(id || x'00' || version || x'00' || sha256 || x'0a' AS BLOB) FROM {table} "  # noqa: S608  (Table)
            "WHERE ds = ? ORDER BY id", (dataset,))
        while rows := cursor.fetchmany(BATCH):
            digest.update(b"".join(map(itemgetter(0), rows)))
        return digest.hexdigest()[:32]

    def same_as_prior(self, dataset: int) -> bool:
        """Whether this sync's entries of ``dataset`` are exactly its prior ones (one SQL comparison, no rows read).

        Args:
            dataset: The dataset's position in the sync's list of datasets.

        Returns:
            True when both hold the same items with the same version, sha256, size and path.
        """
        query = ("SELECT (SELECT COUNT(*) FROM entries WHERE ds = ?1) = (SELECT COUNT(*) FROM prior WHERE ds = ?1) "
                 "AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.ds = ?1 AND NOT EXISTS (SELECT 1 FROM prior p "
                 "WHERE p.id = e.id AND p.ds = e.ds AND p.version IS e.version AND p.sha256 IS e.sha256 "
                 "AND p.size IS e.size AND p.path IS e.path))")
        return bool(self._db.execute(query, (dataset,)).fetchone()[0])

    def totals(self, table: Table, dataset: int) -> tuple[int, int]:
        """The number of entries and their bytes.

        Args:
            table: ``"prior"`` (the last manifest's entries) or ``"entries"`` (this sync's).
            dataset: The dataset's position in the sync's list of datasets.

        Returns:
            ``(entries, bytes)`` of the dataset.
        """
        query = f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {table} WHERE ds = ?"  # noqa: S608  (Table)
        count, size = self._db.execute(query, (dataset,)).fetchone()
        return int(count), int(size)

    def dropped(self, dataset: int) -> bool:
        """Whether a prior entry of the dataset has no entry now (one anti-join, not a lookup per item).

        Args:
            dataset: The dataset's position in the sync's list of datasets.

        Returns:
            True when an item of the last manifest is not in this sync's.
        """
        return self._db.execute(
            "SELECT 1 FROM prior p WHERE p.ds = ? AND NOT EXISTS "
            "(SELECT 1 FROM entries e WHERE e.id = p.id AND e.ds = p.ds) LIMIT 1", (dataset,)).fetchone() is not None
