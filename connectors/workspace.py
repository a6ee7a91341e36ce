"""Landing files in a workspace safely.

Two jobs:

* :func:`safe_relative_path` maps a remote name to a path under the workspace.
  The mapping is the identity on the names it accepts and refuses the rest
  with :class:`UnsafeNameError`, so it is deterministic, never escapes and
  never maps two names to one path. Refused: empty names, absolute paths,
  drive letters, backslashes, NUL and control characters, empty, ``.`` and
  ``..`` segments, trailing dots or spaces, components over 255 bytes, names
  ending in ``/`` (folders), and the reserved ``.lineage/`` tree and
  ``.~da-`` temporaries. Case- or normalization-insensitive file systems can
  still fold two names into one file; the landing notices it (the lineage
  record of the existing file names another item) and raises
  :class:`NameCollisionError`.

* :func:`landing` writes a file: a temporary file beside the target, locked
  while it is written, sha256 computed on the way, fsync, size (and checksum)
  check, then, under a per-target lock, an atomic rename and the provenance
  record. Every directory on the way is opened without following symlinks, so
  a symlink planted in the workspace is never followed. On any error,
  cancellation included, the temporary is removed; temporaries left by a killed
  process are swept the next time a landing happens in their folder.

Example:
    >>> with landing("/tmp/ws", "data/a.csv", source_id="s", identifier="data/a.csv") as land:
    ...     land.write(b"x,y\\n1,2\\n")
    ...     landed = land.commit(provenance={"source_type": "local_file", ...})
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors import lineage
from connectors.errors import (
    IntegrityError,
    NameCollisionError,
    UnsafeNameError,
    WorkspaceError,
)

TEMP_PREFIX = ".~da-"
TEMP_SUFFIX = ".part"
MAX_COMPONENT_BYTES = 255
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def safe_relative_path(name: str) -> str:
    """The workspace-relative POSIX path for remote ``name``.

    Raises:
        UnsafeNameError: the name cannot be landed safely; the message says why.
    """
    reason = _unsafe_reason(name)
    if reason:
        raise UnsafeNameError(f"unsafe name {_shown(name)}: {reason}")
    return name


def _unsafe_reason(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "empty or not a string"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a NUL or control character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "is an absolute path"
    if name.endswith("/"):
        return "names a folder, not a file"
    parts = name.split("/")
    for part in parts:
        reason = _unsafe_component(part)
        if reason:
            return reason
    if parts[0] == lineage.LINEAGE_DIR:
        return f"{lineage.LINEAGE_DIR}/ is reserved for provenance records"
    if parts[-1].startswith(TEMP_PREFIX):
        return f"names starting with {TEMP_PREFIX} are reserved for temporary files"
    return None


def _unsafe_component(part: str) -> str | None:
    if part in ("", ".", ".."):
        return "has an empty, '.' or '..' segment"
    if part[-1] in ". ":
        return "has a segment ending in a dot or a space"
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > MAX_COMPONENT_BYTES:
        return f"has a segment over {MAX_COMPONENT_BYTES} bytes"
    return None


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 120 else text[:117] + "..."


def target_path(workspace: str | os.PathLike[str], name: str) -> Path:
    """Absolute path where remote ``name`` lands under ``workspace``."""
    return Path(workspace).absolute() / safe_relative_path(name)


# --- directories without following symlinks --------------------------------


def open_directory(root: Path, relative_parts: list[str], *, create: bool) -> int:
    """A descriptor of ``root/relative_parts``, refusing symlinks on the way.

    ``root`` itself is trusted (the user chose it); every folder under it is
    opened with O_NOFOLLOW and created when missing and ``create`` is set.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        fd = os.open(root, flags)
    except FileNotFoundError:
        if not create:
            raise
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, flags)
    for index, part in enumerate(relative_parts):
        # closes the parent's descriptor whether or not the child opens
        fd = _open_child_directory(fd, part, create, "/".join(relative_parts[: index + 1]))
    return fd


def _open_child_directory(parent_fd: int, part: str, create: bool, shown: str) -> int:
    try:
        try:  # open first: the folder usually exists, and a failed mkdir costs as much as an open
            child = os.open(part, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=parent_fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise _directory_error(exc, shown) from exc
    finally:
        os.close(parent_fd)
    return child


def _directory_error(exc: OSError, shown: str) -> Exception:
    if exc.errno == errno.ELOOP:
        return UnsafeNameError(f"a symlink is in the way at {shown!r} in the workspace; not followed")
    if exc.errno == errno.ENOTDIR:
        return NameCollisionError(f"{shown!r} is a file in the workspace, but a folder is needed there")
    return workspace_error(exc, shown)


def workspace_error(exc: OSError, shown: str) -> WorkspaceError:
    """The WorkspaceError for a local failure while landing ``shown`` (disk full is said plainly)."""
    if exc.errno == errno.ENOSPC:
        return WorkspaceError(f"disk full while writing {shown!r} into the workspace")
    reason = exc.strerror or type(exc).__name__
    return WorkspaceError(f"cannot write {shown!r} into the workspace: {reason}")


# --- disk system calls the os module lacks (Linux; the callers do without elsewhere) ---


def _libc_function(name: str, *argtypes: Any) -> Any:
    """A Linux system call wrapper from libc, or None where there is none (the callers then do without)."""
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True), name)
    except (OSError, AttributeError):
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
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


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


def _remove_if_abandoned(dir_fd: int, name: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
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
    info = os.fstat(dir_fd)
    key = (info.st_dev, info.st_ino)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    sweep_stale_temporaries(dir_fd)


# --- landing ----------------------------------------------------------------


@dataclass(frozen=True)
class LandedFile:
    """A file that landed: where, how big, its sha256, and its provenance record."""

    path: Path
    relative: str
    size: int
    sha256: str
    record: dict[str, Any]


class Landing:
    """A temporary file that becomes ``relative`` under the workspace on :meth:`commit`.

    Write sequentially with :meth:`write` (hashed on the way), or write the
    descriptor :attr:`fd` directly (for example with ``os.pwrite`` from
    several threads, or ``os.copy_file_range``) and pass the sha256 to
    :meth:`commit`.
    """

    def __init__(
        self, workspace: Path, relative: str, dir_fd: int, *, source_id: str, identifier: str
    ) -> None:
        self.workspace = workspace
        self.relative = relative
        self.path = workspace / relative
        self.source_id = source_id
        self.identifier = identifier
        self._dir_fd = dir_fd
        self._final_name = relative.rsplit("/", 1)[-1]
        self.temp_name, self.fd = create_locked_temporary(dir_fd)
        self._hash = hashlib.sha256()
        self._written = 0
        self.committed: LandedFile | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the temporary and to the running sha256."""
        view = memoryview(data)
        self._hash.update(view)
        while view:
            done = os.write(self.fd, view)
            view = view[done:]
        self._written += len(data)

    @property
    def bytes_written(self) -> int:
        """Bytes appended with :meth:`write` so far."""
        return self._written

    def commit(
        self,
        *,
        provenance: Mapping[str, Any],
        expected_size: int | None = None,
        sha256: str | None = None,
        durable: bool = True,
    ) -> LandedFile:
        """Check, fsync and rename the temporary into place, then record its provenance.

        Args:
            provenance: the record's source facts (``source_type``, ``source_uri``,
                ``source_version``, and any extra keys such as ``etag``).
            expected_size: the size the source announced; a mismatch raises
                :class:`IntegrityError`.
            sha256: the digest, when the data was not written with :meth:`write`.
            durable: False skips every fsync; only for a caller that has already synced the
                file system since the data was written, and syncs it again before saying the
                file landed (:mod:`connectors.group_commit`).
        """
        if durable:
            os.fsync(self.fd)
        size = os.fstat(self.fd).st_size
        if expected_size is not None and size != expected_size:
            raise IntegrityError(
                f"{self.identifier!r}: received {size} bytes, the source announced {expected_size}",
                source_id=self.source_id,
            )
        digest = sha256 or self._hash.hexdigest()
        with lineage.target_lock(self.workspace, self.relative):
            self._refuse_collision()
            record = lineage.build_record(
                provenance,
                source_id=self.source_id,
                identifier=self.identifier,
                local_path=str(self.path),
                size=size,
                sha256=digest,
            )
            # the record is written first and renamed last: a full disk fails before the file changes
            with lineage.staged_record(self.workspace, self.relative, record, durable=durable) as publish:
                os.rename(self.temp_name, self._final_name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
                if durable:
                    os.fsync(self._dir_fd)
                publish()
        self.committed = LandedFile(self.path, self.relative, size, digest, record)
        return self.committed

    def _refuse_collision(self) -> None:
        try:
            info = os.stat(self._final_name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            raise NameCollisionError(f"{self.relative!r} is a folder in the workspace; cannot land a file there")
        existing = lineage.read_record(self.workspace, self.relative)
        if existing and (existing.get("source_id"), existing.get("identifier")) != (
            self.source_id,
            self.identifier,
        ):
            raise NameCollisionError(
                f"{self.identifier!r} would overwrite {self.relative!r}, which holds "
                f"{existing.get('identifier')!r} of source {existing.get('source_id')!r}",
                source_id=self.source_id,
            )

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.temp_name, dir_fd=self._dir_fd)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.close(self._dir_fd)


def create_locked_temporary(dir_fd: int) -> tuple[str, int]:
    """A new temporary in the folder, exclusively locked by us.

    A sweeper can lock and remove a temporary in the instant between its
    creation and our lock; we notice (the name no longer leads to our file)
    and make another.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
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
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the run id of lineage records lives in a context variable
    future = loop.run_in_executor(executor, context.run, function)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


@contextlib.contextmanager
def landing(
    workspace: str | os.PathLike[str], name: str, *, source_id: str, identifier: str | None = None
) -> Iterator[Landing]:
    """Open a :class:`Landing` for remote ``name``; remove it unless committed.

    Raises:
        UnsafeNameError: ``name`` cannot be landed safely (nothing is written).
        WorkspaceError: the local side failed (disk full, permissions); the
            temporary is removed.
    """
    relative = safe_relative_path(name)
    root = Path(workspace).absolute()
    parts = relative.split("/")
    try:
        dir_fd = open_directory(root, parts[:-1], create=True)
    except OSError as exc:
        raise workspace_error(exc, relative) from exc
    try:
        sweep_once(dir_fd)
        land = Landing(root, relative, dir_fd, source_id=source_id, identifier=identifier or name)
    except OSError as exc:
        os.close(dir_fd)
        raise workspace_error(exc, relative) from exc
    try:
        yield land
    except OSError as exc:
        raise workspace_error(exc, relative) from exc
    finally:
        if land.committed is None:
            land._discard()
        land._close()
