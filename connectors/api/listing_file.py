"""A source's listing as the API shares it: on disk, read a bounded batch at a time.

Browse pages and globs (fetch jobs, thread attaches) read the listing of a source;
it is loaded once and shared for ``cache_seconds``. Held in memory, a listing of
1,000,000 files weighed ~600 MiB (a ``DataItem`` with its metadata per file) and a
flat browse folded a second copy. Here the items stream into a SQLite spill file
(the sync's own, ``connectors.syncing.source_sync._Spill``) under the server's state
folder, keyed by the identifier's UTF-8 bytes (Python's string order); a page or a
glob reads one key range, ``BATCH`` rows at a time. The file is unlinked as soon as
it is loaded, or when loading fails or is cancelled: only the open connection keeps
it, so it disappears with the last reader, and nothing is left behind on any path
but a killed server's: :func:`sweep_orphans` removes those before the next load.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from connectors.api import tables
from connectors.base import DataItem
from connectors.syncing.source_sync import _Spill

BATCH = 1024  # rows read or written at once: what a listing holds in memory at a time
_GLOB_CHARS = "*?["
_COLUMNS = "id BLOB PRIMARY KEY, size INTEGER, entry TEXT"


def _key(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def _after_prefix(key: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``key`` (None: no bound).

    UTF-8 never holds the byte 0xff, so the last byte can always be incremented.
    """
    return key[:-1] + bytes([key[-1] + 1]) if key else None


def literal_prefix(pattern: str) -> str:
    """The start of ``pattern`` before its first wildcard: every match starts with it (fnmatch has no escape).

    Args:
        pattern: an fnmatch glob.

    Returns:
        Its literal start ("" when it starts with a wildcard).
    """
    cut = min((i for i in (pattern.find(c) for c in _GLOB_CHARS) if i >= 0), default=len(pattern))
    return pattern[:cut]


def sweep_orphans(folder: Path, idle_seconds: float) -> list[str]:
    """Remove the spill files a killed server left in ``folder``: those not written for ``idle_seconds``.

    A load still running writes its file at least once per batch and ends by its deadline, so a
    file idle for longer than that deadline belongs to no one (another worker's live load is kept).

    Args:
        folder: The listings folder under the state folder.
        idle_seconds: How long a file must have been left unwritten (the listing deadline and a margin).

    Returns:
        The names removed.
    """
    removed: list[str] = []
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith("da-listing-") and entry.name.endswith(".sqlite") and entry.is_file(
                    follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > idle_seconds:
                        os.unlink(entry.path)
                        removed.append(entry.name)
    return removed


class ListingFile:
    """One loaded listing: its rows on disk, the names it refused in memory; safe to share between threads."""

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._spill = _Spill(folder)
        except OSError:  # a read-only state folder: the system's temporary folder (unlinked the same way)
            self._spill = _Spill()
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._spill.db.execute(f"CREATE TABLE items ({_COLUMNS}) WITHOUT ROWID")
        self.count = 0  # rows added (a duplicate identifier counts once)
        self.refused: list[tuple[str, str]] = []  # names the listing refused, with why

    @property
    def path(self) -> str:
        """The spill file's name (it no longer exists once :meth:`loaded` or :meth:`close` ran)."""
        return self._spill.path

    def add(self, items: Sequence[DataItem]) -> None:
        """Write a batch of listed items (a duplicate identifier is kept once).

        Args:
            items: the batch, in any order.
        """
        rows = [(_key(i.path), i.size if isinstance(i.size, int) and i.size >= 0 else None, _entry_text(i))
                for i in items]
        with self._lock, self._spill.db as db:
            self.count += max(db.executemany("INSERT OR IGNORE INTO items VALUES (?, ?, ?)", rows).rowcount, 0)

    def loaded(self, refused: list[tuple[str, str]]) -> None:
        """Loading is over: the file's name goes (the open connection still reads it).

        Args:
            refused: the names the listing refused, with why (kept in memory: the connector's own list).
        """
        self.refused = refused
        self.unlink()

    def unlink(self) -> None:
        """Remove the file's name, if still there (readers keep reading it)."""
        with contextlib.suppress(OSError):
            os.unlink(self._spill.path)

    def close(self) -> None:
        """Close the connection and remove the file (if still named)."""
        with self._lock:
            self._spill.__exit__()

    def page(self, prefix: str, delimiter: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The entries under ``prefix`` after ``after``, ``limit`` at most, and whether more follow.

        With a delimiter, deeper items fold into their folder (one entry); the rows of a folder
        are skipped by a key range, not read.

        Args:
            prefix: only items whose identifier starts with it.
            delimiter: the folder separator; "" lists items flat.
            after: the path of the last entry of the previous page (None: the first page).
            limit: entries at most.

        Returns:
            The entries (browse's JSON objects) in path order, and whether more follow.
        """
        entries: list[dict[str, Any]] = []
        low, strict = _key(prefix), False
        if after is not None and _key(after) >= low:
            low, strict = _key(after), True
        with self._lock:
            while len(entries) <= limit:
                jump = self._fold(entries, prefix, delimiter, after, limit, low, strict)
                if jump is None:
                    break
                low, strict = jump
        return entries[:limit], len(entries) > limit

    def _fold(self, entries: list[dict[str, Any]], prefix: str, delimiter: str, after: str | None, limit: int,
              low: bytes, strict: bool) -> tuple[bytes, bool] | None:
        """Add entries from ``low`` on; where to read next (after a folder), or None when done."""
        cursor = self._spill.db.execute(
            f"SELECT id, entry FROM items WHERE id {'>' if strict else '>='} ? ORDER BY id", (low,))  # noqa: S608
        while rows := cursor.fetchmany(BATCH):
            for raw, text in rows:
                path = _text(raw)
                if not path.startswith(prefix):
                    return None
                rest = path[len(prefix):]
                cut = rest.find(delimiter) if delimiter else -1
                if cut >= 0:
                    folder = prefix + rest[: cut + len(delimiter)]
                    if after is None or folder > after:
                        entries.append({"object": "data_source.folder", "path": folder, "name": rest[:cut]})
                    bound = _after_prefix(_key(folder))
                    return (bound, False) if bound is not None and len(entries) <= limit else None
                entries.append({"object": "data_source.item", "path": path, **json.loads(text)})
                if len(entries) > limit:
                    return None
        return None

    def matching(self, pattern: str) -> Iterator[list[tuple[str, int | None]]]:
        """The items ``pattern`` matches (fnmatch, case-sensitive), in identifier order, a batch at a time.

        Only the key range of the pattern's literal start is read.

        Args:
            pattern: an fnmatch glob over identifiers.

        Yields:
            Non-empty lists of (identifier, listed size or None).
        """
        start = _key(literal_prefix(pattern))
        end = _after_prefix(start)
        low, strict = start, False
        while True:
            with self._lock:
                rows = self._spill.db.execute(
                    f"SELECT id, size FROM items WHERE id {'>' if strict else '>='} ? AND id < ? "  # noqa: S608
                    "ORDER BY id LIMIT ?", (low, end if end is not None else b"\xff", BATCH)).fetchall()
            if not rows:
                return
            low, strict = rows[-1][0], True
            found = [(path, size) for path, size in ((_text(r), s) for r, s in rows)
                     if fnmatch.fnmatchcase(path, pattern)]
            if found:
                yield found


def _entry_text(item: DataItem) -> str:
    """A browse entry's fields but its path (the row's key), as JSON."""
    return json.dumps({"name": item.name, "size": item.size, "modified_at": item.modified_at,
                       "metadata": tables.json_value(item.metadata)}, separators=(",", ":"), default=str)
