"""Staged files onto the top level of a thread's folder: what is already there decides how.

For each staged file, under the thread's lock, in this order:

- our own earlier copy of the same item (same source, identifier, query) is still there, unmodified
  (its size, modification time and sha256 are those we recorded), and the item is at the same
  version (or the same bytes): that file is the answer; nothing is copied (``unchanged``);
- such a copy is there unmodified, but the item has a newer version: it is replaced in place, same
  name (``replaced``);
- otherwise the file gets its own name when free, else the first free name of
  :func:`name_candidates` (``attached``; ``wanted`` says which name was taken). A file we did not
  land, or one changed since we landed it, is never replaced.

Files are linked (same file system) or copied (another one) to a temporary beside their place, then
linked to a free name (a link never replaces what appeared meanwhile) or renamed over our copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.checked_fetch import dataset_parts
from connectors.errors import NameCollisionError
from connectors.landing.dirs import open_directory, open_regular_file, sweep_stale_temporaries
from connectors.landing.names import LINEAGE_DIR, MAX_FILE_NAME_BYTES, TEMP_PREFIX, TEMP_SUFFIX
from connectors.threads.folders import GENERATED_DIR
from connectors.threads.placing_folders import (
    folder_unmodified,
    link_or_copy,
    remove_tree,
    rename_no_replace,
    replace_folder,
    sweep_orphaned_folders,
    temporary_folder,
)
from connectors.threads.records import ThreadRecords

__all__ = ["folded", "name_candidates"]  # the rest is attach_to_thread's machinery

RESERVED_NAMES = (GENERATED_DIR, LINEAGE_DIR)  # DeepAnalyze's output folder; records lived there once
MAX_CANDIDATES = 1000
NEW, UNCHANGED, REPLACED = "attached", "unchanged", "replaced"


@dataclass
class Staged:
    """A file fetched into the attach's staging folder, its record, and how it was placed."""

    path: Path
    record: dict[str, Any]
    status: str = NEW
    wanted: str | None = None  # the name it would have had, when that was taken by another file
    _undo: list[str] = field(default_factory=list)  # names this attach created (removed on failure)


def folded(name: str) -> str:
    """The key under which a case- or normalization-insensitive file system would store ``name``.

    Args:
        name: A file name.

    Returns:
        ``name`` in Unicode NFC, case-folded: two names with one key collide on such a file system.
    """
    return unicodedata.normalize("NFC", name).casefold()


def name_candidates(name: str, source_id: str) -> Iterator[str]:
    """Top-level names for a staged file, best first: its own name, with the source id, then numbered.

    Each fits in :data:`~connectors.landing.names.MAX_FILE_NAME_BYTES` (a long stem is shortened).

    Args:
        name: The file's own name (its suffix is kept on every candidate).
        source_id: The source it came from, added to tell it apart from a file of another source.

    Yields:
        Up to 1000 names: ``name``, ``<stem>-<source_id><suffix>``, then ``<stem>-<source_id>-<n><suffix>``.
    """
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, dot + suffix) if stem else (name, "")
    yield name
    for n in range(1, MAX_CANDIDATES):
        tail = f"-{source_id}{suffix}" if n == 1 else f"-{source_id}-{n}{suffix}"
        yield _shortened(stem, MAX_FILE_NAME_BYTES - len(tail.encode())) + tail


def _shortened(text: str, limit: int) -> str:
    while len(text.encode()) > limit:
        text = text[:-1]
    return text


def _item_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two records the same item: source, identifier, and the query of a query's result."""
    return record.get("source_id"), record.get("identifier"), record.get("query")


def place_all(folder: Path, records: ThreadRecords, staged: list[Staged]) -> None:
    """Place every staged file in ``folder`` (see the module docstring), its record in ``records``; all or nothing.

    On failure, the files this call added and their records are removed again (a replaced copy stays
    replaced: the newer version of our own file).
    """
    dir_fd = open_directory(folder.parent, [folder.name], create=False)
    try:
        with records.locked():
            sweep_orphaned_folders(dir_fd)  # a killed attach's: under the lock, no placing is running
            sweep_stale_temporaries(dir_fd)  # its temporary files too (one whose writer holds it is kept)
            known = records.attached()
            taken = {folded(entry) for entry in [*os.listdir(dir_fd), *RESERVED_NAMES]}
            try:
                for item in staged:
                    _place(folder, dir_fd, records, item, known, taken)
                os.fsync(dir_fd)
            except BaseException:
                undo(folder, records, staged)
                raise
    finally:
        os.close(dir_fd)


def undo(folder: Path, records: ThreadRecords, staged: list[Staged]) -> None:
    """Remove the files (and records) that placing ``staged`` added."""
    for item in staged:
        for name in item._undo:
            _unlink_top_level(folder, name)
            records.remove(name)
        item._undo.clear()


def _place(folder: Path, dir_fd: int, records: ThreadRecords, item: Staged, known: list[dict[str, Any]],
           taken: set[str]) -> None:
    record = item.record
    for earlier in sorted((r for r in known if _item_key(r) == _item_key(record)),
                          key=lambda r: str(r.get("fetched_at")), reverse=True):
        name = str(earlier["attached_as"])
        if not _exists(dir_fd, name):  # removed since (by the agent or the user): its record goes too
            records.remove(name)
            known.remove(earlier)
            continue
        if not _unmodified(dir_fd, name, earlier):
            continue
        if earlier.get("source_version") == record.get("source_version") or earlier.get("sha256") == record["sha256"]:
            item.record, item.status = earlier, UNCHANGED
            return
        _replace(folder, dir_fd, item, name)
        item.status = REPLACED
        _recorded(folder, dir_fd, records, item, name, known)
        return
    name = _link_free_name(folder, dir_fd, item, taken)
    item._undo.append(name)
    _recorded(folder, dir_fd, records, item, name, known)


def _recorded(folder: Path, dir_fd: int, records: ThreadRecords, item: Staged, name: str,
              known: list[dict[str, Any]]) -> None:
    """Record where the item now is, with the file's mtime: what tells our unmodified copy later."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    item.record.update(local_path=str(folder / name), attached_as=name, attached_mtime_ns=info.st_mtime_ns)
    records.write(name, item.record)
    known[:] = [r for r in known if r.get("attached_as") != name] + [item.record]


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _unmodified(dir_fd: int, name: str, record: dict[str, Any]) -> bool:
    """``name`` is still the file we placed: a regular file of the recorded size, mtime and sha256."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if dataset_parts(record) is not None:
        return stat.S_ISDIR(info.st_mode) and folder_unmodified(dir_fd, name, record)
    if not stat.S_ISREG(info.st_mode) or info.st_size != record.get("size"):
        return False
    if info.st_mtime_ns != record.get("attached_mtime_ns"):
        return False
    fd = open_regular_file(dir_fd, name)
    if fd is None:
        return False
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest() == record.get("sha256")


def _temporary_copy(item: Staged, dir_fd: int) -> str:
    """A temporary in the thread's folder holding the staged file: a link, or a copy across file systems."""
    temp = f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    link_or_copy(Path(item.path), dir_fd, temp)
    _take_folder_group(dir_fd, temp)
    return temp


def _take_folder_group(dir_fd: int, name: str) -> None:
    """Give ``name`` the thread folder's group, as if it had been created there.

    The file was staged in our state folder, so it has that folder's group. DeepAnalyze reads the
    file through the group of the shared workspace (a setgid folder, docs/deepanalyze/README.md).
    If we are not in that group, the file keeps its group.
    """
    group = os.fstat(dir_fd).st_gid
    if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_gid != group:
        with contextlib.suppress(PermissionError):
            os.chown(name, -1, group, dir_fd=dir_fd, follow_symlinks=False)


def _replace(folder: Path, dir_fd: int, item: Staged, name: str) -> None:
    if dataset_parts(item.record) is not None:
        replace_folder(dir_fd, item.path, item.record, name)
        return
    temp = _temporary_copy(item, dir_fd)
    try:
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink(dir_fd, temp)
        raise


def _link_free_name(folder: Path, dir_fd: int, item: Staged, taken: set[str]) -> str:
    if dataset_parts(item.record) is not None:
        return _folder_free_name(dir_fd, item, taken)
    temp = _temporary_copy(item, dir_fd)
    try:
        for name in name_candidates(item.path.name, str(item.record["source_id"])):
            if folded(name) in taken:
                continue
            taken.add(folded(name))
            try:  # a link fails if the name exists: a file that appeared meanwhile is never replaced
                os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                continue
            if name != item.path.name:
                item.wanted = item.path.name
            return name
    finally:
        _unlink(dir_fd, temp)
    raise NameCollisionError(f"no free name for {item.path.name!r} in the thread's folder")


def _folder_free_name(dir_fd: int, item: Staged, taken: set[str]) -> str:
    """Place a dataset folder under the first free name (never over a name that appeared meanwhile)."""
    temp = temporary_folder(dir_fd, item.path, item.record)
    try:
        for name in name_candidates(item.path.name, str(item.record["source_id"])):
            if folded(name) in taken:
                continue
            taken.add(folded(name))
            if not rename_no_replace(dir_fd, temp, name):
                continue
            if name != item.path.name:
                item.wanted = item.path.name
            return name
    finally:
        remove_tree(dir_fd, temp)  # gone already when it was renamed
    raise NameCollisionError(f"no free name for {item.path.name!r} in the thread's folder")


def _unlink(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def _unlink_top_level(folder: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        dir_fd = open_directory(folder.parent, [folder.name], create=False)
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                remove_tree(dir_fd, name)  # a dataset folder this attach placed
            else:
                os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
