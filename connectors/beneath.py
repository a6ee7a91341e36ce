"""Opening a path beneath a folder, race-free: links are followed only while they stay under it.

The ``local_file`` connector serves the files under its ``root``; a path that
was checked and then opened again could be swapped for a link in between (the
check and the use must be one operation). :func:`open_beneath` walks the path
component by component from the root's descriptor with ``O_NOFOLLOW``; a link
met on the way is read (``readlinkat``) and its target walked the same way,
``..`` going back up the folders already opened: so the kernel never resolves
a name we did not check, and nothing outside the root is ever opened, however
the tree changes meanwhile. The final component must be a regular file (or a
folder, when asked for one); FIFOs, sockets and devices are refused without
being opened for reading, so nothing blocks.
"""

from __future__ import annotations

import errno
import os
import stat

from connectors.landing.syscalls import open_no_links

MAX_LINKS = 40  # as the kernel's own limit on links followed in one lookup

_BASE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR = _BASE | os.O_DIRECTORY


class EscapesRootError(Exception):
    """The path, once its links are followed, leads outside the root."""


class NotRegularError(Exception):
    """The path leads to a FIFO, a socket, a device (or a folder where a file is wanted)."""


class IsFolderError(NotRegularError):
    """The path leads to a folder where a file is wanted."""


def open_beneath(root_fd: int, root: str, relative: str, *, directory: bool = False,
                 held: dict[str, int] | None = None) -> int:
    """A descriptor of ``root/relative`` (a regular file, or a folder if ``directory``), never outside root.

    Args:
        root_fd: a descriptor of the root folder (not closed).
        root: the root's absolute path without links, to place absolute link targets.
        relative: the path below the root, '/'-separated.
        directory: open a folder rather than a regular file.
        held: folders below the root already reached without a link, by path, kept open by the
            caller (a batch of files: each folder opened once); the ones opened here are added.

    Returns:
        An open descriptor; the caller closes it.

    Raises:
        EscapesRootError: a link leads outside the root.
        NotRegularError: the path is not a regular file (or folder).
        OSError: ENOENT, ENOTDIR (a file on the way), ELOOP (too many links), EACCES...
    """
    if not directory and (quick := _open_file_quickly(root_fd, relative, held)) is not None:
        return quick
    todo = _components(relative)
    folders = [os.dup(root_fd)]  # the folders walked into; folders[-1] is the current one
    links = 0
    try:
        while todo:
            part = todo.pop()
            if part == "..":
                if len(folders) == 1:
                    raise EscapesRootError(relative)
                os.close(folders.pop())
                continue
            opened = _open_component(folders[-1], part, directory=directory or bool(todo))
            if isinstance(opened, int):
                folders.append(opened)
                continue
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
            if opened == "":
                todo.append(part)
            else:
                todo.extend(_link_target(opened, root, folders))
        if not directory and not stat.S_ISREG(os.fstat(folders[-1]).st_mode):
            raise IsFolderError(relative)  # the walk ended on a folder ('..', or the root itself)
        return folders.pop()
    finally:
        for fd in folders:
            os.close(fd)


def _open_file_quickly(root_fd: int, relative: str, held: dict[str, int] | None = None) -> int | None:
    """The usual case: the file's folder reached in one ``openat2`` that refuses any link, then the file as the walk
    opens it (checked before it is opened). None: a link, an error or no ``openat2``; the walk then says which.
    """
    folder_path, _, name = relative.rpartition("/")
    if not folder_path or name in ("", ".", ".."):
        return None  # a file at the top: the walk is one step anyway
    folder = held.get(folder_path) if held is not None else None
    if folder is None:
        try:
            folder = open_no_links(root_fd, folder_path, _DIR)
        except OSError:
            return None
        if folder is None:
            return None
        if held is not None:
            held[folder_path] = folder  # the caller closes it
    try:
        opened = _open_component(folder, name, directory=False)
    except (OSError, NotRegularError):
        return None
    finally:
        if held is None:
            os.close(folder)
    return opened if isinstance(opened, int) else None  # a link last: the walk follows it


def _components(relative: str) -> list[str]:
    """The components to walk, last first (a stack), without empty and '.' ones."""
    return [part for part in reversed(relative.split("/")) if part not in ("", ".")]


def _open_component(dir_fd: int, part: str, *, directory: bool) -> int | str:
    """A descriptor of ``part``, or its link target ('' when it changed under us: look again)."""
    if not directory:
        info = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            return _read_link(dir_fd, part)
        if stat.S_ISDIR(info.st_mode):
            raise IsFolderError(part)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularError(part)  # never opened: a FIFO would block, a device could act
    try:
        fd = os.open(part, _DIR if directory else _BASE, dir_fd=dir_fd)
    except OSError as exc:
        # a link: ELOOP, or ENOTDIR with O_DIRECTORY (Linux checks that first)
        if exc.errno == errno.ELOOP:
            return _read_link(dir_fd, part)
        if exc.errno == errno.ENOTDIR and directory:
            target = _read_link(dir_fd, part)
            if target or _is_folder(dir_fd, part):  # a link, or a folder again: look again
                return target
        raise
    kind = os.fstat(fd).st_mode
    if not (stat.S_ISDIR(kind) if directory else stat.S_ISREG(kind)):  # swapped after the stat
        os.close(fd)
        raise NotRegularError(part)
    return fd


def _is_folder(dir_fd: int, part: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _read_link(dir_fd: int, part: str) -> str:
    try:
        return os.readlink(part, dir_fd=dir_fd) or "."
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # no longer a link
            return ""
        raise


def _link_target(target: str, root: str, folders: list[int]) -> list[str]:
    """The components a link leads to; an absolute target restarts from the root (if it is under it)."""
    if target.startswith("/"):
        # compared as text: a root reached by another path (a link, a bind mount) counts as outside
        if target != root and not target.startswith(root.rstrip("/") + "/"):
            raise EscapesRootError(target)
        while len(folders) > 1:
            os.close(folders.pop())
        target = target[len(root):]
    return _components(target)
