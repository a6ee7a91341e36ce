"""Landing many small files with one file-system sync per group instead of three fsyncs per file.

Why it works this way: ``docs/design/landing.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from connectors.errors import WorkspaceError
from connectors.landing.atomic import LandedFile, Landing, landing
from connectors.landing.dirs import finish_in_thread, open_directory, workspace_error
from connectors.landing.lineage import record_path
from connectors.landing.names import LINEAGE_DIR, shown_path
from connectors.landing.root import folders_held
from connectors.landing.syscalls import sync_filesystem

# files to hand one GroupCommit at most at once (callers bound it): each holds its body (Azure: up to
# 1 MiB) and, once written, two descriptors until it lands. More did not help even on a slow disk.
MAX_PENDING = 64

@dataclass
class _Job:
    workspace: str
    name: str
    body: bytes
    source_id: str
    provenance: Mapping[str, Any]
    check: Callable[[], None] | None
    future: asyncio.Future[LandedFile] | None  # None: landed by land_group, outcomes returned
    context: contextvars.Context = field(default_factory=contextvars.copy_context)  # the run id lives here


@dataclass(frozen=True)
class GroupFile:
    """One whole in-memory file for :func:`land_group`: where it lands, its bytes, its record's facts."""

    workspace: str
    name: str
    body: bytes
    source_id: str
    provenance: Mapping[str, Any]


def land_group(files: list[GroupFile]) -> list[LandedFile | Exception]:
    """Land ``files`` as one group in this thread (blocking): what :class:`GroupCommit` does, with no event loop.

    For a caller that already holds a batch in a thread (a local folder's small files): the
    same steps and guarantees (data synced before any rename, names and records synced
    before this returns, a failed sync handled file by file), without a task, a future
    and a trip to a thread per file. Each file runs in the caller's context (run id,
    workspace root).

    Args:
        files: The files; their bodies are held until this returns.

    Returns:
        Per file, in order: what landed (durable), or that file's own error.
    """
    context = contextvars.copy_context()
    stage = _Stage([_Job(f.workspace, f.name, f.body, f.source_id, f.provenance, None, None, context) for f in files])
    try:
        error = stage.land(None, lambda: False)
    finally:
        stage.close()
    return stage.outcomes(error)


class GroupCommit:
    """Lands whole in-memory files in groups; ``await close()`` when done.

    Example:
        >>> group = GroupCommit()
        >>> try:
        ...     landed = await group.land("/tmp/ws", "a/b.csv", body, source_id="s", provenance={...})
        ... finally:
        ...     await group.close()
    """

    def __init__(self) -> None:
        self._queued: list[_Job] = []
        self._flusher: asyncio.Task[None] | None = None

    async def land(
        self,
        workspace: str,
        name: str,
        body: bytes,
        *,
        source_id: str,
        provenance: Mapping[str, Any],
        check: Callable[[], None] | None = None,
    ) -> LandedFile:
        """Land ``body`` at ``<workspace>/<name>`` with its record; returns once both are on disk.

        ``check`` runs before anything is written (for example a checksum
        comparison); what it raises is this file's error.

        Args:
            workspace: The folder the file lands in.
            name: The item's name (hostile input: checked and made a relative path).
            body: The whole file.
            source_id: The source the item comes from.
            provenance: The record's source facts, as for :meth:`Landing.commit`.
            check: Run before anything is written; what it raises fails this file only.

        Returns:
            What landed, once the file and its record are synced to disk.
        """
        future: asyncio.Future[LandedFile] = asyncio.get_running_loop().create_future()
        self._queued.append(_Job(workspace, name, body, source_id, provenance, check, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # shield: a caller that gives up does not stop its file from landing (or its temporary from going)
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait until every file handed to :meth:`land` has landed or failed."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    def _waiting(self) -> bool:
        """Whether files wait for the next group (read from the landing's thread: a list's truth is atomic)."""
        return bool(self._queued)

    async def _flush(self) -> None:
        renamed: _Stage | None = None  # renamed and recorded: durable after the next sync
        stage: _Stage | None = None
        try:
            while self._queued or renamed is not None:
                stage = _Stage(self._queued)
                self._queued = []
                error = await finish_in_thread(partial(stage.land, renamed, self._waiting))
                if renamed is not None:
                    renamed.settle(None)  # its outcome is per file now, even when this sync failed
                if stage.durable:  # nothing was waiting: synced again in the same trip, no trip just to sync
                    stage.settle(None)
                    renamed = None
                    continue
                renamed = stage if error is None and stage.landed else None
                if renamed is None:
                    stage.settle(error)
        finally:  # on cancellation or a bug of ours: no caller waits forever, no temporary stays
            for unsettled in (stage, renamed, _Stage(self._queued)):  # a settled file keeps its outcome
                if unsettled is not None:
                    unsettled.close()
                    unsettled.settle("the landing stopped before it was on disk")


class _Stage:
    """One group: its jobs, their landings (temporaries and locks, held until the group is done) and outcomes."""

    def __init__(self, jobs: list[_Job]) -> None:
        self.jobs = jobs
        self.landed: dict[int, LandedFile] = {}  # by job index
        self._errors: dict[int, Exception] = {}
        self._landings: dict[int, Landing] = {}
        self._stack = contextlib.ExitStack()  # closing it removes every temporary that did not land
        self.durable = False  # renamed, recorded and synced again: each file's outcome is final

    def land(self, previous: _Stage | None, waiting: Callable[[], bool] = lambda: True) -> Exception | None:
        """Steps 1-3 of the module's docstring, in a thread; the sync's error, if any.

        ``previous`` (renamed and recorded) becomes durable with this sync and is released.
        When nothing is ``waiting`` for the next group, this one is synced again at once
        (:meth:`make_durable`) rather than in a trip of its own.
        """
        with folders_held():  # each folder opened once for the group, not once per file
            return self._land(previous, waiting)

    def _land(self, previous: _Stage | None, waiting: Callable[[], bool]) -> Exception | None:
        for index, job in enumerate(self.jobs):
            # in the caller's context: its declared workspace root (and run id) apply to its landing
            self._catching(index, job.context.run, self._write, job, index)
        fds = self.fds() + (previous.fds() if previous else [])
        error = _sync_devices(fds)
        if previous is not None:
            if error is not None:
                previous.confirm_each()
            previous.close()
        if error is None:
            for index, land in self._landings.items():
                self._catching(index, self._commit, self.jobs[index], index, land)
        if error is not None or not self.landed:
            self.close()
        elif not waiting():
            self.make_durable()
        return error

    def make_durable(self) -> None:
        """Sync this renamed and recorded group (a failed sync: each file alone), then release it."""
        if _sync_devices(self.fds()) is not None:
            self.confirm_each()
        self.close()
        self.durable = True

    def confirm_each(self) -> None:
        """After a failed sync: make each renamed file durable alone; one that cannot be fails, record withdrawn."""
        for index, landed in list(self.landed.items()):
            job = self.jobs[index]
            try:
                _fsync_landed(job.workspace, landed.relative, self._landings[index].fd)
            except Exception as exc:  # this file's own error; the others go on
                del self.landed[index]
                self._errors[index] = _local_error(exc, job)
                with contextlib.suppress(OSError):
                    os.unlink(record_path(job.workspace, landed.relative))

    def fds(self) -> list[int]:
        return [land.fd for land in self._landings.values()]

    def settle(self, error: Exception | str | None) -> None:
        """On the event loop: every caller gets its landed file, its own error, or ``error``.

        A string ``error`` becomes a WorkspaceError naming each caller's file.
        """
        for job, outcome in zip(self.jobs, self.outcomes(error), strict=True):
            if job.future is None or job.future.done():
                continue
            if isinstance(outcome, Exception):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    def outcomes(self, error: Exception | str | None) -> list[LandedFile | Exception]:
        """Per job: its landed file, its own error, or ``error`` (its sync's, or why it stopped)."""
        return [
            self._errors[index] if index in self._errors
            else self.landed[index] if error is None and index in self.landed
            else _local_error(error or "not landed", job)
            for index, job in enumerate(self.jobs)
        ]

    def close(self) -> None:
        """Release the landings: a temporary that did not land is removed."""
        self._stack.close()

    def _write(self, job: _Job, index: int) -> None:
        if job.check is not None:
            job.check()
        land = self._stack.enter_context(landing(job.workspace, job.name, source_id=job.source_id))
        land.write(job.body)
        self._landings[index] = land

    def _commit(self, job: _Job, index: int, land: Landing) -> None:
        commit = land.commit
        self.landed[index] = job.context.run(commit, provenance=job.provenance, expected_size=len(job.body),
                                             durable=False)

    def _catching(self, index: int, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:  # this file's own error; the others go on
            self._errors[index] = _local_error(exc, self.jobs[index])


def _sync_devices(fds: list[int]) -> OSError | None:
    """Sync each file system the descriptors are on; the error, if any."""
    try:
        for fd in {os.fstat(fd).st_dev: fd for fd in fds}.values():
            sync_filesystem(fd)
    except OSError as exc:
        return exc
    return None


def _fsync_landed(workspace: str, relative: str, data_fd: int) -> None:
    """The fsyncs of landing one file: its data, its folder, its record and the record's folder."""
    os.fsync(data_fd)
    *folders, name = relative.split("/")
    _fsync_in(workspace, folders, None)
    _fsync_in(workspace, [LINEAGE_DIR, *folders], f"{name}.json")


def _fsync_in(workspace: str, parts: list[str], name: str | None) -> None:
    """fsync ``name`` (if any) in the folder ``parts`` under ``workspace``, then the folder (no symlinks)."""
    folder = open_directory(Path(workspace), parts, create=False)
    try:
        if name is not None:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.fsync(folder)
    finally:
        os.close(folder)


def _local_error(exc: Exception | str, job: _Job) -> Exception:
    path = Path(job.workspace).absolute() / job.name
    if isinstance(exc, str):
        return WorkspaceError(f"{shown_path(path)}: {exc}")
    return workspace_error(exc, path) if isinstance(exc, OSError) else exc
