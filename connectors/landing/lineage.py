"""Provenance records: where every landed file came from.

A file landed at ``<workspace>/<relative>`` has its record at
``<workspace>/.lineage/<relative>.json``, written atomically together with the
file (under one per-target lock, so two runs landing the same item leave one
consistent file and record). Keys, at least: ``source_id``, ``source_type``,
``identifier``, ``source_uri`` (never a secret), ``source_version``, ``size``,
``sha256``, ``fetched_at`` (ISO-8601 UTC), ``run_id`` (the Dagster run, null
outside Dagster), ``local_path``; tables add ``row_count``, ``columns`` and
``sql``.

Example:
    >>> record = read_provenance("/tmp/ws/data/a.csv")
    >>> record["sha256"], record["source_uri"]
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from connectors.errors import DataSourceError, NameCollisionError, NotFoundError, UnsafeNameError
from connectors.landing.dirs import (
    create_locked_temporary,
    open_regular_file,
    read_bounded,
    read_regular_file,
    sweep_once,
    workspace_error,
)
from connectors.landing.names import LINEAGE_DIR, LOCK_DIR, RECORD_SUFFIX, shown_path
from connectors.landing.root import forget_held_folders, open_workspace_folder, trusted_split
from connectors.landing.syscalls import open_no_links

_LOCK_DIR = LOCK_DIR
_RECORD_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY  # a FIFO planted there must not block
REQUIRED_KEYS = (
    "source_id",
    "source_type",
    "identifier",
    "source_uri",
    "source_version",
    "size",
    "sha256",
    "fetched_at",
    "run_id",
    "local_path",
)

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("da_run_id", default=None)


@contextlib.contextmanager
def run_context(run_id: str | None) -> Iterator[None]:
    """Records written inside this block carry ``run_id`` (the Dagster run).

    Args:
        run_id: the run's id, or None outside Dagster.

    Returns:
        A context manager; the previous run id is restored on exit.
    """
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


_landed: contextvars.ContextVar[dict[tuple[str, str], dict[str, Any]] | None] = contextvars.ContextVar(
    "da_landed_records", default=None)


@contextlib.contextmanager
def remembering_landed() -> Iterator[Mapping[tuple[str, str], Mapping[str, Any]]]:
    """Inside this block, each record the landing writes is also kept, by (absolute workspace, relative path).

    The framework checks every file a connector says it landed, its record included; for the
    files our own landing wrote in the block it takes the record from here instead of reading
    back what it has just written (:func:`connectors.checked_fetch.fetch_many_checked`).

    Returns:
        A context manager yielding the records kept (filled as files land, in any thread of the block).
    """
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    token = _landed.set(kept)
    try:
        yield kept
    finally:
        _landed.reset(token)


def remember_landed(workspace: Path, relative: str, record: dict[str, Any]) -> None:
    """Keep ``record``, just published for ``<workspace>/<relative>``, for :func:`remembering_landed`.

    Args:
        workspace: The workspace the file landed in.
        relative: The file's path inside it.
        record: Its lineage record, as published (kept only inside a :func:`remembering_landed` block).
    """
    kept = _landed.get()
    if kept is not None:
        kept[(str(workspace), relative)] = record


def current_run_id() -> str | None:
    """The run id set by :func:`run_context`.

    Returns:
        The run id, or None outside a :func:`run_context` block.
    """
    return _run_id.get()


def utc_now_iso() -> str:
    """Now, as ISO-8601 UTC with a ``Z``.

    Returns:
        A time such as ``2026-01-31T12:00:00.000000Z``.
    """
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    second = _second  # read once: another thread may replace it meanwhile
    if second[0] != seconds:  # a whole second formatted once: a record per file asks many times a second
        second = _second = (seconds, datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{second[1]}.{micros:06d}Z"


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def build_record(provenance: Mapping[str, Any], **facts: Any) -> dict[str, Any]:
    """A complete record: the connector's ``provenance`` plus the landing's facts.

    Args:
        provenance: what the connector says of the item (``source_id``, ``identifier``...).
        **facts: what the landing measured (``size``, ``sha256``, ``local_path``...).

    Returns:
        The record, with ``fetched_at`` and ``run_id`` added.

    Raises:
        DataSourceError: a required key is missing.
    """
    record: dict[str, Any] = {
        "source_uri": None,
        "source_version": None,
        **provenance,
        **facts,
        "fetched_at": utc_now_iso(),
        "run_id": current_run_id(),
    }
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise DataSourceError(f"provenance record lacks {missing}")
    return record


def record_path(workspace: str | os.PathLike[str], relative: str) -> Path:
    """Where the record of ``<workspace>/<relative>`` lives.

    Args:
        workspace: the folder the file was landed in.
        relative: the landed file's path inside it.

    Returns:
        ``<workspace>/.lineage/<relative>.json``, absolute.
    """
    return Path(workspace).absolute() / LINEAGE_DIR / f"{relative}.json"


def write_provenance(workspace: Path, relative: str, record: Mapping[str, Any], *, durable: bool = True) -> Path:
    """Write ``record`` for ``relative`` atomically (temp, fsync unless not ``durable``, rename).

    Args:
        workspace: the folder the file was landed in.
        relative: the landed file's path inside it.
        record: the record to write.
        durable: fsync before the rename.

    Returns:
        The record's path.
    """
    with staged_record(workspace, relative, record, durable=durable) as publish:
        return publish()


@contextlib.contextmanager
def staged_record(
    workspace: Path, relative: str, record: Mapping[str, Any], *, durable: bool = True
) -> Iterator[Callable[[], Path]]:
    """Write ``record`` beside its place and yield the function that puts it there (a rename).

    Everything that needs disk space happens before the yield, so a caller
    renames its data file in between and then publishes: a full disk fails
    the landing before the file changes, never leaving a file without its
    record. Unpublished, the temporary is removed.

    Args:
        workspace: the folder the file is landed in.
        relative: the landed file's path inside it.
        record: the record to write.
        durable: fsync the record before yielding.

    Returns:
        A context manager yielding ``publish()``, which renames the record into place and returns its path.

    Raises:
        UnsafeNameError: a link or a file on the way to the record's folder.
        NameCollisionError: the record's place is a folder of other records.
        OSError: the record could not be written (a full disk, permissions).
    """
    parts = f"{LINEAGE_DIR}/{relative}{RECORD_SUFFIX}".split("/")
    dir_fd = open_workspace_folder(workspace, parts[:-1], create=True)
    published = False
    try:
        _refuse_folder_at_record(dir_fd, parts[-1], workspace, relative)
        sweep_once(dir_fd)  # record temporaries of a killed writer go too
        temp, fd = create_locked_temporary(dir_fd)  # locked until we are done: a sweeper leaves it alone
    except BaseException:
        os.close(dir_fd)
        raise

    def publish() -> Path:
        nonlocal published
        os.rename(temp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        published = True
        return record_path(workspace, relative)

    try:
        # one line: without indent, json uses its C encoder (the indented one is pure Python: ~10% of the CPU)
        data = memoryview(json.dumps(record, sort_keys=True, default=str).encode() + b"\n")
        while data:
            data = data[os.write(fd, data) :]
        if durable:
            os.fsync(fd)
        yield publish
    finally:
        if not published:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
        os.close(fd)
        os.close(dir_fd)


def _refuse_folder_at_record(dir_fd: int, name: str, workspace: Path, relative: str) -> None:
    """Refuse before the data moves when the record's place is a folder (the records of ``<name>/...``).

    ``d`` and ``d.json/e`` can both be data, but ``.lineage/d.json`` cannot be
    both ``d``'s record and ``d.json/e``'s record folder; both landings hold
    the same lock (:func:`target_lock`), so the check stands until the rename.
    An empty folder (its records are gone) is removed instead.
    """
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        return  # a file, a link or anything else: the rename replaces it, never follows it
    try:
        os.rmdir(name, dir_fd=dir_fd)
        forget_held_folders()  # a group may hold it open: records must not go into a removed folder
    except OSError:
        raise NameCollisionError(
            f"{relative!r} cannot have its record in {shown_path(record_path(workspace, relative))}: "
            f"that is the record folder of the files under {relative + RECORD_SUFFIX!r}"
        ) from None


def read_record(workspace: str | os.PathLike[str], relative: str) -> dict[str, Any] | None:
    """The record of ``<workspace>/<relative>``, or None when there is none.

    Read without following a link (from the trusted root down) and without
    blocking; a link, a folder, a FIFO or anything but a JSON object in a
    regular file is no record.

    Args:
        workspace: the folder the file was landed in.
        relative: the landed file's path inside it.

    Returns:
        The record, or None.

    Raises:
        WorkspaceError: The record's file could not be read (permissions, I/O).
    """
    parts = f"{LINEAGE_DIR}/{relative}{RECORD_SUFFIX}".split("/")
    fast = _read_record_at_once(workspace, parts)
    if fast is not False:
        return _parsed(fast)
    try:
        dir_fd = open_workspace_folder(workspace, parts[:-1], create=False)
    except (FileNotFoundError, UnsafeNameError):  # missing, a link or a file on the way
        return None
    try:
        data = read_regular_file(dir_fd, parts[-1])
    except OSError as exc:
        raise workspace_error(exc, record_path(workspace, relative)) from exc
    finally:
        os.close(dir_fd)
    return _parsed(data)


def _read_record_at_once(workspace: str | os.PathLike[str], parts: list[str]) -> bytes | None | Literal[False]:
    """The record's bytes opened in one ``openat2`` from the trusted root (None: no record there).

    A sync reads a record per item: one system call instead of one per folder.
    False where ``openat2`` is missing (walk instead).
    """
    root, prefix = trusted_split(workspace)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        fd = open_no_links(root_fd, "/".join(prefix + parts), _RECORD_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.EXDEV):
            return None  # missing, a file or a link on the way, a socket
        return False
    finally:
        os.close(root_fd)
    if fd is None:
        return False
    try:
        return read_bounded(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _parsed(data: bytes | None) -> dict[str, Any] | None:
    try:
        record = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_provenance(path: str | os.PathLike[str], workspace: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The provenance record of the landed file at ``path``.

    Args:
        path: a file landed by a fetch.
        workspace: the folder it was landed in; by default the nearest folder above
            ``path`` that holds a matching record.

    Returns:
        The record: ``source_id``, ``identifier``, ``source_uri``, ``source_version``,
        ``size``, ``sha256``, ``fetched_at``, ``run_id``, ``local_path`` and, for tables,
        ``row_count``, ``columns`` and ``sql``.

    Raises:
        NotFoundError: no record exists for that file.
    """
    file = Path(path).absolute()
    candidates = [Path(workspace).absolute()] if workspace else list(file.parents)
    for root in candidates:
        if not file.is_relative_to(root):
            continue
        record = read_record(root, file.relative_to(root).as_posix())
        if record is not None:
            return record
    raise NotFoundError(f"no provenance record for {str(file)!r}")


def find_provenance(
    workspace: str | os.PathLike[str], *, source_id: str | None = None, identifier: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every record under ``workspace``, optionally only those of a source or an item.

    The record tree is walked without following links, and only regular files are read.

    Args:
        workspace: the folder files were landed in.
        source_id: only records of this source.
        identifier: only records of this item.

    Returns:
        The records, in the order of their landed paths.
    """
    records = []
    for relative, data in _record_files(workspace):
        record = _parsed(data)
        if record is None:
            continue
        if source_id is not None and record.get("source_id") != source_id:
            continue
        if identifier is not None and record.get("identifier") != identifier:
            continue
        records.append((relative, record))
    for _, record in sorted(records, key=lambda pair: pair[0]):
        yield record


def _record_files(workspace: str | os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    try:
        top = open_workspace_folder(workspace, [LINEAGE_DIR], create=False)
    except (FileNotFoundError, UnsafeNameError):
        return
    stack = [(top, "")]
    try:
        while stack:
            fd, prefix = stack.pop()
            try:
                for entry in list(os.scandir(fd)):
                    yield from _record_entry(fd, entry, prefix, stack)
            finally:
                os.close(fd)
    except OSError as exc:
        raise workspace_error(exc, Path(workspace) / LINEAGE_DIR) from exc
    finally:
        for fd, _ in stack:
            os.close(fd)


def _record_entry(
    dir_fd: int, entry: os.DirEntry[str], prefix: str, stack: list[tuple[int, str]]
) -> Iterator[tuple[str, bytes]]:
    if not prefix and entry.name == _LOCK_DIR:
        return
    if entry.is_dir(follow_symlinks=False):
        with contextlib.suppress(OSError):
            stack.append((os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=dir_fd), f"{prefix}{entry.name}/"))
        return
    if entry.name.endswith(RECORD_SUFFIX):  # temporaries end in .part
        data = read_regular_file(dir_fd, entry.name)
        if data is not None:
            yield f"{prefix}{entry.name}", data


@contextlib.contextmanager
def target_lock(workspace: Path, relative: str) -> Iterator[None]:
    """An exclusive lock on one landing target, across processes on this host.

    Targets share 256 lock files by hash: the lock is held only for a rename
    and a small write, so rare sharing costs nothing, and a workspace of a
    million files keeps 256 lock files rather than a million. Landing
    ``d.json/e`` also takes the lock of ``d``: ``.lineage/d.json`` is the
    record of one and a record folder of the other (see
    :func:`_refuse_folder_at_record`). Several locks are taken in one order.

    Args:
        workspace: the folder the file is landed in.
        relative: the landing target's path inside it.

    Returns:
        A context manager holding the lock(s) inside its block.
    """
    dir_fd = open_workspace_folder(workspace, [LINEAGE_DIR, _LOCK_DIR], create=True)
    fds: list[int] = []
    try:
        for name in sorted({_lock_name(key) for key in _lock_keys(relative)}):
            fds.append(_open_lock_file(dir_fd, name, workspace))
            fcntl.flock(fds[-1], fcntl.LOCK_EX)
        yield
    finally:
        os.close(dir_fd)
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def target_locks(workspace: Path, relatives: list[str]) -> Iterator[None]:
    """The locks of :func:`target_lock` for many targets at once, each lock file opened once.

    Taken in the same (sorted) order as :func:`target_lock` takes its own, so a group holding
    many and a single landing holding one or two never wait for each other in a circle.

    Args:
        workspace: the folder the files are landed in.
        relatives: the landing targets' paths inside it.

    Returns:
        A context manager holding every lock inside its block.
    """
    names = sorted({_lock_name(key) for relative in relatives for key in _lock_keys(relative)})
    dir_fd = open_workspace_folder(workspace, [LINEAGE_DIR, _LOCK_DIR], create=True)
    fds: list[int] = []
    try:
        for name in names:
            fds.append(_open_lock_file(dir_fd, name, workspace))
            fcntl.flock(fds[-1], fcntl.LOCK_EX)
        yield
    finally:
        os.close(dir_fd)
        for fd in fds:
            os.close(fd)


def _lock_keys(relative: str) -> list[str]:
    """``relative``, and ``p`` for every folder ``p.json`` on its way."""
    parts = relative.split("/")
    folders = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    return [relative] + [f[: -len(RECORD_SUFFIX)] for f in folders if f.endswith(RECORD_SUFFIX)]


def _lock_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:2]


def _open_lock_file(dir_fd: int, name: str, workspace: Path) -> int:
    try:
        fd = open_regular_file(dir_fd, name, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise workspace_error(exc, Path(workspace) / LINEAGE_DIR / _LOCK_DIR / name) from exc
    if fd is None:
        raise UnsafeNameError(
            f"{shown_path(Path(workspace) / LINEAGE_DIR / _LOCK_DIR / name)} is not a regular file; "
            "a lock file must be one"
        )
    return fd
