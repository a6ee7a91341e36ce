"""``local_file``: a folder on a local or shared disk.

Why it works this way: ``docs/design/local_file.md``.

Example:
    >>> config = DataSourceConfig(id="docs", type="local_file", name="Docs",
    ...                           config={"root": "/srv/docs", "pattern": "*.csv"})
    >>> async with LocalFileConnector(config) as docs:
    ...     for item in await docs.list_items():
    ...         print(item.path, item.size)
    ...     await docs.fetch_data("2024/sales.csv", "/tmp/ws")   # -> /tmp/ws/2024/sales.csv
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import functools
import hashlib
import math
import mimetypes
import os
import resource
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_from_bytes

from connectors.base import DataItem, DataSourceConnector, FetchResult, collect_results
from connectors.beneath import EscapesRootError, IsFolderError, NotRegularError, open_beneath
from connectors.errors import DataFetchError, DataSourceError, IntegrityError, NotFoundError, UnsafeNameError
from connectors.landing.atomic import landing
from connectors.landing.dirs import finish_in_thread
from connectors.landing.group_commit import GroupFile
from connectors.landing.names import LINEAGE_DIR, TEMP_PREFIX, is_plain_name, safe_relative_path, shown_path
from connectors.landing.progress import report_progress
from connectors.landing.small_group import land_small_group
from connectors.landing.syscalls import start_writeback
from connectors.secrets.references import get_logger
from connectors.settings import LocalFileSettings

log = get_logger(__name__)
_Leaf = TypeVar("_Leaf", DataItem, tuple[str, str])  # a listed file: an item, or (path, version) for a sync

COPY_CHUNK = 64 * 1024 * 1024  # bytes per copy_file_range call: few syscalls, cancellable between
HASH_BUFFER = 4 * 1024 * 1024  # one reused buffer for hashing: bounded memory
SMALL_FILE = 1024 * 1024  # fetch_many reads files up to this size whole and lands them in groups
# a group's files are synced twice per group (data, then names and records): on ext4 each sync is a journal
# commit, so groups are as large as memory and descriptors allow (each file holds two until its group lands:
# a group takes at most a quarter of the process's descriptor limit, 256 files under the common 1,024)
GROUP_FILES = 1024
GROUP_BYTES = 32 * 1024 * 1024  # bodies held at once at most (plus one file)


class LocalFileConnector(DataSourceConnector):
    """Serves the files under ``config["root"]``; identifiers are paths relative to it."""

    settings_model = LocalFileSettings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._root: Path | None = None
        self._settings: LocalFileSettings | None = None
        self.refused: list[str] = []  # symlinks leading outside root, seen by the last listing
        self.refusals: dict[str, str] = {}  # the same names, each with why (syncs report them as skipped)
        self._reasons: dict[str, str] = {}

    async def connect(self) -> bool:
        settings: LocalFileSettings = self.resolve_settings()
        root = await asyncio.to_thread(_existing_folder, settings.root)
        if root is None:
            raise NotFoundError("config.root: the folder does not exist", source_id=self.source_id)  # never its value
        self._root, self._settings = root, settings
        self._connected = True
        return True

    async def disconnect(self) -> None:
        self._connected = False

    async def test_connection(self) -> bool:
        try:
            if not self._connected:
                await self.connect()
            return os.access(self._require_root(), os.R_OK | os.X_OK)
        except (DataFetchError, OSError):
            return False

    def _require_root(self) -> Path:
        self._require_connected()
        assert self._root is not None
        return self._root

    # --- listing ---------------------------------------------------------

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        return await asyncio.to_thread(self._scan, path)

    def _scan(self, path: str | None) -> list[DataItem]:
        start = path.strip("/") if path else ""
        if start:
            safe_relative_path(f"{start}/x")  # every segment is a folder name
        refused: list[str] = []
        self._reasons = {}
        items: list[DataItem] = []
        with self._root_fd() as root_fd, self._source_errors(start or ".", folder=True):
            folder = open_beneath(root_fd, str(self._require_root()), start, directory=True)
            try:
                self._walk(root_fd, folder, f"{start}/" if start else "", items, refused)
            finally:
                os.close(folder)
        self.refused, self.refusals = refused, self._reasons
        items.sort(key=lambda item: item.path)
        return items

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        """The items of :meth:`list_items`, in the same (path) order, one folder at a time.

        Memory is bounded by the folders on the way down (their entries), not by the
        source: a million files are never held at once. Folders are entered as
        ``list_items`` enters them (never through a link); one that vanishes mid-walk is skipped.

        Args:
            path: A folder to list below, relative to the root; None lists the whole source.

        Returns:
            An async iterator of the items, path order.

        Raises:
            UnsafeNameError: ``path`` would leave the root.
        """
        async for run in self._runs(path, _item):
            for item in run:
                yield item

    async def iter_versions(self, path: str | None = None) -> AsyncIterator[list[tuple[str, str]]]:
        """:meth:`iter_items` as ``(identifier, version)`` pairs, a run of a folder's files at a time.

        The same items, order, scope and refusals, without building an item (its metadata, its
        dates) per file: what a sync's listing needs (``connectors.syncing.source_sync``).

        Args:
            path: A folder to list below, relative to the root; None lists the whole source.

        Returns:
            An async iterator of lists of ``(path, version)``, path order.

        Raises:
            UnsafeNameError: ``path`` would leave the root.
        """
        async for run in self._runs(path, _versioned):
            yield run

    async def _runs(self, path: str | None, make: Callable[[str, os.stat_result], _Leaf]) -> AsyncIterator[list[_Leaf]]:
        """The files below ``path`` (each made by ``make``), in path order, in runs of a folder's files."""
        start = path.strip("/") if path else ""
        if start:
            safe_relative_path(f"{start}/x")  # every segment is a folder name
        refused: list[str] = []
        self._reasons = {}
        stack = [iter(await asyncio.to_thread(self._folder_entries, start, refused, True, make))]
        run: list[_Leaf] = []
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
            elif isinstance(entry, str):
                if run:
                    yield run
                    run = []
                stack.append(iter(await asyncio.to_thread(self._folder_entries, entry, refused, False, make)))
            else:
                run += entry
        if run:
            yield run
        self.refused, self.refusals = refused, self._reasons

    def _folder_entries(self, relative: str, refused: list[str], first: bool,
                        make: Callable[[str, os.stat_result], _Leaf]) -> list[list[_Leaf] | str]:
        """One folder's files (made by ``make``) and (as relative paths) subfolders, in the order of the full
        sorted listing: each subfolder's path, and between them the files, a list of those in a row.

        A subfolder sorts as ``name/``: its items come exactly where a sort of full paths puts them.
        """
        items: list[_Leaf] = []
        with self._root_fd() as root_fd, self._source_errors(relative or ".", folder=True):
            try:
                folder = _open_folder(root_fd, relative) if not first else open_beneath(
                    root_fd, str(self._require_root()), relative, directory=True)
            except OSError:
                if first:
                    raise
                return []  # gone or swapped for a link since its parent was read: as _walk_child does
            try:
                with os.scandir(folder) as scanned:
                    entries = list(scanned)
                children = []
                prefix = f"{relative}/" if relative else ""
                settings = self._settings
                every = settings is not None and settings.recursive and settings.pattern is None
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and not entry.is_symlink():
                        if entry.name != LINEAGE_DIR and not entry.name.startswith(TEMP_PREFIX) \
                                and settings is not None and settings.recursive:
                            children.append(prefix + entry.name)
                    elif every and entry.is_file(follow_symlinks=False) and is_plain_name(path := prefix + entry.name):
                        # the usual file: what _walk_entry does, at once (a plain name is neither the records'
                        # folder nor a temporary, and is safe; every file is in scope)
                        items.append(make(path, entry.stat(follow_symlinks=False)))
                    else:
                        self._walk_entry(root_fd, entry, prefix + entry.name, items, refused, make)
            finally:
                os.close(folder)
        return _in_order(items, children)

    def _walk_entry(self, root_fd: int, entry: os.DirEntry[str], relative: str, items: list[_Leaf],
                    refused: list[str], make: Callable[[str, os.stat_result], _Leaf]) -> None:
        """One entry that is not a folder to enter: a file, a link to one, or nothing to serve."""
        if entry.name == LINEAGE_DIR or entry.name.startswith(TEMP_PREFIX):
            return
        if entry.is_symlink():
            self._add_symlink(root_fd, relative, items, refused, make)
        elif entry.is_file(follow_symlinks=False):
            self._add_file(relative, entry.stat(follow_symlinks=False), items, refused, make)

    def _walk(self, root_fd: int, dir_fd: int, prefix: str, items: list[DataItem], refused: list[str]) -> None:
        with os.scandir(dir_fd) as scanned:
            entries = list(scanned)
        for entry in entries:
            relative = prefix + entry.name
            if entry.name == LINEAGE_DIR or entry.name.startswith(TEMP_PREFIX):
                continue  # provenance records and temporaries of a landing: never data
            if entry.is_symlink():
                self._add_symlink(root_fd, relative, items, refused, _item)
            elif entry.is_dir(follow_symlinks=False):
                if self._settings is not None and self._settings.recursive:
                    self._walk_child(root_fd, dir_fd, entry.name, relative, items, refused)
            elif entry.is_file(follow_symlinks=False):
                self._add_file(relative, entry.stat(follow_symlinks=False), items, refused, _item)
            # FIFOs, sockets, devices: not files to serve

    def _walk_child(
        self, root_fd: int, dir_fd: int, name: str, relative: str, items: list[DataItem], refused: list[str]
    ) -> None:
        try:  # O_NOFOLLOW: a folder swapped for a link since the scan is not entered
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return
        try:
            self._walk(root_fd, child, relative + "/", items, refused)
        finally:
            os.close(child)

    def _add_file(self, relative: str, info: os.stat_result, items: list[_Leaf], refused: list[str],
                  make: Callable[[str, os.stat_result], _Leaf]) -> None:
        try:
            safe_relative_path(relative)
        except UnsafeNameError as exc:
            self._refuse(relative, exc.message, refused)
            return
        if self._in_scope(relative):
            items.append(make(relative, info))

    def _add_symlink(self, root_fd: int, relative: str, items: list[_Leaf], refused: list[str],
                     make: Callable[[str, os.stat_result], _Leaf]) -> None:
        try:
            fd = open_beneath(root_fd, str(self._require_root()), relative)
        except EscapesRootError:
            self._refuse(relative, "a symlink leading outside root", refused)
            return
        except (NotRegularError, OSError):
            return  # a link to a folder, a FIFO..., or a broken one: nothing to serve
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        self._add_file(relative, info, items, refused, make)

    def _refuse(self, relative: str, reason: str, refused: list[str]) -> None:
        shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        refused.append(shown)
        self._reasons[shown] = reason
        log.warning("source %s: %s refused: %s", self.source_id, shown_path(shown), reason)

    def _in_scope(self, relative: str) -> bool:
        """Whether ``relative`` is in the configured scope (``pattern``, ``recursive``)."""
        assert self._settings is not None
        if not self._settings.recursive and "/" in relative:
            return False
        pattern = self._settings.pattern
        return pattern is None or fnmatch.fnmatchcase(relative, pattern)

    @contextlib.contextmanager
    def _root_fd(self) -> Iterator[int]:
        root = self._require_root()
        with self._source_errors("."):
            # resolved at connect: a link there now is the root swapped since, never followed
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _source_errors(self, identifier: str, *, folder: bool = False) -> Iterator[None]:
        """The one place where reading the source's tree turns OS errors into typed errors."""
        what = "folder" if folder else "file"
        try:
            yield
        except EscapesRootError:
            raise UnsafeNameError(
                f"{identifier!r} is, or goes through, a symlink leading outside root; refused, not read",
                source_id=self.source_id,
            ) from None
        except IsFolderError:
            raise NotFoundError(f"{identifier!r} is a folder, not a file; give {identifier.rstrip('/') + '/'!r} "
                                "(with a trailing /) to fetch everything under it", source_id=self.source_id) from None
        except NotRegularError:
            raise NotFoundError(f"{identifier!r} is not a regular {what} (a FIFO, socket or device is never read)",
                                source_id=self.source_id) from None
        except OSError as exc:
            raise _source_error(exc, identifier, what, self.source_id) from exc

    # --- fetching --------------------------------------------------------

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        cancelled = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(self._fetch, identifier, workspace, cancelled))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled.set()  # the copy stops at its next chunk and removes its temporary:
            with contextlib.suppress(BaseException):  # wait for that, so a cancelled fetch leaves nothing
                await work
            raise

    async def fetch_many(
        self, identifiers: Iterable[str], workspace: str, concurrency: int = 8
    ) -> list[FetchResult]:
        """Fetch several files, ``concurrency`` at once; per-item results in order.

        Files up to :data:`SMALL_FILE` are read whole and land in groups of up to
        :data:`GROUP_FILES` files and :data:`GROUP_BYTES`, a group in one trip to a thread
        with one file-system sync per step (:func:`connectors.landing.small_group.land_small_group`)
        rather than three fsyncs and a task each; larger ones are copied as :meth:`fetch_data` does.

        Args:
            identifiers: The files, as listed.
            workspace: The folder they land in.
            concurrency: How many files over :data:`SMALL_FILE` are copied at once.

        Returns:
            One result per identifier, in order: its path, or the error that item met.
        """
        wanted = list(identifiers)
        outcomes: list[str | DataSourceError | None] = []  # None: over SMALL_FILE, copied below
        size = _group_files()
        for start in range(0, len(wanted), size):
            outcomes += await finish_in_thread(partial(self._land_small, wanted[start:start + size], workspace))
        reads = asyncio.Semaphore(max(1, concurrency))

        async def large(identifier: str) -> str:
            async with reads:
                return await self.fetch_data(identifier, workspace)

        copied = iter(await collect_results([i for i, o in zip(wanted, outcomes, strict=True) if o is None], large))
        return [next(copied) if outcome is None
                else FetchResult(identifier, error=outcome) if isinstance(outcome, DataSourceError)
                else FetchResult(identifier, path=outcome)
                for identifier, outcome in zip(wanted, outcomes, strict=True)]

    def _land_small(self, identifiers: list[str], workspace: str) -> list[str | DataSourceError | None]:
        """In a thread: read the small files of a batch and land them in groups (one trip, no task per file).

        Per identifier: its landed path, its error, or None when it is over :data:`SMALL_FILE`.
        """
        outcomes: list[str | DataSourceError | None] = [None] * len(identifiers)
        files: list[GroupFile] = []
        places: list[int] = []
        held = 0
        with self._batch_root_fd() as (root_fd, folders):
            for index, identifier in enumerate(identifiers):
                try:
                    small = self._read_small(identifier, root_fd, folders)
                except DataSourceError as exc:
                    outcomes[index] = exc
                    continue
                if small is None:
                    continue
                files.append(GroupFile(workspace, identifier, small[0], self.source_id, small[1]))
                places.append(index)
                held += len(small[0])
                if held >= GROUP_BYTES:  # memory stays bounded: land what is held, read on
                    self._land_group(files, places, outcomes)
                    files, places, held = [], [], 0
        self._land_group(files, places, outcomes)
        return outcomes

    @contextlib.contextmanager
    def _batch_root_fd(self) -> Iterator[tuple[int | None, dict[str, int]]]:
        """The root and the folders reached below it, each opened once for a batch.

        The root is None when it cannot be opened (each file then meets the error itself).
        """
        folders: dict[str, int] = {}
        try:
            fd = os.open(self._require_root(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            yield None, folders
            return
        try:
            yield fd, folders
        finally:
            for folder in folders.values():
                os.close(folder)
            os.close(fd)

    @staticmethod
    def _land_group(files: list[GroupFile], places: list[int], outcomes: list[str | DataSourceError | None]) -> None:
        """Land ``files`` as one group; each outcome goes to its place."""
        if not files:
            return
        for index, landed in zip(places, land_small_group(files), strict=True):
            if isinstance(landed, DataSourceError):
                outcomes[index] = landed
            elif isinstance(landed, Exception):
                raise landed  # not an item's error: a bug, as collect_results lets through
            else:
                outcomes[index] = str(landed.path)

    def _read_small(self, identifier: str, root_fd: int | None = None,
                    folders: dict[str, int] | None = None) -> tuple[bytes, dict[str, Any]] | None:
        """The whole file and its provenance, or None when it is over :data:`SMALL_FILE`."""
        fd, before = self._open_source(identifier, root_fd, folders)
        try:
            if before.st_size > SMALL_FILE:
                return None
            body = os.pread(fd, before.st_size + 1, 0)  # one byte more: a file that grew is noticed
            if len(body) != before.st_size:
                raise IntegrityError(f"{identifier!r} changed while it was read", source_id=self.source_id)
            self._check_unchanged(identifier, fd, before)
        finally:
            os.close(fd)
        report_progress(identifier, len(body), before.st_size)
        return body, self._provenance(identifier, before)

    def _fetch(self, identifier: str, workspace: str, cancelled: threading.Event) -> str:
        fd, before = self._open_source(identifier)
        try:
            with landing(workspace, identifier, source_id=self.source_id) as land:
                digest = _copy_and_hash(fd, land.fd, before.st_size, identifier, cancelled)
                self._check_unchanged(identifier, fd, before)
                landed = land.commit(
                    provenance=self._provenance(identifier, before),
                    expected_size=before.st_size,
                    sha256=digest,
                )
        finally:
            os.close(fd)
        return str(landed.path)

    def _open_source(self, identifier: str, root_fd: int | None = None,
                     folders: dict[str, int] | None = None) -> tuple[int, os.stat_result]:
        """The source file of ``identifier``, opened beneath root, in scope, a regular file.

        ``root_fd`` and ``folders``: the root and the folders below it held open by a batch (see :func:`open_beneath`).
        """
        safe_relative_path(identifier)
        if not self._in_scope(identifier):
            raise NotFoundError(f"{identifier!r} is outside the source's scope (pattern, recursive)",
                                source_id=self.source_id)
        if root_fd is not None:
            try:
                fd = open_beneath(root_fd, str(self._require_root()), identifier, held=folders)
                return fd, os.fstat(fd)
            except Exception:
                with self._source_errors(identifier):  # typed there (no context manager per file on success)
                    raise
        with self._root_fd() as root_fd, self._source_errors(identifier):
            fd = open_beneath(root_fd, str(self._require_root()), identifier)
            return fd, os.fstat(fd)

    def _check_unchanged(self, identifier: str, fd: int, before: os.stat_result) -> None:
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise IntegrityError(f"{identifier!r} changed while it was copied", source_id=self.source_id)

    def _provenance(self, identifier: str, info: os.stat_result) -> dict[str, Any]:
        root = self._require_root()
        return {
            "source_type": self.type_name(),
            "source_uri": _file_uri(root, identifier),
            "source_version": _version(info),
            "modified_at": _iso(info.st_mtime_ns),
            "content_type": _content_type(identifier),
        }

    # --- metadata --------------------------------------------------------

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._metadata, identifier)

    def _metadata(self, identifier: str) -> dict[str, Any]:
        fd, info = self._open_source(identifier)
        try:
            digest = _hash_range(fd, info.st_size, threading.Event())
        finally:
            os.close(fd)
        return {
            "path": identifier,
            "size": info.st_size,
            "modified_at": _iso(info.st_mtime_ns),
            "content_type": _content_type(identifier),
            "sha256": digest,
            "version": _version(info),
            "source_uri": (self._require_root() / identifier).as_uri(),
        }


def _group_files() -> int:
    """Files per group: :data:`GROUP_FILES`, within a quarter of the process's descriptor limit."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return min(GROUP_FILES, 256)
    return GROUP_FILES if soft == resource.RLIM_INFINITY else max(16, min(GROUP_FILES, soft // 4))


def _source_error(exc: OSError, identifier: str, what: str, source_id: str) -> DataFetchError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFoundError(f"{what} {identifier!r} does not exist under root", source_id=source_id)
    if exc.errno == errno.ELOOP:
        return UnsafeNameError(f"{identifier!r}: too many symlinks", source_id=source_id)
    return DataFetchError(f"cannot read {what} {identifier!r}: {exc.strerror or type(exc).__name__}",
                          source_id=source_id)


def _existing_folder(root: str) -> Path | None:
    path = Path(root).expanduser()
    return path.resolve() if path.is_dir() else None


def _open_folder(root_fd: int, relative: str) -> int:
    """A descriptor of the folder ``relative`` below the root, opened a name at a time, never through a link."""
    current = os.dup(root_fd)
    try:
        for part in relative.split("/"):
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = child
    except OSError:
        os.close(current)
        raise
    return current


def _item(relative: str, info: os.stat_result) -> DataItem:
    return DataItem(
        name=relative.rsplit("/", 1)[-1],
        path=relative,
        size=info.st_size,
        modified_at=int(info.st_mtime),
        metadata={
            "content_type": _content_type(relative),
            "modified_at": _iso(info.st_mtime_ns),
            "version": _version(info),
        },
    )


def _versioned(relative: str, info: os.stat_result) -> tuple[str, str]:
    return relative, _version(info)


def _leaf_path(leaf: DataItem | tuple[str, str]) -> str:
    return leaf.path if isinstance(leaf, DataItem) else leaf[0]


def _in_order(items: list[_Leaf], children: list[str]) -> list[list[_Leaf] | str]:
    """A folder's files and subfolders in the order of a sort of full paths (a subfolder sorts as ``name/``):
    each subfolder's path, and the files between two of them as one list."""
    keyed: list[tuple[str, _Leaf | None, str]] = [(_leaf_path(item), item, "") for item in items]
    keyed += [(child + "/", None, child) for child in children]
    keyed.sort(key=itemgetter(0))
    ordered: list[list[_Leaf] | str] = []
    run: list[_Leaf] = []
    for _, item, child in keyed:
        if item is not None:
            run.append(item)
            continue
        if run:
            ordered.append(run)
            run = []
        ordered.append(child)
    if run:
        ordered.append(run)
    return ordered


def _file_uri(root: Path, identifier: str) -> str:
    """``(root / identifier).as_uri()``, without pathlib for the usual identifier (no empty or '.' part).

    The URI quotes byte by byte, so the root's quoted text is computed once and the identifier's appended.
    """
    if any(part in ("", ".") for part in identifier.split("/")):
        return (root / identifier).as_uri()  # pathlib drops those parts: its own answer
    return _root_uri(str(root).rstrip("/")) + quote_from_bytes(os.fsencode("/" + identifier))


@functools.lru_cache(maxsize=64)
def _root_uri(root: str) -> str:
    return "file://" + quote_from_bytes(os.fsencode(root))


def _version(info: os.stat_result) -> str:
    return f"{info.st_mtime_ns}-{info.st_size}"


def _iso(mtime_ns: int) -> str:
    # what datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC).isoformat() gives (the same float, rounded half
    # to even to the microsecond), with the date and time of each second formatted once: a listing of files
    # written together formats few seconds, and this runs for every file listed
    seconds = mtime_ns / 1e9
    if seconds < 0:
        return _iso_exact(seconds)
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    second = _iso_second(int(whole))
    return f"{second}.{micros:06d}Z" if micros else f"{second}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(whole: int) -> str:
    return datetime.fromtimestamp(whole, tz=UTC).replace(tzinfo=None).isoformat()


def _iso_exact(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _content_type(name: str) -> str:
    # the guess reads only the file name's extensions: one guess per distinct tail, not per file of a listing
    last = name.rpartition("/")[2]
    dot = last.find(".")
    if dot <= 0:  # no extension, or a name starting with a dot: guessed as it is
        return _guess_type(last)
    return _guessed_tail(last[dot:])


@functools.lru_cache(maxsize=1024)
def _guessed_tail(tail: str) -> str:
    return _guess_type("x" + tail)


def _guess_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(quote(name, errors="replace"))  # never raises on undecodable bytes
    return guessed or "application/octet-stream"


def _copy_and_hash(src: int, dst: int, size: int, identifier: str, cancelled: threading.Event) -> str:
    """Copy ``size`` bytes in the kernel while another thread hashes the source."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="da-hash") as pool:
        digest: Future[str] = pool.submit(_hash_range, src, size, cancelled)
        try:
            _kernel_copy(src, dst, size, identifier, cancelled)
        except BaseException:
            cancelled.set()
            raise
        return digest.result()


def _kernel_copy(src: int, dst: int, size: int, identifier: str, cancelled: threading.Event) -> None:
    offset = 0
    while offset < size:
        if cancelled.is_set():
            raise asyncio.CancelledError
        count = min(COPY_CHUNK, size - offset)
        done = _copy_chunk(src, dst, offset, count)
        if done == 0:
            raise IntegrityError(f"{identifier!r} shrank while it was copied")
        start_writeback(dst, offset, done)
        offset += done
        report_progress(identifier, offset, size)


def _copy_chunk(src: int, dst: int, offset: int, count: int) -> int:
    try:
        return os.copy_file_range(src, dst, count, offset, offset)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(dst, offset, os.SEEK_SET)
    return os.sendfile(dst, src, offset, count)


def _hash_range(fd: int, size: int, cancelled: threading.Event) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BUFFER)
    view = memoryview(buffer)
    offset = 0
    while offset < size and not cancelled.is_set():
        done = os.preadv(fd, [view], offset)
        if done == 0:
            break
        digest.update(view[:done])
        offset += done
    return digest.hexdigest()
