"""Landing a file in a workspace atomically, with its provenance record.

:func:`landing` writes a file: a temporary file beside the target, locked
while it is written, sha256 computed on the way, fsync, size (and checksum)
check, then, under a per-target lock, the provenance record staged, an atomic
rename and the record published. Every directory on the way is opened without
following symlinks (:mod:`connectors.landing.dirs`). On any error,
cancellation included, the temporary is removed; temporaries left by a killed
process are swept the next time a landing happens in their folder.

Example:
    >>> with landing("/tmp/ws", "data/a.csv", source_id="s", identifier="data/a.csv") as land:
    ...     land.write(b"x,y\\n1,2\\n")
    ...     landed = land.commit(provenance={"source_type": "local_file", ...})
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.errors import IntegrityError, NameCollisionError, SizeLimitError
from connectors.landing import lineage
from connectors.landing.dirs import create_locked_temporary, sweep_once, workspace_error
from connectors.landing.names import safe_relative_path, shown_path
from connectors.landing.root import open_workspace_folder

_byte_cap: contextvars.ContextVar[int | None] = contextvars.ContextVar("da_landing_byte_cap", default=None)


@contextlib.contextmanager
def landing_byte_cap(limit: int | None) -> Iterator[None]:
    """Cap every file landed inside this block at ``limit`` bytes (None: no cap), checked while it streams.

    A context variable, like :func:`connectors.landing.root.workspace_root`: it
    reaches the threads the landing uses. A write that would pass the cap raises
    :class:`SizeLimitError` before writing; the temporary is then removed, so
    nothing past the cap is ever on disk. Sequential writes (:meth:`Landing.write`)
    are checked; a caller that writes the descriptor itself checks
    :func:`current_byte_cap` first.

    Args:
        limit: The most bytes one landed file may have; None lifts the cap.

    Returns:
        A context manager; the cap holds inside its block.
    """
    token = _byte_cap.set(limit)
    try:
        yield
    finally:
        _byte_cap.reset(token)


def current_byte_cap() -> int | None:
    """The cap set by :func:`landing_byte_cap` here.

    Returns:
        The most bytes one landed file may have, or None when there is no cap.
    """
    return _byte_cap.get()


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
        self._cap = _byte_cap.get()
        self.committed: LandedFile | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the temporary and to the running sha256.

        Args:
            data: The next bytes of the file.

        Raises:
            SizeLimitError: The file would pass the cap of :func:`landing_byte_cap`; nothing is written.
        """
        view = memoryview(data)
        if self._cap is not None and self._written + view.nbytes > self._cap:
            raise SizeLimitError(f"{self.identifier!r} is over the limit of {self._cap} bytes; "
                                 "stopped while streaming, nothing kept", source_id=self.source_id)
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
                file landed (:mod:`connectors.landing.group_commit`).

        Returns:
            What landed: path, size, sha256 and the lineage record written beside it.

        Raises:
            IntegrityError: The size differs from ``expected_size``; nothing is renamed.
            NameCollisionError: The target is a folder, or holds another item's file.
        """
        if durable:
            os.fsync(self.fd)
        info = os.fstat(self.fd)
        size = info.st_size
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
                mtime_ns=info.st_mtime_ns,  # a sync's cheap test of whether the file changed since
            )
            # the record is written first and renamed last: a full disk fails before the file changes
            with lineage.staged_record(self.workspace, self.relative, record, durable=durable) as publish:
                os.rename(self.temp_name, self._final_name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
                try:
                    if durable:
                        os.fsync(self._dir_fd)
                finally:  # the new bytes are in place: their record goes with them, even if the sync failed
                    publish()
        lineage.remember_landed(self.workspace, self.relative, record)
        self.committed = LandedFile(self.path, self.relative, size, digest, record)
        return self.committed

    def _refuse_collision(self) -> None:
        try:
            info = os.stat(self._final_name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            raise NameCollisionError(f"{shown_path(self.path)} is a folder in the workspace; cannot land a file there")
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


@contextlib.contextmanager
def landing(
    workspace: str | os.PathLike[str], name: str, *, source_id: str, identifier: str | None = None
) -> Iterator[Landing]:
    """Open a :class:`Landing` for remote ``name``; remove it unless committed.

    Args:
        workspace: The folder the file lands in.
        name: The item's name at the source (hostile input: checked and made a relative path).
        source_id: The source the item comes from, written in its lineage record.
        identifier: The item's identifier for the record, when it differs from ``name``.

    Returns:
        A context manager yielding the open :class:`Landing`.

    Raises:
        UnsafeNameError: ``name`` cannot be landed safely (nothing is written).
        WorkspaceError: the local side failed (disk full, permissions); the
            temporary is removed.
    """
    relative = safe_relative_path(name)
    root = Path(workspace).absolute()
    parts = relative.split("/")
    try:
        dir_fd = open_workspace_folder(root, parts[:-1], create=True)  # from the trusted root, no link followed
    except FileNotFoundError as exc:  # the folder vanished while it was being created
        raise workspace_error(exc, root / relative) from exc
    try:
        sweep_once(dir_fd)
        land = Landing(root, relative, dir_fd, source_id=source_id, identifier=identifier or name)
    except OSError as exc:
        os.close(dir_fd)
        raise workspace_error(exc, root / relative) from exc
    try:
        yield land
    except OSError as exc:
        raise workspace_error(exc, root / relative) from exc
    finally:
        if land.committed is None:
            land._discard()
        land._close()
