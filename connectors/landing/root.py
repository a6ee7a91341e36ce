"""The trusted workspace root: folders from it down are opened without following links.

DeepAnalyze's agent writes into the workspace, so it can plant a symlink at
``<root>/<source id>`` or anywhere below. The framework that owns the root (the
CLI, the Dagster layer, the HTTP API) declares it with :func:`workspace_root`
around its fetches; a connector is handed ``<root>/<source id>``, and the
landing opens the root once and every folder below it, the source's folder
included, with ``O_NOFOLLOW`` from its parent's descriptor. Lineage records,
lock files and sweeping follow the same rule. With no declared root (library
use), the folder given is the trusted root.

Example:
    >>> with workspace_root("/srv/workspace"):
    ...     sweep_workspace("/srv/workspace/sales")
    ...     await connector.fetch_data("a.csv", "/srv/workspace/sales")
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

from connectors.errors import WorkspaceError
from connectors.landing.dirs import (
    _DIR_FLAGS,
    mark_swept,
    open_directory,
    sweep_and_list_folders,
    workspace_error,
)
from connectors.landing.names import shown_path

T = TypeVar("T")

__all__ = [
    "declared_workspace_root", "folders_held", "forget_held_folders", "open_workspace_folder", "sweep_workspace",
    "under_workspace_root", "workspace_root",
]

_declared: contextvars.ContextVar[Path | None] = contextvars.ContextVar("da_workspace_root", default=None)


def _normal(path: str | os.PathLike[str]) -> Path:
    # lexical: below the root nothing is followed, so '..' can only mean the parent folder
    return Path(os.path.normpath(Path(path).absolute()))


@contextlib.contextmanager
def workspace_root(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Declare ``path`` the trusted workspace root for the landings made inside this block.

    A context variable, like :func:`connectors.landing.lineage.run_context`: it
    reaches the threads the landing uses, and never other tasks or runs.

    Args:
        path: The folder whose every sub-folder is opened without following a link.

    Returns:
        A context manager yielding the root, made absolute.
    """
    token = _declared.set(_normal(path))
    try:
        yield _declared.get() or Path(path)
    finally:
        _declared.reset(token)


def declared_workspace_root() -> Path | None:
    """The root declared by :func:`workspace_root` in this context.

    Returns:
        The absolute root, or None when none is declared.
    """
    return _declared.get()


async def under_workspace_root(
    root: str | os.PathLike[str], steps: AsyncIterator[T], *, sweep: str | os.PathLike[str] | None = None
) -> AsyncIterator[T]:
    """``steps`` with ``root`` declared around each step; first :func:`sweep_workspace` of ``sweep``, if given.

    For async generators that a framework resumes from different tasks (Dagster
    does): a context variable set across a ``yield`` would not be seen there.
    An error of the sweep comes out of the first step.

    Args:
        root: The trusted workspace root to declare.
        steps: The async generator to run step by step.
        sweep: A folder to :func:`sweep_workspace` before the first step; None sweeps nothing.

    Yields:
        What ``steps`` yields.
    """
    if sweep is not None:
        with workspace_root(root):
            await asyncio.to_thread(sweep_workspace, sweep)
    while True:
        with workspace_root(root):
            try:
                step = await anext(steps)
            except StopAsyncIteration:
                return
        yield step


def trusted_split(workspace: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    """(the trusted root, the folders from it down to ``workspace``).

    Raises:
        WorkspaceError: a root is declared and ``workspace`` is not under it.
    """
    root = _declared.get()
    if root is None:
        return Path(workspace).absolute(), []
    # strings, not pathlib: a sync calls this once per item
    folder, base = os.path.abspath(workspace), str(root)
    if folder == base:
        return root, []
    if not folder.startswith(base.rstrip("/") + "/"):
        raise WorkspaceError(
            f"workspace {shown_path(folder)} is not under the declared workspace root {shown_path(root)}"
        )
    return root, folder[len(base) :].strip("/").split("/")


def open_workspace_folder(workspace: str | os.PathLike[str], parts: list[str], *, create: bool) -> int:
    """A descriptor of ``<workspace>/<parts>``: from the trusted root down, no link followed.

    Args:
        workspace: The folder items land in; under the declared root, if one is.
        parts: The folder names below ``workspace``.
        create: Create missing folders rather than raise FileNotFoundError.

    Returns:
        An open descriptor of the folder; the caller closes it.

    Raises what :func:`connectors.landing.dirs.open_directory` raises.
    """
    root, prefix = trusted_split(workspace)
    held: dict[tuple[str, tuple[str, ...]], int] | None = getattr(_held, "folders", None)
    if held is None:
        return open_directory(root, prefix + parts, create=create)
    key = (str(root), (*prefix, *parts))
    fd = held.get(key)
    if fd is None:
        fd = held[key] = open_directory(root, prefix + parts, create=create)
    return os.dup(fd)


_held = threading.local()  # per thread: a landing's steps run in the callers' contexts, within one thread


@contextlib.contextmanager
def folders_held() -> Iterator[None]:
    """In this block (this thread), :func:`open_workspace_folder` opens each folder once and hands out copies.

    A group of landings (:mod:`connectors.landing.group_commit`) opens the same few
    folders (the data's, the records', the locks') for every file: one walk from the
    root each, then a ``dup``. A descriptor held is as safe as one held for a single
    file: opened without following links, it keeps naming the folder it opened.
    A folder removed in the block must be forgotten (:func:`forget_held_folders`).

    Returns:
        A context manager; the folders are closed on exit.
    """
    outer = getattr(_held, "folders", None)
    _held.folders = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            forget_held_folders()
            _held.folders = None


def forget_held_folders() -> None:
    """Close the folders :func:`folders_held` holds in this thread (one was removed: open it afresh)."""
    held: dict[tuple[str, tuple[str, ...]], int] | None = getattr(_held, "folders", None)
    while held:
        os.close(held.popitem()[1])


def sweep_workspace(folder: str | os.PathLike[str]) -> int:
    """Remove the temporaries left by dead writers anywhere under ``folder``; return how many.

    Call it at the start of every sync of a source (its ``<root>/<source id>``):
    a killed fetch leaves its temporary behind, and a landing sweeps only the
    folders it lands in. Links are not followed; a temporary whose writer still
    holds its lock is kept.

    Args:
        folder: The folder to sweep (a missing one holds nothing).

    Returns:
        How many temporaries were removed.

    Raises:
        UnsafeNameError / NameCollisionError / WorkspaceError: as :func:`open_workspace_folder`.
    """
    try:
        fd = open_workspace_folder(folder, [], create=False)
    except FileNotFoundError:
        return 0
    removed = 0
    stack: list[tuple[int, Iterator[str]]] = []
    try:
        while True:  # depth first, holding one descriptor per level, however deep or wide
            stack.append((fd, iter(())))  # closed by the finally below, whatever happens next
            mark_swept(fd)
            swept, folders = sweep_and_list_folders(fd)  # one scan of each folder
            removed += swept
            stack[-1] = (fd, iter(folders))
            fd = -1
            while stack and fd < 0:
                parent, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(stack.pop()[0])
                    continue
                with contextlib.suppress(OSError):  # gone meanwhile, or now a link: skipped
                    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            if fd < 0:
                return removed
    except OSError as exc:
        raise workspace_error(exc, folder) from exc
    finally:
        for parent, _ in stack:
            os.close(parent)
