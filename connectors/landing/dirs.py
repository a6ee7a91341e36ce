"""Folders opened without following links, locked temporaries, and their sweeping.

Every folder under the workspace root is opened with ``O_NOFOLLOW`` from its
parent's descriptor, so a symlink planted in the workspace is never followed.
A writer holds an exclusive ``flock`` on its temporary while it writes; a
temporary whose lock can be taken was left by a dead process and is swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import fcntl
import os
import secrets
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from connectors.errors import NameCollisionError, UnsafeNameError, WorkspaceError
from connectors.landing.names import TEMP_PREFIX, TEMP_SUFFIX, shown_path

__all__ = ["MAX_RECORD_BYTES", "finish_in_thread", "open_directory", "open_regular_file", "read_regular_file"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_directory(root: Path, relative_parts: list[str], *, create: bool) -> int:
    """A descriptor of ``root/relative_parts``, refusing symlinks on the way.

    ``root`` itself is trusted (the user or the framework chose it, see
    :func:`connectors.landing.root.workspace_root`); every folder under it is
    opened with O_NOFOLLOW from its parent's descriptor and created when missing
    and ``create`` is set.

    Args:
        root: The trusted folder to start from (links in it are the user's choice).
        relative_parts: The folder names below ``root``, each opened without following a link.
        create: Create missing folders (``root`` included) rather than raise.

    Returns:
        An open descriptor of the folder; the caller closes it.

    Raises:
        FileNotFoundError: a folder is missing and ``create`` is not set.
        UnsafeNameError: a symlink is in the way (not followed).
        NameCollisionError: a file (or a FIFO, a socket...) is where a folder is needed.
        WorkspaceError: any other local failure; the message names the folder.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        try:
            fd = os.open(root, flags)
        except FileNotFoundError:
            if not create:
                raise
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(root, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise workspace_error(exc, root) from exc
    for index, part in enumerate(relative_parts):
        # closes the parent's descriptor whether or not the child opens
        fd = _open_child_directory(fd, part, create, root.joinpath(*relative_parts[: index + 1]))
    return fd


def _open_child_directory(parent_fd: int, part: str, create: bool, shown: Path) -> int:
    try:
        try:  # open first: the folder usually exists, and a failed mkdir costs as much as an open
            child = os.open(part, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=parent_fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _directory_error(exc, shown, _is_link(parent_fd, part)) from exc
    finally:
        os.close(parent_fd)
    return child


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _directory_error(exc: OSError, path: Path, is_link: bool) -> Exception:
    # O_DIRECTORY|O_NOFOLLOW on a link: Linux says ENOTDIR, others ELOOP
    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and is_link):
        return UnsafeNameError(f"a symlink is in the way at {shown_path(path)} in the workspace; not followed")
    if exc.errno == errno.ENOTDIR:
        return NameCollisionError(f"{shown_path(path)} is a file in the workspace, but a folder is needed there")
    return workspace_error(exc, path)


def workspace_error(exc: OSError, path: str | os.PathLike[str]) -> WorkspaceError:
    """The WorkspaceError for a local failure at workspace ``path`` (named, bounded; disk full said plainly)."""
    if exc.errno == errno.ENOSPC:
        return WorkspaceError(f"disk full while writing {shown_path(path)} in the workspace")
    reason = exc.strerror or type(exc).__name__
    return WorkspaceError(f"cannot write {shown_path(path)} in the workspace: {reason}")


_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_regular_file(dir_fd: int, name: str, flags: int = _FILE_FLAGS, mode: int = 0o644) -> int | None:
    """``name`` in the folder, opened without following a link or blocking; None unless a regular file.

    O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.

    Args:
        dir_fd: The folder's descriptor.
        name: The file's name in it (one part, no slash).
        flags: ``os.open`` flags; no-follow, non-blocking and close-on-exec are always added.
        mode: The permissions of a file ``flags`` creates.

    Returns:
        An open descriptor the caller closes, or None when ``name`` is missing, a link, a
        folder or any other kind of file.
    """
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENOTDIR, errno.EOPNOTSUPP):
            return None  # missing, a link, a folder, a socket: not a regular file
        raise
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record is a small JSON object; a huge file there is not one


def read_regular_file(dir_fd: int, name: str) -> bytes | None:
    """The bytes of regular file ``name`` in the folder, read without following a link.

    Args:
        dir_fd: The folder's descriptor.
        name: The file's name in it.

    Returns:
        The whole file, or None when it is missing, not a regular file, or over 16 MiB.
    """
    fd = open_regular_file(dir_fd, name)
    if fd is None:
        return None
    try:
        return read_bounded(fd)
    finally:
        os.close(fd)


def read_bounded(fd: int, limit: int = MAX_RECORD_BYTES) -> bytes | None:
    """All of ``fd``, or None past ``limit`` bytes (a file planted there cannot exhaust memory)."""
    chunks = []
    total = 0
    while chunk := os.read(fd, 1 << 20):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# --- stale temporaries ------------------------------------------------------

_swept: set[tuple[int, int]] = set()
_swept_lock = threading.Lock()


def sweep_stale_temporaries(dir_fd: int) -> int:
    """Remove temporaries in a folder whose writer has died; return how many.

    A writer holds an exclusive ``flock`` on its temporary for as long as it
    writes, so a temporary whose lock can be taken belongs to nobody.
    """
    removed = 0
    for entry in os.scandir(dir_fd):
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
            removed += _remove_if_abandoned(dir_fd, entry.name)
    return removed


def sweep_and_list_folders(dir_fd: int) -> tuple[int, list[str]]:
    """:func:`sweep_stale_temporaries` of a folder, and the names of its subfolders (not links), in one scan.

    Args:
        dir_fd: The folder, open.

    Returns:
        How many temporaries were removed, and the subfolders' names.
    """
    removed, folders = 0, []
    with os.scandir(dir_fd) as entries:
        scanned = list(entries)
    for entry in scanned:
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
            removed += _remove_if_abandoned(dir_fd, entry.name)
        if entry.is_dir(follow_symlinks=False):  # a folder under a temporary's name is entered, as before
            folders.append(entry.name)
    return removed, folders


def _remove_if_abandoned(dir_fd: int, name: str) -> int:
    try:
        # O_NONBLOCK: a FIFO planted under a temporary's name must not block the sweep
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return 0  # someone is writing it
    try:
        os.unlink(name, dir_fd=dir_fd)
        return 1
    except OSError:
        return 0
    finally:
        os.close(fd)


def sweep_once(dir_fd: int) -> None:
    """Sweep a folder's stale temporaries, the first time this process lands in it."""
    if mark_swept(dir_fd):
        sweep_stale_temporaries(dir_fd)


def mark_swept(dir_fd: int) -> bool:
    """Note that this process swept the folder; False when it already had."""
    info = os.fstat(dir_fd)
    key = (info.st_dev, info.st_ino)
    with _swept_lock:
        if key in _swept:
            return False
        _swept.add(key)
    return True


def create_locked_temporary(dir_fd: int, first_name: str | None = None) -> tuple[str, int]:
    """A new temporary in the folder, exclusively locked by us.

    A sweeper can lock and remove a temporary in the instant between its
    creation and our lock; we notice (the name no longer leads to our file)
    and make another. ``first_name``: the name to try first (a temporary's name,
    from the caller's own unpredictable sequence); FileExistsError if it is taken.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name, first_name = first_name or f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}", None
        fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return name, fd
        except FileNotFoundError:
            pass
        os.close(fd)


async def finish_in_thread(function: Callable[[], Any], executor: Executor | None = None) -> Any:
    """Run blocking ``function`` in a thread; if cancelled, still wait for it before re-raising.

    The landing's descriptor must not be closed under a thread that still uses it.

    Args:
        function: The blocking call; it runs in a copy of the caller's context (its run id).
        executor: The thread pool to use; None for the loop's default.

    Returns:
        What ``function`` returned.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the run id of lineage records lives in a context variable
    future = loop.run_in_executor(executor, context.run, function)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise
