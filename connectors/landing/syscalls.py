"""Disk system calls the os module lacks (Linux; the callers do without elsewhere)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
from typing import Any


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """libc, loaded once: by its usual name first (``find_library`` runs ``ldconfig -p``, a process, each call)."""
    for usual in (True, False):
        name = "libc.so.6" if usual else ctypes.util.find_library("c")
        if name:
            with contextlib.suppress(OSError):
                return ctypes.CDLL(name, use_errno=True)
    return None


def _libc_function(name: str, *argtypes: Any) -> Any:
    """A Linux system call wrapper from libc, or None where there is none (the callers then do without)."""
    try:
        function = getattr(_libc(), name)
    except AttributeError:
        return None
    function.argtypes = list(argtypes)
    return function


_sync_file_range = _libc_function("sync_file_range", ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
_SYNC_FILE_RANGE_WRITE = 2


_fallocate = _libc_function("fallocate", ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)
_FALLOC_FL_KEEP_SIZE = 1


def preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes of disk for a file about to be written.

    A full disk then fails at once, before any byte is downloaded, and the
    writes that follow skip the file system's per-page block reservation
    (about 40% of their CPU on ext4). Linux ``fallocate``; a no-op where the
    file system or platform cannot (never glibc's slow zero-filling emulation).

    Args:
        fd: The open file.
        size: Bytes to reserve from its start; the file's size is unchanged.

    Raises:
        OSError: ENOSPC when the space is not there.
    """
    if _fallocate is None or size <= 0:
        return
    # KEEP_SIZE: the file's size still counts only bytes written, so a short download stays visible
    if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, size) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code))


_syncfs = _libc_function("syncfs", ctypes.c_int)


def sync_filesystem(fd: int) -> None:
    """Flush everything written on the file system holding ``fd``: one journal commit for many files.

    Linux ``syncfs``; elsewhere ``os.sync``, which flushes every file system.

    Args:
        fd: Any open file or folder on the file system.

    Raises:
        OSError: The flush failed (an I/O error: what was written may not be on disk).
    """
    if _syncfs is None:
        os.sync()
    elif _syncfs(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a just-written range to disk without waiting.

    The final fsync then finds little left to do, so a large landing overlaps
    its disk writes with its copy instead of paying for them at the end
    (Linux ``sync_file_range``; a no-op elsewhere).

    Args:
        fd: The open file.
        offset: Where the range starts, in bytes.
        length: The range's length in bytes.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_syscall = _libc_function("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
_SYS_OPENAT2 = 437  # the same number on every Linux architecture (5.6+)
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_openat2_works = _syscall is not None and os.uname().sysname == "Linux"


def open_no_links(dir_fd: int, relative: str, flags: int) -> int | None:
    """``relative`` under ``dir_fd`` in one system call, failing with ELOOP on any link on the way.

    Linux ``openat2`` with RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH; None where the
    kernel (or a seccomp filter) does not offer it: the caller then walks the
    path one folder at a time.

    Args:
        dir_fd: The folder to start from.
        relative: The path below it.
        flags: ``os.open`` flags (close-on-exec is added).

    Returns:
        An open descriptor, or None when the system call is not available.

    Raises:
        OSError: as ``open`` (ELOOP for a link anywhere on the path).
    """
    global _openat2_works
    if not _openat2_works:
        return None
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_BENEATH)
    fd = _syscall(_SYS_OPENAT2, dir_fd, os.fsencode(relative), ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        return int(fd)
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG):
        _openat2_works = False
        return None
    raise OSError(code, os.strerror(code), relative)
