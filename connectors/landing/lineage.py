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
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.errors import DataSourceError, NotFoundError
from connectors.landing.dirs import create_locked_temporary, open_directory, sweep_once
from connectors.landing.names import LINEAGE_DIR

_LOCK_DIR = ".locks"
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
    """Records written inside this block carry ``run_id`` (the Dagster run)."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


def current_run_id() -> str | None:
    """The run id set by :func:`run_context`, or None."""
    return _run_id.get()


def utc_now_iso() -> str:
    """Now, as ISO-8601 UTC with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_record(provenance: Mapping[str, Any], **facts: Any) -> dict[str, Any]:
    """A complete record: the connector's ``provenance`` plus the landing's facts."""
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
    """Where the record of ``<workspace>/<relative>`` lives."""
    return Path(workspace).absolute() / LINEAGE_DIR / f"{relative}.json"


def write_provenance(workspace: Path, relative: str, record: Mapping[str, Any], *, durable: bool = True) -> Path:
    """Write ``record`` for ``relative`` atomically (temp, fsync unless not ``durable``, rename)."""
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
    """
    parts = f"{LINEAGE_DIR}/{relative}.json".split("/")
    dir_fd = open_directory(workspace, parts[:-1], create=True)
    published = False
    try:
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
        data = memoryview(json.dumps(record, indent=2, sort_keys=True, default=str).encode())
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


def read_record(workspace: str | os.PathLike[str], relative: str) -> dict[str, Any] | None:
    """The record of ``<workspace>/<relative>``, or None when there is none."""
    try:
        return json.loads(record_path(workspace, relative).read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_provenance(path: str | os.PathLike[str], workspace: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The provenance record of the landed file at ``path``.

    ``workspace`` defaults to the nearest folder above ``path`` that holds a
    matching record.

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
    """Every record under ``workspace``, optionally only those of a source or an item."""
    base = Path(workspace).absolute() / LINEAGE_DIR
    for path in sorted(base.rglob("*.json")):
        if path.name.startswith(".") or _LOCK_DIR in path.relative_to(base).parts[:1]:
            continue
        record = json.loads(path.read_text())
        if source_id is not None and record.get("source_id") != source_id:
            continue
        if identifier is not None and record.get("identifier") != identifier:
            continue
        yield record


@contextlib.contextmanager
def target_lock(workspace: Path, relative: str) -> Iterator[None]:
    """An exclusive lock on one landing target, across processes on this host.

    Targets share 256 lock files by hash: the lock is held only for a rename
    and a small write, so rare sharing costs nothing, and a workspace of a
    million files keeps 256 lock files rather than a million.
    """
    dir_fd = open_directory(workspace, [LINEAGE_DIR, _LOCK_DIR], create=True)
    name = hashlib.sha256(relative.encode()).hexdigest()[:2]
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
