"""One walk of a source's workspace folder: every lineage record's landed path, and every landed file's size.

A re-sync asks three things of each landed item: is its record there, is its file there,
a regular file of the recorded size. One walk of the folder (a scan per folder, a stat per
file relative to its open folder, no link followed) answers all three for every item at
once, into two tables of a SQLite file: ``recorded (path)`` and ``landed (path, size)``;
the sync joins them with its listing and the prior manifest
(``connectors.syncing.dataset_store``).

Standard library only: for a large folder the walk runs as this file's script in a process
of its own (:func:`walk_in_child`), on another core than the listing, with no import of the
package (a child starts in ~20 ms). Paths are stored as UTF-8 bytes (lone surrogates kept),
as the prior manifest's are.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import astuple, dataclass

BATCH = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Names:
    """The workspace's reserved names (``connectors.landing.names``; passed in: this module imports no package)."""

    lineage: str  # LINEAGE_DIR: the records' folder, at the top of the source's folder
    locks: str  # LOCK_DIR: the lock files, at the top of the records' folder
    record_suffix: str  # RECORD_SUFFIX: a record is ``<landed path><suffix>``
    temp_prefix: str  # TEMP_PREFIX: a temporary of a landing (never a record nor a landed file)


def create_tables(db: sqlite3.Connection) -> None:
    """The walk's tables (empty).

    Args:
        db: The connection of the file the walk fills.
    """
    db.execute("CREATE TABLE IF NOT EXISTS recorded (path BLOB PRIMARY KEY) WITHOUT ROWID")
    db.execute("CREATE TABLE IF NOT EXISTS landed (path BLOB PRIMARY KEY, size INTEGER) WITHOUT ROWID")


def walk(db: sqlite3.Connection, folder: str, names: Names) -> None:
    """Fill ``recorded`` and ``landed`` with what is under ``folder`` now.

    ``recorded``: the landed path of every regular file ``<path>.json`` below ``folder/.lineage``
    (its lock folder and temporaries left out). ``landed``: every regular file elsewhere below
    ``folder`` (temporaries left out), with its size. A link is never followed nor listed; a folder
    that vanishes or turns into a link meanwhile is skipped; a missing ``folder`` holds nothing.

    Args:
        db: The connection of the file to fill (its tables are created if missing).
        folder: The source's workspace folder.
        names: The workspace's reserved names.
    """
    create_tables(db)
    try:
        top = os.open(folder, _DIR_FLAGS)
    except OSError:
        return
    writer = _Writer(db)
    stack: list[tuple[int, str, bool, list[str]]] = []  # open folder, its prefix, in the records?, subfolders left
    try:
        stack.append((top, "", False, _scan(top, "", False, names, writer)))
        while stack:
            fd, prefix, records, folders = stack[-1]
            if not folders:
                os.close(stack.pop()[0])
                continue
            name = folders.pop()
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:  # gone meanwhile, or a link now
                continue
            inner = records or (not prefix and name == names.lineage)
            inner_prefix = "" if inner and not records else f"{prefix}{name}/"
            stack.append((child, inner_prefix, inner, []))
            stack[-1][3].extend(_scan(child, inner_prefix, inner, names, writer))
    finally:
        for fd, *_ in stack:
            os.close(fd)
    writer.flush()


def _scan(fd: int, prefix: str, records: bool, names: Names, writer: _Writer) -> list[str]:
    """One folder: its records or its files written, its subfolders' names returned (last first: sorted reversed)."""
    folders: list[str] = []
    try:
        with os.scandir(fd) as scanned:
            entries = list(scanned)
    except OSError:
        return folders
    suffix, temp = names.record_suffix, names.temp_prefix
    found: list[tuple[bytes]] = []
    sized: list[tuple[bytes, int]] = []
    for entry in entries:
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            if not (records and not prefix and name == names.locks):
                folders.append(name)
        elif name.startswith(temp):
            continue
        elif records:
            if name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                found.append(((prefix + name[: -len(suffix)]).encode("utf-8", "surrogatepass"),))
        else:
            try:
                info = entry.stat(follow_symlinks=False)  # fstatat on the open folder: no path walked again
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                sized.append(((prefix + name).encode("utf-8", "surrogatepass"), info.st_size))
    writer.add(found, sized)
    folders.sort(reverse=True)
    return folders


class _Writer:
    """Rows written a batch at a time, each folder's in key order (the tables' B-trees grow at their end)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._records: list[tuple[bytes]] = []
        self._landed: list[tuple[bytes, int]] = []

    def add(self, records: list[tuple[bytes]], landed: list[tuple[bytes, int]]) -> None:
        records.sort()
        landed.sort()
        self._records += records
        self._landed += landed
        if len(self._records) + len(self._landed) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self._db:
            if self._records:
                self._db.executemany("INSERT OR IGNORE INTO recorded VALUES (?)", self._records)
            if self._landed:
                self._db.executemany("INSERT OR IGNORE INTO landed VALUES (?, ?)", self._landed)
        self._records, self._landed = [], []


def start_walk(path: str, folder: str, names: Names) -> subprocess.Popen[bytes]:
    """Start :func:`walk` into the SQLite file ``path`` in a child process (this file as a script).

    Args:
        path: The SQLite file to fill (no other connection writes it meanwhile).
        folder: The source's workspace folder.
        names: The workspace's reserved names.

    Returns:
        The child: exit status 0 when it filled the file (else the caller walks in its own process).
    """
    command = [sys.executable, "-I", "-S", os.path.abspath(__file__), path, folder, *astuple(names)]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # noqa: S603  (our file)
                            stderr=subprocess.DEVNULL)


def _main(argv: Sequence[str]) -> None:
    path, folder, *names = argv
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        walk(db, folder, Names(*names))
    finally:
        db.close()


if __name__ == "__main__":
    _main(sys.argv[1:])
