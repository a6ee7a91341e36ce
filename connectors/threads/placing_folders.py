"""Dataset folders (a table landed as Parquet parts) onto the top level of a thread's folder.

A folder is placed as a file is (:mod:`connectors.threads.placing`), by whole folders: its parts
are linked (or copied, across file systems) into a hidden temporary folder beside its place, which
then takes a free name in one ``renameat2(RENAME_NOREPLACE)`` (a name that appeared meanwhile is
never replaced) or is exchanged with our earlier copy (``RENAME_EXCHANGE``: the agent sees the old
folder or the new one, never a mix). Only the parts the dataset's record lists are placed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from connectors.checked_fetch import dataset_parts
from connectors.landing.dirs import open_regular_file
from connectors.landing.names import TEMP_PREFIX, TEMP_SUFFIX

__all__: list[str] = []  # connectors.threads.placing's machinery: nothing here is for users

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def temporary_folder(dir_fd: int, source: Path, record: dict[str, Any]) -> str:
    """A hidden folder in ``dir_fd`` holding the listed parts of the dataset folder ``source``; its name."""
    temp = f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    os.mkdir(temp, 0o775, dir_fd=dir_fd)
    try:
        fd = os.open(temp, _FOLDER_FLAGS, dir_fd=dir_fd)
        try:
            group = os.fstat(dir_fd).st_gid  # the thread folder's group, as if created there
            for name in dataset_parts(record) or []:
                link_or_copy(source / name, fd, name)
                with contextlib.suppress(PermissionError):
                    os.chown(name, -1, group, dir_fd=fd, follow_symlinks=False)
            with contextlib.suppress(PermissionError):
                os.chown(temp, -1, group, dir_fd=dir_fd, follow_symlinks=False)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        remove_tree(dir_fd, temp)
        raise
    return temp


def link_or_copy(source: Path, target_fd: int, name: str) -> None:
    """Make ``name`` in ``target_fd`` hold ``source``'s bytes: a hard link, or a synced copy across file systems.

    Args:
        source: The file to place (never followed if it is a link).
        target_fd: The folder to place it in.
        name: Its new name there; must not exist (a partial copy is removed on failure).
    """
    try:
        os.link(source, name, dst_dir_fd=target_fd, follow_symlinks=False)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    reader = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        writer = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         stat.S_IMODE(os.fstat(reader).st_mode), dir_fd=target_fd)
        try:
            while chunk := os.read(reader, 1 << 20):
                while chunk:
                    chunk = chunk[os.write(writer, chunk):]
            os.fsync(writer)
        except BaseException:
            os.close(writer)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=target_fd)
            raise
        os.close(writer)
    finally:
        os.close(reader)


def _renameat2(dir_fd: int, source: str, target: str, flags: int) -> int:
    """0, or the errno of ``renameat2`` within ``dir_fd``."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(dir_fd, os.fsencode(source), dir_fd, os.fsencode(target), flags) == 0:
        return 0
    return ctypes.get_errno()


def rename_no_replace(dir_fd: int, source: str, target: str) -> bool:
    """Rename ``source`` to ``target`` unless ``target`` exists (False then)."""
    failed = _renameat2(dir_fd, source, target, _RENAME_NOREPLACE)
    if failed in (errno.EEXIST, errno.ENOTEMPTY):
        return False
    if failed:
        raise OSError(failed, os.strerror(failed), target)
    return True


def replace_folder(dir_fd: int, source: Path, record: dict[str, Any], name: str) -> None:
    """Put a copy of the dataset folder ``source`` at ``name`` (our earlier copy) in one step."""
    temp = temporary_folder(dir_fd, source, record)
    try:
        failed = _renameat2(dir_fd, temp, name, _RENAME_EXCHANGE)
        if failed:
            raise OSError(failed, os.strerror(failed), name)
    finally:
        remove_tree(dir_fd, temp)  # the old folder after the exchange, the new one when it failed


def sweep_orphaned_folders(dir_fd: int) -> int:
    """Remove the hidden temporary folders a killed attach left in a thread's folder; how many.

    Call it holding the thread's lock (``ThreadRecords.locked``): every placing holds it from the
    temporary folder's creation to its rename, so one seen under the lock belongs to no one.
    Links and files are left to the landing's sweep (it keeps a temporary whose writer still holds it).

    Args:
        dir_fd: The thread's folder.

    Returns:
        How many folders were removed.
    """
    removed = 0
    for entry in os.scandir(dir_fd):
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX) and entry.is_dir(
                follow_symlinks=False):
            remove_tree(dir_fd, entry.name)
            removed += 1
    return removed


def remove_tree(dir_fd: int, name: str) -> None:
    """Remove the folder ``name`` of ``dir_fd`` (by descriptors: a link inside is removed, not followed)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        shutil.rmtree(name, dir_fd=dir_fd)


def folder_unmodified(dir_fd: int, name: str, record: dict[str, Any]) -> bool:
    """``name`` still holds exactly the parts ``record`` lists, each with its recorded sha256."""
    listed = {str(p.get("name")): p.get("sha256") for p in record.get("parts", []) if isinstance(p, dict)}
    try:
        fd = os.open(name, _FOLDER_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        if set(os.listdir(fd)) != set(listed):
            return False
        return all(_sha256_at(fd, part) == digest for part, digest in listed.items())
    finally:
        os.close(fd)


def _sha256_at(dir_fd: int, name: str) -> str | None:
    fd = open_regular_file(dir_fd, name)
    if fd is None:
        return None
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()
