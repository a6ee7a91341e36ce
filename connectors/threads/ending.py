"""Threads end: running attaches cancelled, staging and temporaries swept, idle connections closed.

The HTTP API runs a :class:`ThreadJanitor` over its pool of connectors from startup to shutdown
(:mod:`connectors.api.app_state`); an app that calls :func:`attach_to_thread` itself runs one over its registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self

from connectors.errors import DataSourceError, WorkspaceError
from connectors.landing.dirs import open_directory
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.registry import SourceRegistry
from connectors.secrets.references import get_logger
from connectors.threads.folders import STAGING_PREFIX, remove_staging, thread_folder
from connectors.threads.records import ThreadRecords, default_state_dir, sweep_ended_threads

__all__ = ["IdleClosing", "ThreadEndedError", "ThreadJanitor", "end_thread"]

log = get_logger(__name__)

_running_attaches: dict[Path, set[asyncio.Task[Any]]] = {}
_identities: dict[Path, tuple[int, int]] = {}  # a running thread's folder as it was: gone or replaced = ended
_last_activity = [time.monotonic()]  # when an attach last ran: the janitor's idle clock
WATCH_INTERVAL = 1.0  # seconds between two looks at a running attach's thread folder


class ThreadEndedError(WorkspaceError):
    """The thread's folder was removed (or :func:`end_thread` called) while its data was being attached."""


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def remember_folder(folder: Path, info: os.stat_result) -> None:
    """Note the thread folder a running attach uses: when another takes its place, the thread ended."""
    _identities[folder] = _identity(info)


@contextlib.contextmanager
def tracked(folder: Path, task: asyncio.Task[Any]) -> Iterator[None]:
    """Count ``task`` as an attach running in ``folder`` (what :func:`end_thread` cancels) while inside."""
    tasks = _running_attaches.setdefault(folder, set())
    tasks.add(task)
    try:
        yield
    finally:
        _last_activity[0] = time.monotonic()
        tasks.discard(task)
        if not tasks:
            _running_attaches.pop(folder, None)
            _identities.pop(folder, None)


async def end_thread(base_dir: str | os.PathLike[str], thread_id: str,
                     state_dir: str | os.PathLike[str] | None = None) -> int:
    """The thread ended (its folder removed or expired): cancel its running attaches, sweep what they left.

    Call it from the route that cleans threads up (an attach also notices within a second that its
    folder was removed, and stops the same way). Each
    cancelled attach removes its own staging folder; then the folder's stale temporaries are swept,
    the folder itself is removed again if a fetch re-created it empty, and the thread's records in
    the state folder (``state_dir``, default ``$DA_STATE_DIR``) are removed.

    Args:
        base_dir: DeepAnalyze's workspace folder, holding one folder per thread.
        thread_id: The thread (hostile input: checked before any path is made of it).
        state_dir: Where the thread's records live; None for ``$DA_STATE_DIR`` or its default.

    Returns:
        How many running attaches were cancelled.

    Raises:
        ConfigurationError: ``thread_id`` is not a valid thread id.
    """
    folder = thread_folder(base_dir, thread_id)
    records = ThreadRecords.of(base_dir, thread_id, state_dir)
    tasks = list(_running_attaches.get(folder, set()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(sweep_thread, folder, records)
    return len(tasks)


def sweep_thread(folder: Path, records: ThreadRecords | None = None) -> None:
    """Remove the thread's staging folders, stale temporaries and ``records``, and its folder when left empty."""
    if records is not None:
        records.remove_all()
    with workspace_root(folder.parent):
        try:
            dir_fd = open_directory(folder.parent, [folder.name], create=False)
        except (FileNotFoundError, DataSourceError):
            return  # gone, or not a folder of ours (a link): nothing to sweep
        try:
            stale = [n for n in os.listdir(dir_fd) if n.startswith(STAGING_PREFIX)]
        finally:
            os.close(dir_fd)
        for name in stale:
            remove_staging(folder / name)
        sweep_workspace(folder)
    with contextlib.suppress(OSError):  # only when empty: a thread folder with files is not ours to remove
        os.rmdir(folder)


async def cancel_when_ended(folder: Path, work: asyncio.Task[Any]) -> None:
    """Cancel ``work`` as soon as the thread's folder is removed or replaced (checked every second)."""
    while not work.done():
        await asyncio.sleep(WATCH_INTERVAL)
        if await asyncio.to_thread(thread_ended, folder):
            work.cancel()
            return


def thread_ended(folder: Path) -> bool:
    """The folder is gone, or another one took its place (removed, then re-created by a late write)."""
    known = _identities.get(folder)
    try:
        return known is not None and _identity(os.lstat(folder)) != known
    except FileNotFoundError:
        return True


class IdleClosing(Protocol):
    """A pool that knows which of its connections are idle (the API's pool of connectors)."""

    async def close_idle(self, idle_seconds: float) -> object:
        """Close what nobody used for ``idle_seconds`` and nobody holds.

        Args:
            idle_seconds: How long a connection must have gone unused to be closed.

        Returns:
            Anything; the janitor ignores it.
        """


class _AfterAttaches:
    """Closes everything once no attach ran for the idle time: a registry keeps no clock of its own."""

    def __init__(self, close: Callable[[], Awaitable[None]]) -> None:
        self._close = close
        self._closed_at = -1.0

    async def close_idle(self, idle_seconds: float) -> None:
        idle = time.monotonic() - _last_activity[0]
        if not _running_attaches and idle >= idle_seconds and self._closed_at < _last_activity[0]:
            self._closed_at = time.monotonic()
            await self._close()


class ThreadJanitor:
    """Closes pooled connections after ``idle_seconds`` without use.

    Given a registry (or the close function of one), it closes all of the registry's
    connectors once no attach ran for ``idle_seconds``: give it a registry of its own for
    attaches, since other users of a shared registry would find their connectors closed
    under them. Given a pool with ``close_idle`` (the HTTP API's, which knows which
    connectors a request holds), it leaves that to the pool, every ``interval`` seconds.

    Given ``base_dir`` (DeepAnalyze's workspace folder), each round also removes the records (in
    the state folder, ``state_dir``) of threads whose folder is gone.

    Example:
        >>> async with SourceRegistry("sources.yaml") as registry, ThreadJanitor(registry, base_dir="workspace"):
        ...     ...   # serve chat requests; attach_to_thread(registry, "workspace", ...)
    """

    def __init__(self, sources: SourceRegistry | IdleClosing | Callable[[], Awaitable[None]],
                 idle_seconds: float = 300.0, interval: float = 5.0, *,
                 base_dir: str | os.PathLike[str] | None = None,
                 state_dir: str | os.PathLike[str] | None = None) -> None:
        if isinstance(sources, SourceRegistry):
            self._pool: IdleClosing = _AfterAttaches(sources.aclose)
        elif hasattr(sources, "close_idle"):
            self._pool = sources
        else:
            self._pool = _AfterAttaches(sources)
        self.idle_seconds = idle_seconds
        self.interval = interval
        self.base_dir = None if base_dir is None else Path(os.path.abspath(base_dir))
        if state_dir is None and isinstance(sources, SourceRegistry):
            state_dir = default_state_dir(sources.path)  # as attach_to_thread given this registry
        self.state_dir = state_dir
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        """One round: close what was idle for ``idle_seconds``; with a ``base_dir``, sweep ended threads' records."""
        await self._pool.close_idle(self.idle_seconds)
        if self.base_dir is not None:
            running = frozenset(f.name for f in _running_attaches if f.parent == self.base_dir)
            await asyncio.to_thread(sweep_ended_threads, self.base_dir, self.state_dir, running)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception as exc:  # the janitor keeps going; the next round tries again
                log.warning("thread janitor: %s", exc)

    def start(self) -> None:
        """Start the rounds on the running event loop (again after :meth:`stop`; once while running)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="da-sources thread janitor")

    async def stop(self) -> None:
        """Stop the rounds (a round under way is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
