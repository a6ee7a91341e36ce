"""Our records of a thread, in da-sources' own state folder: a thread's folder holds only its data.

DeepAnalyze walks a thread's folder recursively (its generated-file tracker), lists its top level
(``# Data``) and serves all of it (its file server, without authentication). So nothing of ours is
kept there: the lineage record of each attached file, the log of uploads, the lock and the staging
of attaches live in the state folder (``DA_STATE_DIR``; default ``da-sources-state`` beside the
sources file), which must not be under the workspace base::

    <state>/threads/<thread_id>/.lineage/<name>.json   the record of the attached file <name>
    <state>/threads/<thread_id>/published.jsonl        uploads of the thread's generated files
    <state>/threads/<thread_id>/.lock                  one attach publishes into the thread at a time
    <state>/threads/<thread_id>/staging/<random>/      an attach's fetches, before they move over

A thread's records go when the thread ends (:func:`sweep_ended_threads`, :func:`connectors.threads.end_thread`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.environment import read
from connectors.errors import ConfigurationError
from connectors.landing.dirs import open_directory, open_regular_file, read_regular_file
from connectors.landing.lineage import find_provenance, read_record, write_provenance
from connectors.landing.names import LINEAGE_DIR, RECORD_SUFFIX, shown_path
from connectors.landing.root import workspace_root
from connectors.publishing import PUBLISHED_LOG, append_record
from connectors.registry import sources_file_path
from connectors.threads.folders import check_thread_id

STATE_DIR_ENV = "DA_STATE_DIR"
STATE_FOLDER = "da-sources-state"  # the default, beside the sources file
THREADS_DIR = "threads"
STAGING_DIR = "staging"
LOCK_FILE = ".lock"


def default_state_dir(sources_file: str | os.PathLike[str] | None = None) -> Path:
    """``$DA_STATE_DIR``, else ``da-sources-state`` beside ``sources_file`` (default ``$DA_SOURCES_FILE``).

    Args:
        sources_file: The sources file the state belongs to; None for ``$DA_SOURCES_FILE`` or its default.

    Returns:
        The state folder, absolute (nothing is created).
    """
    configured = read(STATE_DIR_ENV)
    if configured:
        return Path(configured).absolute()
    return sources_file_path(sources_file).absolute().with_name(STATE_FOLDER)


def state_dir_for(base_dir: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The state folder to use beside workspace base ``base_dir`` (``state_dir``, or the default).

    Args:
        base_dir: DeepAnalyze's workspace folder.
        state_dir: The state folder asked for; None for :func:`default_state_dir`.

    Returns:
        The state folder, absolute.

    Raises:
        ConfigurationError: the state folder is the base or under it (DeepAnalyze would see our records).
    """
    state = Path(os.path.abspath(state_dir)) if state_dir is not None else default_state_dir()
    base = Path(os.path.realpath(base_dir))
    if Path(os.path.realpath(state)).is_relative_to(base):
        raise ConfigurationError(
            f"the state folder {shown_path(state)} is inside the workspace base {shown_path(base)}: DeepAnalyze "
            f"would list, track and serve our records; set ${STATE_DIR_ENV} to a folder outside it")
    return state


@dataclass(frozen=True)
class ThreadRecords:
    """The records of one thread in the state folder (see the module docstring for the layout)."""

    state_dir: Path
    thread_id: str

    @classmethod
    def of(cls, base_dir: str | os.PathLike[str], thread_id: str,
           state_dir: str | os.PathLike[str] | None = None) -> ThreadRecords:
        """The records of ``thread_id``, whose folder is under ``base_dir`` (the state folder checked).

        Args:
            base_dir: DeepAnalyze's workspace folder.
            thread_id: The thread (hostile input: checked).
            state_dir: The state folder; None for :func:`default_state_dir`.

        Returns:
            The thread's records (nothing is read or created yet).

        Raises:
            ConfigurationError: An invalid thread id, or a state folder inside ``base_dir``.
        """
        return cls(state_dir_for(base_dir, state_dir), check_thread_id(thread_id))

    @property
    def folder(self) -> Path:
        return self.state_dir / THREADS_DIR / self.thread_id

    def _open(self, parts: list[str], *, create: bool) -> int:
        if create:  # ours alone: records hold SQL text and hosts (the DeepAnalyze side has no business there)
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        return open_directory(self.state_dir, [THREADS_DIR, self.thread_id, *parts], create=create)

    def attached(self) -> list[dict[str, Any]]:
        """The records of the files attached to the thread.

        Returns:
            One lineage record per attached file (its ``attached_as`` is the file's name), oldest name first.
        """
        with workspace_root(self.state_dir):
            return [r for r in find_provenance(self.folder) if r.get("attached_as")]

    def read(self, name: str) -> dict[str, Any] | None:
        """The record of attached file ``name``.

        Args:
            name: The file's name at the top of the thread's folder.

        Returns:
            The record, or None when the file has none.
        """
        with workspace_root(self.state_dir):
            record = read_record(self.folder, name)
        return record if record is not None and record.get("attached_as") == name else None

    def write(self, name: str, record: dict[str, Any]) -> None:
        """Write the record of attached file ``name`` (atomically).

        Args:
            name: The file's name at the top of the thread's folder.
            record: Its lineage record, with ``attached_as`` set to ``name``.
        """
        with workspace_root(self.state_dir):
            write_provenance(self.folder, name, record)

    def remove(self, name: str) -> None:
        """Remove the record of ``name``, if there is one.

        Args:
            name: The attached file's name.
        """
        with contextlib.suppress(OSError):
            dir_fd = self._open([LINEAGE_DIR], create=False)
            try:
                os.unlink(f"{name}{RECORD_SUFFIX}", dir_fd=dir_fd)
            finally:
                os.close(dir_fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the thread's lock (across processes): one attach publishes into the thread at a time.

        Returns:
            A context manager holding the lock inside its block.

        Raises:
            ConfigurationError: Something other than a regular file is where the lock file goes.
        """
        dir_fd = self._open([], create=True)
        try:
            fd = open_regular_file(dir_fd, LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        finally:
            os.close(dir_fd)
        if fd is None:
            raise ConfigurationError(f"{shown_path(self.folder / LOCK_FILE)} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def new_staging(self) -> Path:
        """A fresh staging folder for one attach (created).

        Returns:
            The new, empty folder, in the state folder (never in the thread's).
        """
        name = secrets.token_hex(8)
        os.close(self._open([STAGING_DIR, name], create=True))
        return self.folder / STAGING_DIR / name

    def append_published(self, record: dict[str, Any]) -> None:
        """Append an upload's record to the thread's ``published.jsonl``.

        Args:
            record: What was uploaded where (see :func:`connectors.threads.results.publish_generated`).
        """
        dir_fd = self._open([], create=True)
        try:
            append_record(PUBLISHED_LOG, record, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def published(self) -> list[dict[str, Any]]:
        """The thread's upload records.

        Returns:
            The records of ``published.jsonl``, oldest first; empty when nothing was uploaded.
        """
        try:
            dir_fd = self._open([], create=False)
        except FileNotFoundError:
            return []
        try:
            data = read_regular_file(dir_fd, PUBLISHED_LOG) or b""
        finally:
            os.close(dir_fd)
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def remove_all(self) -> None:
        """Remove every record of the thread (it ended)."""
        # rmtree works by descriptors and never follows a link out of the folder it removes
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.folder)


def sweep_ended_threads(base_dir: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None,
                        keep: frozenset[str] = frozenset()) -> list[str]:
    """Remove the records of threads whose folder under ``base_dir`` is gone; their ids.

    Args:
        base_dir: DeepAnalyze's workspace folder.
        state_dir: The state folder; None for :func:`default_state_dir`.
        keep: Thread ids to leave alone (an attach under way creates its thread's folder).

    Returns:
        The ids of the threads whose records were removed.

    Raises:
        ConfigurationError: The state folder is inside ``base_dir``.
    """
    state = state_dir_for(base_dir, state_dir)
    try:
        ids = sorted(os.listdir(state / THREADS_DIR))
    except FileNotFoundError:
        return []
    swept = []
    for thread_id in ids:
        if thread_id in keep or os.path.lexists(os.path.join(base_dir, thread_id)):
            continue
        with contextlib.suppress(ConfigurationError):
            ThreadRecords(state, check_thread_id(thread_id)).remove_all()
            swept.append(thread_id)
    return swept
