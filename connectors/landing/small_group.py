"""Landing a group of small in-memory files in one tight loop: :func:`land_small_group`.

The steps and guarantees of :func:`connectors.landing.group_commit.land_group` (which
builds a :class:`connectors.landing.atomic.Landing` per file), with less work per file:

1. each file and its record are written to locked temporaries beside their places, in
   folders opened once for the group (from the trusted root, no link followed, swept once);
2. the file systems are synced: the data is on disk before any name points at it;
3. under the per-target locks, taken once for the group in :func:`lineage.target_locks`'s
   order, each target is checked (a folder there, another item's file, a folder at its
   record's place) and the file then its record are renamed into place;
4. the file systems are synced again before this returns: a file reported landed is
   durable with its record. A failed sync makes each file durable alone; one that cannot
   be fails and its record is withdrawn.

A crash at any point leaves at most temporaries (swept by the next landing in their folder)
and files that are whole under their final names. Each file's error is its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from connectors.errors import IntegrityError, NameCollisionError, SizeLimitError, WorkspaceError
from connectors.landing import lineage
from connectors.landing.atomic import LandedFile, current_byte_cap
from connectors.landing.dirs import create_locked_temporary, sweep_once, workspace_error
from connectors.landing.group_commit import GroupFile, _fsync_landed
from connectors.landing.names import (
    LINEAGE_DIR,
    RECORD_SUFFIX,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    safe_relative_path,
    shown_path,
)
from connectors.landing.root import open_workspace_folder
from connectors.landing.syscalls import sync_filesystem

__all__ = ["land_small_group"]


class _File:
    """One file of the group: where it goes, its open temporaries, its record, its outcome."""

    __slots__ = ("data_dir", "data_fd", "data_temp", "file", "final", "landed", "outcome", "record_dir",
                 "record_fd", "record_temp", "relative", "root")

    def __init__(self, file: GroupFile, root: Path, relative: str) -> None:
        self.file = file
        self.root = root
        self.relative = relative
        self.final = relative.rsplit("/", 1)[-1]
        self.data_dir = self.record_dir = self.data_fd = self.record_fd = -1
        self.data_temp = self.record_temp = ""
        self.landed: LandedFile | None = None
        self.outcome: Exception | None = None

    @property
    def pending(self) -> bool:
        return self.outcome is None


def land_small_group(files: list[GroupFile]) -> list[LandedFile | Exception]:
    """Land ``files`` as one group in this thread (blocking), as the module's docstring says.

    Args:
        files: The files (small: their bodies are held until this returns; a temporary
            and a record temporary stay open per file until the group is renamed).

    Returns:
        Per file, in order: what landed (durable, its record in place), or that file's own error.
    """
    group = _Group()
    try:
        return group.land(files)
    finally:
        group.close()


class _Group:
    def __init__(self) -> None:
        self.folders: dict[tuple[str, tuple[str, ...]], int] = {}
        self.roots: dict[str, Path] = {}
        self.files: list[_File] = []
        self._names = _temporary_names()

    def land(self, files: list[GroupFile]) -> list[LandedFile | Exception]:
        cap = current_byte_cap()
        for file in files:
            self._stage(file, cap)
        error = _sync([fd for f in self.files if f.pending for fd in (f.data_dir, f.record_dir)])
        if error is not None:
            return [self._failed(f, error) for f in self.files]
        for root in dict.fromkeys(f.root for f in self.files if f.pending):
            self._rename_all(root, [f for f in self.files if f.pending and f.root == root])
        renamed = [f for f in self.files if f.landed is not None]
        if _sync([fd for f in renamed for fd in (f.data_dir, f.record_dir)]) is not None:
            for landed in renamed:
                self._confirm(landed)
        return [f.landed if f.landed is not None else f.outcome or _unlanded(f) for f in self.files]

    def close(self) -> None:
        """Remove every temporary that was not renamed; close every descriptor."""
        for file in self.files:
            for fd, temp, folder in ((file.data_fd, file.data_temp, file.data_dir),
                                     (file.record_fd, file.record_temp, file.record_dir)):
                if fd >= 0:
                    _discard(temp, folder)
                    os.close(fd)
        for fd in self.folders.values():
            os.close(fd)
        self.folders.clear()

    # --- 1. staging ------------------------------------------------------------------------

    def _stage(self, file: GroupFile, cap: int | None) -> None:
        try:
            relative = safe_relative_path(file.name)
        except Exception as exc:  # an unsafe name fails alone, before anything is written
            self.files.append(_error_only(file, exc))
            return
        staged = _File(file, self._root(file.workspace), relative)
        self.files.append(staged)
        try:
            self._write(staged, cap)
        except OSError as exc:
            staged.outcome = workspace_error(exc, staged.root / relative)
            self._release(staged)
        except Exception as exc:  # this file's own error (its size, its record); the others go on
            staged.outcome = exc
            self._release(staged)

    def _write(self, staged: _File, cap: int | None) -> None:
        file, body = staged.file, staged.file.body
        if cap is not None and len(body) > cap:
            raise SizeLimitError(f"{file.name!r} is over the limit of {cap} bytes; nothing kept",
                                 source_id=file.source_id)
        *folders, _ = staged.relative.split("/")
        staged.data_dir = self._folder(staged.root, folders)
        staged.data_temp, staged.data_fd = self._temporary(staged.data_dir)
        _write_all(staged.data_fd, body)
        info = os.fstat(staged.data_fd)
        if info.st_size != len(body):
            raise IntegrityError(f"{file.name!r}: wrote {info.st_size} bytes of {len(body)}", source_id=file.source_id)
        local_path = f"{staged.root}/{staged.relative}" if str(staged.root) != "/" else f"/{staged.relative}"
        record = lineage.build_record(file.provenance, source_id=file.source_id, identifier=file.name,
                                      local_path=local_path, size=len(body),
                                      sha256=hashlib.sha256(body).hexdigest(), mtime_ns=info.st_mtime_ns)
        staged.record_dir = self._folder(staged.root, [LINEAGE_DIR, *folders])
        staged.record_temp, staged.record_fd = self._temporary(staged.record_dir)
        # one line: without indent, json uses its C encoder
        _write_all(staged.record_fd, json.dumps(record, sort_keys=True, default=str).encode() + b"\n")
        staged.landed = LandedFile(Path(local_path), staged.relative, len(body), record["sha256"], record)

    def _temporary(self, folder: int) -> tuple[str, int]:
        """A new temporary in ``folder``, exclusively locked by us (as ``create_locked_temporary``'s)."""
        for _ in range(3):
            try:
                return create_locked_temporary(folder, next(self._names))
            except FileExistsError:  # a name taken (planted, or left by a crash): a fresh random start
                self._names = _temporary_names()
        return create_locked_temporary(folder)

    def _root(self, workspace: str) -> Path:
        root = self.roots.get(workspace)
        if root is None:
            root = self.roots[workspace] = Path(workspace).absolute()
        return root

    def _folder(self, root: Path, parts: list[str]) -> int:
        """The folder ``parts`` under ``root``: opened (and swept) once for the group, no link followed."""
        key = (str(root), tuple(parts))
        fd = self.folders.get(key)
        if fd is None:
            fd = open_workspace_folder(root, parts, create=True)
            self.folders[key] = fd
            sweep_once(fd)
        return fd

    # --- 3. renaming -------------------------------------------------------------------------

    def _rename_all(self, root: Path, files: list[_File]) -> None:
        landed = {id(f): f.landed for f in files}
        for file in files:
            file.landed = None  # landed only once renamed
        try:
            with lineage.target_locks(root, [f.relative for f in files]):
                for file in files:
                    self._rename(file, landed[id(file)])
        except Exception as exc:  # the locks themselves: every file not yet renamed fails with it
            for file in files:
                if file.landed is None and file.outcome is None:
                    file.outcome = _as_local(exc, file)

    def _rename(self, file: _File, landed: LandedFile | None) -> None:
        try:
            self._refuse_collision(file)
            record_name = file.final + RECORD_SUFFIX
            lineage._refuse_folder_at_record(file.record_dir, record_name, file.root, file.relative)
            os.rename(file.data_temp, file.final, src_dir_fd=file.data_dir, dst_dir_fd=file.data_dir)
            file.data_temp = ""
            # the new bytes are in place: their record goes with them
            os.rename(file.record_temp, record_name, src_dir_fd=file.record_dir, dst_dir_fd=file.record_dir)
            file.record_temp = ""
        except Exception as exc:  # this file's own error; the others go on
            file.outcome = _as_local(exc, file)
            return
        assert landed is not None
        file.landed = landed
        lineage.remember_landed(file.root, file.relative, landed.record)

    def _refuse_collision(self, file: _File) -> None:
        try:
            info = os.stat(file.final, dir_fd=file.data_dir, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            raise NameCollisionError(
                f"{shown_path(file.root / file.relative)} is a folder in the workspace; cannot land a file there")
        existing = lineage.read_record(file.root, file.relative)
        if existing and (existing.get("source_id"), existing.get("identifier")) != (
                file.file.source_id, file.file.name):
            raise NameCollisionError(
                f"{file.file.name!r} would overwrite {file.relative!r}, which holds "
                f"{existing.get('identifier')!r} of source {existing.get('source_id')!r}",
                source_id=file.file.source_id,
            )

    # --- 4. after a failed sync --------------------------------------------------------------

    def _confirm(self, file: _File) -> None:
        """Make one renamed file durable alone; one that cannot be fails and its record goes."""
        try:
            _fsync_landed(str(file.root), file.relative, file.data_fd)
        except Exception as exc:  # this file's own error; the others go on
            file.landed = None
            file.outcome = _as_local(exc, file)
            with contextlib.suppress(OSError):
                os.unlink(file.final + RECORD_SUFFIX, dir_fd=file.record_dir)

    def _failed(self, file: _File, error: OSError) -> Exception:
        if file.outcome is None:
            file.landed = None
            file.outcome = _as_local(error, file)
        return file.outcome

    def _release(self, file: _File) -> None:
        """A file that failed while staged: its temporaries go now."""
        file.landed = None
        for fd, temp, folder in ((file.data_fd, file.data_temp, file.data_dir),
                                 (file.record_fd, file.record_temp, file.record_dir)):
            if fd >= 0:
                _discard(temp, folder)
                os.close(fd)
        file.data_fd = file.record_fd = -1


def _temporary_names() -> Iterator[str]:
    """Temporary names from one random 64-bit start, counting up: one random draw per group, not per file."""
    start = secrets.randbits(64)
    for step in itertools.count():
        yield f"{TEMP_PREFIX}{(start + step) % 2**64:016x}{TEMP_SUFFIX}"


def _error_only(file: GroupFile, exc: Exception) -> _File:
    failed = _File(file, Path(), "")
    failed.outcome = exc
    return failed


def _discard(temp: str, folder: int) -> None:
    if temp:  # "": renamed into place
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sync(folders: list[int]) -> OSError | None:
    """Sync each file system the folders are on (once each: the records' may be another); the error, if any."""
    try:
        for fd in {os.fstat(fd).st_dev: fd for fd in dict.fromkeys(folders)}.values():
            sync_filesystem(fd)
    except OSError as exc:
        return exc
    return None


def _as_local(exc: Exception, file: _File) -> Exception:
    return workspace_error(exc, file.root / file.relative) if isinstance(exc, OSError) else exc


def _unlanded(file: _File) -> Exception:
    return WorkspaceError(f"{shown_path(file.root / file.relative)}: not landed")
