"""Syncing a source into its workspace folder: which items to land, repair, skip, report as removed, prune.

Plain async functions shared by ``da-sources fetch --all`` and the Dagster layer; the options
come from the source's ``metadata.sync`` (:func:`sync_options`). What happens to each item,
and why: ``docs/design/syncing.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.base import DataItem, DataSourceConfig, DataSourceConnector
from connectors.checked_fetch import (
    check_identifier,
    fetch_checked,
    fetch_many_checked,
    landed_problem,
    prune_landed,
)
from connectors.errors import ConfigurationError, DataSourceError, UnsafeNameError
from connectors.landing.lineage import read_record, run_context
from connectors.landing.names import LINEAGE_DIR, TEMP_PREFIX
from connectors.landing.progress import ProgressCallback, on_progress
from connectors.settings import describe_errors

# Types whose items land at <workspace>/<identifier>: their record is found without a scan.
_LANDS_AT_IDENTIFIER = frozenset({"local_file", "azure_blob", "s3"})
CHUNK = 1024  # items fetched per fetch_many call: records stream, memory stays bounded
BATCH = 4096  # listed items planned at once: no plan, version map or to-do list spans the whole source
SYNC_METADATA_KEY = "sync"
_T = TypeVar("_T")
_LOCK_DIR = ".locks"


class SyncOptions(BaseModel):
    """Generic sync options of a source, in its ``metadata.sync``; the CLI and Dagster both honour them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude: list[str] = Field(
        default_factory=list,
        description="fnmatch globs on the item identifier (`*` also matches `/`); matching items are "
        "neither listed nor landed, and never reported as removed.",
    )
    prune: bool = Field(
        False,
        description="After a full sync, remove the landed file and lineage record of each item the "
        "source no longer lists (never anything else). Off: such items are only reported.",
    )


def sync_options(source: DataSourceConfig) -> SyncOptions:
    """The options in ``source.metadata["sync"]`` (defaults when absent).

    Args:
        source: the source.

    Returns:
        Its ``exclude`` patterns and ``prune`` flag.

    Raises:
        ConfigurationError: an unknown key or a bad value, naming the source and the field.
    """
    raw: Any = source.metadata.get(SYNC_METADATA_KEY) or {}
    try:
        return SyncOptions.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc, f"metadata.{SYNC_METADATA_KEY}"), source_id=source.id) from None


def excluded_by(identifier: str, patterns: Iterable[str]) -> str | None:
    """The first ``exclude`` pattern ``identifier`` matches, or None.

    Args:
        identifier: an item's identifier.
        patterns: fnmatch globs (``*`` matches ``/`` too).

    Returns:
        The matching pattern, or None when none matches.
    """
    return next((p for p in patterns if fnmatch.fnmatchcase(identifier, p)), None)


def item_version(item: DataItem) -> str:
    """The item's version (``metadata["version"]``; size and mtime when a connector lacks it).

    Args:
        item: an item of a listing.

    Returns:
        The version as text, compared with the landed record's ``source_version``.
    """
    version = item.metadata.get("version")
    return str(version) if version is not None else f"{item.modified_at}-{item.size}"


@dataclass(frozen=True, slots=True)
class ItemRequest:
    """One item to sync: its identifier and the version the listing showed ("" = whatever landed)."""

    identifier: str
    version: str


@dataclass
class SyncReport:
    """What a sync did, item by item.

    Attributes:
        landed: the lineage record of every item landed by this sync (new, changed or repaired).
        unchanged: identifiers whose landed file matches the source's version and its record; not fetched.
        repaired: identifiers re-landed although their version was unchanged, because the
            landed file was missing or no longer matched its record (also in ``landed``).
        skipped: ``(identifier, reason)`` of items that cannot be landed (unsafe name, name
            collision, a connector returning a path outside the workspace) or are excluded;
            the sync goes on without them and does not fail for them.
        removed: identifiers that landed before and the source no longer lists (full listings only).
        pruned: those of ``removed`` whose landed file and record were deleted (``prune: true``).
        failed: the errors of items that failed (network, not found, integrity...).
    """

    landed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    failed: list[DataSourceError] = field(default_factory=list)
    keep_items: bool = True  # False: landed records and unchanged identifiers are counted, not kept
    landed_count: int = 0
    unchanged_count: int = 0

    def add_landed(self, record: dict[str, Any]) -> None:
        """Count a landed item; keep its record unless ``keep_items`` is off (a million records weigh GiBs).

        Args:
            record: The item's lineage record.
        """
        self.landed_count += 1
        if self.keep_items:
            self.landed.append(record)

    def add_unchanged(self, identifier: str) -> None:
        """Count an unchanged item; keep its identifier unless ``keep_items`` is off.

        Args:
            identifier: The item skipped as unchanged.
        """
        self.unchanged_count += 1
        if self.keep_items:
            self.unchanged.append(identifier)

    @property
    def landed_total(self) -> int:
        """Items landed by this sync (counted whether or not their records are kept)."""
        return max(self.landed_count, len(self.landed))

    @property
    def unchanged_total(self) -> int:
        """Items left unchanged (counted whether or not their identifiers are kept)."""
        return max(self.unchanged_count, len(self.unchanged))

    def summary(self) -> str:
        """The sync's counts in one line.

        Returns:
            ``"3 landed, 10 unchanged, 1 repaired, 1 skipped, 2 removed at source, 0 pruned, 0 failed"``.
        """
        return (f"{self.landed_total} landed, {self.unchanged_total} unchanged, {len(self.repaired)} repaired, "
                f"{len(self.skipped)} skipped, {len(self.removed)} removed at source, {len(self.pruned)} pruned, "
                f"{len(self.failed)} failed")


@dataclass
class _Listed:
    """A full listing: the requests to sync and every identifier the source listed (excluded ones too)."""

    requests: list[ItemRequest]
    identifiers: set[str]
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, why): refused by the listing itself


def listing_refusals(connector: DataSourceConnector) -> list[tuple[str, str]]:
    """Items the connector's last listing refused to list, with why (a link leading outside, an unsafe name).

    A connector that leaves items out of its listing for safety keeps them in ``refusals``
    (``LocalFileConnector`` does); they are reported as skipped, like an unsafe remote name.

    Args:
        connector: a connector that has listed.

    Returns:
        ``(identifier, reason)`` pairs, sorted; empty for a connector without ``refusals``.
    """
    return sorted(dict(getattr(connector, "refusals", None) or {}).items())


class LineageIndex:
    """The lineage records of one source's landed items, looked up by identifier."""

    def __init__(self, folder: Path, source_id: str, type_name: str) -> None:
        self.folder = folder
        self.source_id = source_id
        self._direct = type_name in _LANDS_AT_IDENTIFIER
        self._scanned: dict[str, tuple[str, dict[str, Any]]] | None = None
        self._absent: dict[str, bool] = {}  # record folder -> missing, as seen since refresh()

    def refresh(self) -> None:
        """Forget which record folders were missing (records may have landed there since)."""
        self._absent = {}

    def get(self, identifier: str) -> dict[str, Any] | None:
        """The record of ``identifier``.

        Args:
            identifier: An item of the source.

        Returns:
            Its lineage record, or None when it never landed.
        """
        found = self.locate(identifier)
        return found[1] if found else None

    def locate(self, identifier: str) -> tuple[str, dict[str, Any]] | None:
        """Where ``identifier`` landed.

        Args:
            identifier: An item of the source.

        Returns:
            ``(relative path of the landed file, record)``, or None when it never landed.
        """
        if self._direct:
            record = self._record_at(identifier, identifier)
            return (identifier, record) if record else None
        return self._scan().get(identifier)

    def landed_except(self, listed: Container[str], keep: Callable[[str], bool] | None = None) -> dict[str, str]:
        """Every landed item of this source not in ``listed``.

        Args:
            listed: The identifiers the source lists now.
            keep: Only landed items it is true of are asked about (a shard's own items); None: all.

        Returns:
            Identifier -> relative path of each landed item gone from the source.
        """
        if not self._direct:
            scanned = self._scan()
            return {i: scanned[i][0] for i in _unlisted(listed, _kept(keep, scanned))}
        # direct types: the path is the identifier, so only unlisted ones are read
        return self.confirmed(_unlisted(listed, _kept(keep, _recorded_paths(self.folder))))

    @property
    def lands_at_identifier(self) -> bool:
        """Whether the source's items land at their identifier (then a record's path names its item)."""
        return self._direct

    def confirmed(self, relatives: Iterable[str]) -> dict[str, str]:
        """Those of ``relatives`` whose record is this source's item of that identifier (a source whose items
        land at their identifier).

        Args:
            relatives: Landed paths that have a record file.

        Returns:
            Identifier -> relative path (the same) of each.
        """
        return {relative: relative for relative in relatives if self._record_at(relative, relative)}

    def _scan(self) -> dict[str, tuple[str, dict[str, Any]]]:
        if self._scanned is None:  # names like "schema.table.csv": one scan per sync
            self._scanned = {}
            for relative in _recorded_paths(self.folder):
                record = _read_json(self.folder, relative)
                # a dataset folder's parts have records of their own: the item is the folder (its record)
                if record and record.get("source_id") == self.source_id and "part_of" not in record:
                    self._scanned[str(record.get("identifier"))] = (relative, record)
        return self._scanned

    def _record_at(self, relative: str, identifier: str) -> dict[str, Any] | None:
        try:
            check_identifier(relative)
        except UnsafeNameError:
            return None  # never landed: the sync skips it with the proper reason
        if self._folder_absent(relative.rpartition("/")[0]):
            return None  # a first sync into an empty workspace: one lstat per folder, not a read per item
        record = _read_json(self.folder, relative)
        if record and (record.get("source_id"), record.get("identifier")) == (self.source_id, identifier):
            return record
        return None


    def _folder_absent(self, parent: str) -> bool:
        """Whether ``.lineage/<parent>`` is missing (then no record is in it; a link or a file there: not said)."""
        absent = self._absent.get(parent)
        if absent is None:
            absent = self._absent[parent] = not os.path.lexists(self.folder / LINEAGE_DIR / parent)
        return absent


def _kept(keep: Callable[[str], bool] | None, identifiers: Iterable[str]) -> Iterable[str]:
    return identifiers if keep is None else (i for i in identifiers if keep(i))


def _unlisted(listed: Container[str], identifiers: Iterable[str]) -> Iterator[str]:
    """Those of ``identifiers`` not in ``listed``; a spilled listing answers a batch with one query."""
    if isinstance(listed, _Spill):
        return listed.unlisted(identifiers)
    return (i for i in identifiers if i not in listed)


def _read_json(folder: Path, relative: str) -> dict[str, Any] | None:
    try:
        return read_record(folder, relative)
    except (ValueError, OSError):  # a damaged record: treated as no record, so the item is landed again
        return None


def _recorded_paths(folder: Path) -> Iterable[str]:
    """Relative paths of the landed files that have a record under ``folder/.lineage`` (links not followed)."""
    base = str(folder.absolute() / LINEAGE_DIR)
    for current, dirs, files in os.walk(base):
        if current == base:
            prefix = ""
            if _LOCK_DIR in dirs:
                dirs.remove(_LOCK_DIR)
        else:  # string slicing, not Path objects: a re-sync walks a record per landed item
            prefix = current[len(base) + 1 :].replace(os.sep, "/") + "/"
        yield from (prefix + name[:-5] for name in files if name.endswith(".json") and not name.startswith(TEMP_PREFIX))


def needs_fetch(version: str, record: dict[str, Any] | None) -> bool:
    """Whether an item of ``version`` must be fetched, given its landed record (if any).

    Args:
        version: the version the listing shows.
        record: the landed record, or None when it never landed.

    Returns:
        True when there is no record or its ``source_version`` differs.
    """
    return record is None or str(record.get("source_version")) != version


async def list_requests(connector: DataSourceConnector, exclude: Sequence[str] = ()) -> list[ItemRequest]:
    """Every item of a connected source not excluded, as requests at its current version.

    Args:
        connector: a connected connector.
        exclude: fnmatch globs of identifiers to leave out.

    Returns:
        One request per item, in listing order.
    """
    return (await _list(connector, exclude)).requests


async def _list(connector: DataSourceConnector, exclude: Sequence[str]) -> _Listed:
    items = await connector.list_items()
    return _Listed(
        [ItemRequest(i.path, item_version(i)) for i in items if excluded_by(i.path, exclude) is None],
        {i.path for i in items},
        listing_refusals(connector),
    )


async def sync_source(
    connector: DataSourceConnector,
    folder: Path,
    requested: Sequence[ItemRequest] | None = None,
    *,
    report: SyncReport,
    run_id: str | None = None,
    on_bytes: ProgressCallback | None = None,
    on_item_done: Callable[[], None] = lambda: None,
    on_planned: Callable[[int], None] = lambda count: None,
    concurrency: int = 8,
    options: SyncOptions | None = None,
    force: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """Land the new, changed and damaged items of a source into ``folder``; yield each landed item's record.

    Args:
        connector: a connector of the source, not yet connected.
        folder: the source's workspace folder (``<root>/<source id>``).
        requested: the items to sync; None lists the source, syncs everything and
            reports (and with ``prune``, removes) what the source no longer lists.
        report: filled with what was landed, left unchanged, repaired, skipped,
            removed, pruned and what failed (failures do not stop the rest).
        run_id: recorded in the lineage records (the Dagster run).
        on_bytes: progress listener for the bytes landed.
        on_item_done: called once per item (landed, unchanged, skipped or failed), for progress.
        on_planned: called with the number of items once they are known.
        concurrency: fetches at once.
        options: exclude patterns and prune; default: the source's ``metadata.sync``.
        force: land every item, changed or not.

    Returns:
        An async iterator of the lineage record of each item, as soon as it lands.

    Raises:
        ConfigurationError: a bad ``metadata.sync``.
        DataSourceError: connecting or listing failed (a failing item goes to ``report`` instead).
    """
    options = options if options is not None else sync_options(connector.config)
    async with connector:
        index = LineageIndex(folder, connector.source_id, connector.config.type_name)
        with _Spill() as listed:
            batches: Iterable[list[ItemRequest]]
            if requested is None:
                await _spill_listing(connector, options.exclude, listed)
                report.skipped.extend(listing_refusals(connector))
                on_planned(listed.wanted_count + len(report.skipped))
                batches = listed.wanted(BATCH)
            else:
                chosen = _drop_excluded(requested, options, report)
                on_planned(len(chosen) + len(report.skipped))
                batches = _chunks(chosen, BATCH)
            for wanted in batches:
                settled = report.unchanged_total + len(report.skipped)
                todo = await asyncio.to_thread(plan, wanted, index, report, force)
                for _ in range(report.unchanged_total + len(report.skipped) - settled):
                    on_item_done()
                async for record in _land(connector, folder, wanted, todo, report, run_id=run_id,
                                          on_bytes=on_bytes, on_item_done=on_item_done, concurrency=concurrency):
                    yield record
            if requested is None:
                await asyncio.to_thread(_removed, index, listed, options, report)


async def _land(connector: DataSourceConnector, folder: Path, wanted: Sequence[ItemRequest], todo: dict[str, str],
                report: SyncReport, *, run_id: str | None, on_bytes: ProgressCallback | None,
                on_item_done: Callable[[], None], concurrency: int) -> AsyncIterator[dict[str, Any]]:
    """Fetch one batch's to-do list a chunk at a time; yield each landed record."""
    versions = {r.identifier: r.version for r in wanted if r.version and r.identifier in todo}
    for chunk in _chunks(list(todo), CHUNK):
        # context variables are set around each await: a caller may resume this generator
        # from a different task (Dagster does), which would not see values set across a yield
        with run_context(run_id), on_progress(on_bytes):
            results = await fetch_many_checked(connector, chunk, folder, concurrency=concurrency,
                                               versions={i: versions[i] for i in chunk if i in versions})
        for result in results:
            on_item_done()
            if result.record is None:
                _record_failure(report, result.identifier, result.error)
                continue
            if todo[result.identifier]:
                report.repaired.append(result.identifier)
            report.add_landed(result.record)
            yield result.record


async def _spill_listing(connector: DataSourceConnector, exclude: Sequence[str], listed: _Spill,
                         keep: Callable[[str], bool] | None = None) -> None:
    """The whole listing, streamed to disk: every identifier, and whether it is wanted (not excluded).

    ``keep``: only the items it is true of are stored (a shard's own); ``listed.seen`` counts them all.
    """
    rows: list[tuple[str, str, bool]] = []
    every: list[tuple[str, str]] = []  # the usual full listing: every item wanted, no test per item
    async for pairs in _listed_versions(connector):
        listed.seen += len(pairs)
        if not exclude and keep is None:
            every += pairs
            if len(every) >= BATCH:
                listed.add_wanted(every)
                every = []
            continue
        rows += [(path, version, not exclude or excluded_by(path, exclude) is None)
                 for path, version in pairs if keep is None or keep(path)]
        if len(rows) >= BATCH:
            listed.add(rows)
            rows = []
    listed.add_wanted(every)
    listed.add(rows)


async def _listed_versions(connector: DataSourceConnector) -> AsyncIterator[list[tuple[str, str]]]:
    """The listing as runs of ``(identifier, version)``: the connector's ``iter_versions`` when it has one
    (``LocalFileConnector``: no item built per file), else its items, a run of ``BATCH`` at a time."""
    versions = getattr(connector, "iter_versions", None)
    if versions is not None:
        async for run in versions():
            yield run
        return
    pairs: list[tuple[str, str]] = []
    async for item in connector.iter_items():
        pairs.append((item.path, item_version(item)))
        if len(pairs) >= BATCH:
            yield pairs
            pairs = []
    if pairs:
        yield pairs


class _Spill:
    """A full listing in a temporary SQLite file: planned a batch at a time, asked which identifiers it holds.

    Memory stays flat whatever the source's size (10,000,000 items are ~1 GB of disk,
    a few MiB of memory); identifiers are stored as bytes, so no name breaks it.
    """

    def __init__(self, folder: Path | None = None) -> None:
        """A new spill file in ``folder`` (None: the system's temporary folder)."""
        handle, self.path = tempfile.mkstemp(prefix="da-listing-", suffix=".sqlite", dir=folder)
        os.close(handle)
        self._db = sqlite3.connect(self.path, check_same_thread=False)  # used by one thread at a time
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE listed (id BLOB PRIMARY KEY, version TEXT, wanted INTEGER) WITHOUT ROWID")
        self.count = self.wanted_count = 0  # rows added (a duplicate identifier counts twice)
        self.seen = 0  # items the source listed, stored or not (a shard stores only its own)
        self.refused: list[tuple[str, str]] = []  # (name, why): what the listing itself refused

    def add(self, rows: Sequence[tuple[str, str, bool]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO listed VALUES (?, ?, ?)",
                                 ((_key(i), _key(v), int(w)) for i, v, w in rows))
        self.count += len(rows)
        self.wanted_count += sum(1 for row in rows if row[2])

    def add_wanted(self, pairs: Sequence[tuple[str, str]]) -> None:
        """:meth:`add` of ``(identifier, version)`` pairs all wanted: the text bound as it is, stored as its UTF-8
        bytes by SQLite (no encoding per item in Python); a batch holding a lone surrogate (which SQLite's text
        cannot hold) is encoded as :meth:`add` does."""
        try:
            with self._db:
                self._db.executemany("INSERT OR IGNORE INTO listed VALUES (CAST(? AS BLOB), CAST(? AS BLOB), 1)", pairs)
        except UnicodeEncodeError:  # rolled back: the whole batch again, each text encoded keeping its surrogates
            self.add([(i, v, True) for i, v in pairs])
            return
        self.count += len(pairs)
        self.wanted_count += len(pairs)

    def wanted(self, size: int) -> Iterator[list[ItemRequest]]:
        for rows in self.wanted_rows(size):
            yield [ItemRequest(_text(i), _text(v)) for i, v in rows]

    def wanted_rows(self, size: int) -> Iterator[list[tuple[bytes, bytes]]]:
        """:meth:`wanted` as stored: ``(identifier, version)`` UTF-8 bytes (lone surrogates kept), in key order."""
        last = b""
        while True:
            rows = self._db.execute("SELECT id, version FROM listed WHERE wanted = 1 AND id > ? ORDER BY id LIMIT ?",
                                    (last, size)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield rows

    def __contains__(self, identifier: object) -> bool:
        if not isinstance(identifier, str):
            return False
        return self._db.execute("SELECT 1 FROM listed WHERE id = ?", (_key(identifier),)).fetchone() is not None

    def unlisted(self, identifiers: Iterable[str]) -> Iterator[str]:
        """Those of ``identifiers`` the listing lacks, in their order: one anti-join per ``BATCH`` of them,
        not one query each (a re-sync asks this of every landed item)."""
        for chunk in _batched(identifiers, BATCH):
            with self._db:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS asked (n INTEGER PRIMARY KEY, id BLOB)")
                self._db.execute("DELETE FROM asked")
                self._db.executemany("INSERT INTO asked VALUES (?, ?)", enumerate(_key(i) for i in chunk))
                missing = self._db.execute("SELECT n FROM asked WHERE NOT EXISTS "
                                           "(SELECT 1 FROM listed WHERE listed.id = asked.id) ORDER BY n").fetchall()
            yield from (chunk[n] for (n,) in missing)

    @property
    def db(self) -> sqlite3.Connection:
        """The SQLite connection of the listing (a sync may keep its own tables there; one thread at a time)."""
        return self._db

    def __enter__(self) -> _Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _key(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _batched(values: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def _drop_excluded(requested: Sequence[ItemRequest], options: SyncOptions, report: SyncReport) -> list[ItemRequest]:
    kept = []
    for request in requested:
        pattern = excluded_by(request.identifier, options.exclude)
        if pattern is None:
            kept.append(request)
        else:
            report.skipped.append((request.identifier, f"excluded by the pattern {pattern!r}"))
    return kept


def plan(wanted: Sequence[ItemRequest], index: LineageIndex, report: SyncReport, force: bool = False) -> dict[str, str]:
    """The identifiers to fetch, each with why it is a repair ("" when it is new or changed).

    Unsafe names go to ``report.skipped``, items whose landed file matches go to ``report.unchanged``.

    Args:
        wanted: the items to consider.
        index: the source's landed records.
        report: filled with the skipped and unchanged items.
        force: fetch every safe item, changed or not.

    Returns:
        Identifier to repair reason ("" when new or changed).
    """
    todo: dict[str, str] = {}
    index.refresh()
    for request in wanted:
        try:
            check_identifier(request.identifier)
        except UnsafeNameError as exc:
            report.skipped.append((request.identifier, exc.message))
            continue
        found = index.locate(request.identifier)
        if force or found is None or needs_fetch(request.version, found[1]):  # "" always differs
            todo[request.identifier] = ""
        elif (problem := landed_problem(index.folder, *found)) is not None:
            todo[request.identifier] = problem
        else:
            report.add_unchanged(request.identifier)
    return todo


def _record_failure(report: SyncReport, identifier: str, error: DataSourceError | None) -> None:
    """Unsafe names (a collision, a path outside the workspace) are skipped; other errors fail the item."""
    if isinstance(error, UnsafeNameError):
        report.skipped.append((identifier, error.message))
    elif error is not None:
        report.failed.append(error)


def _removed(index: LineageIndex, listed: _Spill, options: SyncOptions, report: SyncReport) -> None:
    """Report the landed items the source no longer lists; prune them when asked to."""
    gone = index.landed_except(listed)
    report.removed.extend(sorted(gone))
    # an empty listing never prunes: an unmounted share or a wrong prefix looks exactly like that
    if not options.prune or not listed.count:
        return
    for identifier in sorted(gone):
        if prune_landed(index.folder.absolute(), gone[identifier], index.source_id, identifier):
            report.pruned.append(identifier)


async def fetch_one(connector: DataSourceConnector, folder: Path, identifier: str) -> dict[str, Any]:
    """Land one item unconditionally (an explicit request) and return its lineage record.

    Args:
        connector: a connector of the source, not yet connected.
        folder: the source's workspace folder.
        identifier: the item.

    Returns:
        The item's lineage record.

    Raises:
        DataSourceError: connecting, reading or landing failed.
    """
    async with connector:
        return await fetch_checked(connector, identifier, folder)


def _chunks(values: Sequence[_T], size: int) -> Iterable[list[_T]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


__all__ = [
    "CHUNK",
    "ItemRequest",
    "LineageIndex",
    "SyncOptions",
    "SyncReport",
    "excluded_by",
    "fetch_one",
    "item_version",
    "list_requests",
    "needs_fetch",
    "plan",
    "sync_options",
    "sync_source",
]

