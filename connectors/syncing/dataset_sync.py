"""Syncing datasets (item sets, tables): plan per item, land what is new, changed or damaged, summarize per set.

No Dagster here: :func:`sync_datasets` takes the datasets to sync and returns,
per dataset, what it holds now (its manifest entries) and what this sync did
(landed, unchanged, repaired, failed, removed at source). The Dagster asset
turns each outcome into one materialization and one check result, so the
events a run stores are bounded by datasets, not by items.

An item is *unchanged* when its landed version is the listed one and its
landed file is still there with the recorded size; a file that is missing,
has another size, or was marked by a failed integrity check is *repaired*
(fetched again whatever its version).
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConnector
from connectors.checked_fetch import check_identifier, dataset_problem, fetch_many_checked, prune_landed
from connectors.errors import DataSourceError, UnsafeNameError
from connectors.landing.lineage import read_record, run_context
from connectors.landing.names import LINEAGE_DIR, is_safe_name
from connectors.landing.progress import on_progress
from connectors.syncing.dataset_manifest import (
    ManifestEntry,
    manifest_path,
    read_repairs,
    write_manifest_sorted,
    write_repairs,
)
from connectors.syncing.dataset_store import DatasetStore, Row, Table, entry_row, row_entry, row_path, row_version
from connectors.syncing.datasets import Dataset
from connectors.syncing.earlier_state import attach, load_earlier, walk_file, while_loading
from connectors.syncing.recorded import unlisted_recorded
from connectors.syncing.source_sync import (
    BATCH,
    ItemRequest,
    LineageIndex,
    SyncOptions,
    _Spill,
    _spill_listing,
    _text,
    excluded_by,
    listing_refusals,
    sync_options,
)
from connectors.syncing.source_sync import list_requests as list_source

Progress = Callable[[], None]
# items per fetch_many call: each call lands its small files in groups of up to this many, two file-system
# syncs per group. Each syncfs flushes the whole file system (a sharded set's other steps' writes too), so
# small chunks multiplied them: at 64, 3,126 syncs took 14-26 s of a 100,000-file sync (and 12-18 s in each
# of two shards); at 1,024, 196 took ~1.3 s (benchmarks/bench_sharded.py, measured side by side)
CHUNK = 1024


@dataclass
class DatasetOutcome:
    """What one dataset holds after a sync, and what the sync did to it.

    Counts, not items, for a plain set: its entries are in its manifest (``items``,
    ``total_bytes`` sum them) and its landed records are counted (``landed_count``,
    ``bytes_landed``). A table or a partitioned set (one event per item, at most
    ``MAX_PARTITIONS``) also holds its ``entries`` and its ``landed`` records.
    """

    dataset: Dataset
    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    landed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    repaired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    version: str = ""
    manifest: Path | None = None
    landed_count: int = 0
    landed_bytes: int = 0
    items: int = 0
    total_bytes: int = 0

    @property
    def bytes_landed(self) -> int:
        """Bytes landed by this sync in this dataset."""
        return self.landed_bytes

    @property
    def all_checked(self) -> bool:
        """Whether this sync stat-checked (unchanged) or landed every entry the dataset holds now.

        Then the integrity check run right after it, in the same step, need not stat them again
        (see ``da_pipelines.checks.verify_entries``). Not so after a sync of chosen items (the
        others keep their prior entries) or when a fetch failed (its prior entry is kept unchecked).
        """
        return self.unchanged + self.landed_count == self.items

    def add_landed(self, record: dict[str, Any], keep: bool) -> None:
        """Count a landed record; keep it when the dataset's events need it.

        Args:
            record: The item's lineage record.
            keep: Keep the record (a partitioned set's events name each item; others need only the counts).
        """
        self.landed_count += 1
        self.landed_bytes += int(record["size"])
        if keep:
            self.landed.append(record)


@dataclass
class SyncRun:
    """The outcome of :func:`sync_datasets`: per dataset, and the errors of the items that failed."""

    outcomes: list[DatasetOutcome]
    errors: list[DataSourceError]
    listed: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (identifier, why): unsafe or excluded
    pruned: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    """The plan of one listing batch: per item, the datasets holding it, its prior entries, what to do."""

    members: dict[str, list[int]] = field(default_factory=dict)  # identifier -> datasets (indexes)
    priors: dict[str, dict[int, Row]] = field(default_factory=dict)  # as stored (decoded only when needed)
    unchanged: dict[str, ManifestEntry | Row] = field(default_factory=dict)
    fetch: dict[str, str] = field(default_factory=dict)  # identifier -> version to request ("" forces)


@dataclass
class _Sync:
    """What a sync carries from batch to batch: nothing that grows with the listing but counts."""

    folder: Path
    datasets: Sequence[Dataset]
    store: DatasetStore
    index: LineageIndex
    outcomes: list[DatasetOutcome]
    repairs: set[str]  # marked by failed checks (and found damaged while planning)
    nothing_landed: bool  # a first sync: no record to look up
    # the folder walked into the tables ``recorded`` and ``landed`` (connectors.syncing.landed_walk)
    recorded: bool = False
    # a full sync of one whole dataset copies no prior row while every batch keeps its prior rows as they are
    # (_write_unchanged); if all do, the entries are the prior rows and are never copied (_settle_deferred)
    deferring: bool = False
    entries_are_prior: bool = False
    last: bytes | None = None  # the last listed key planned
    errors: list[DataSourceError] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def one_whole_dataset(self) -> bool:
        """Whether the sync's only dataset holds every item (the default set): its unchanged items need no plan."""
        return len(self.datasets) == 1 and self.datasets[0].holds_every_item

    def keeps(self, dataset: int) -> bool:
        """Tables and partitioned sets keep their items' whole records (table facts, one event each)."""
        kept = self.datasets[dataset]
        return kept.kind != "set" or kept.partitioned


async def list_requests(connector: DataSourceConnector, exclude: Sequence[str] = ()) -> list[ItemRequest]:
    """Every item of the source at its current version, but those ``exclude`` matches.

    Args:
        connector: The source, connected.
        exclude: The source's ``metadata.sync.exclude`` globs.

    Returns:
        One request (identifier, version) per listed item.
    """
    async with connector:
        return await list_source(connector, exclude)


def safe_requests(wanted: Sequence[ItemRequest], options: SyncOptions,
                  skipped: list[tuple[str, str]]) -> list[ItemRequest]:
    """The requests that can land: unsafe names and excluded items go to ``skipped`` with the reason.

    Args:
        wanted: The requested items (hostile names).
        options: The source's ``metadata.sync`` (its ``exclude``).
        skipped: Filled with ``(identifier, reason)`` of each request left out.

    Returns:
        The requests whose names are safe to land and not excluded.
    """
    kept = []
    for request in wanted:
        pattern = excluded_by(request.identifier, options.exclude)
        if pattern is not None:
            skipped.append((request.identifier, f"excluded by the pattern {pattern!r}"))
            continue
        try:
            check_identifier(request.identifier)
        except UnsafeNameError as exc:
            skipped.append((request.identifier, exc.message))
            continue
        kept.append(request)
    return kept


async def sync_datasets(
    connector: Callable[[], DataSourceConnector],
    folder: Path,
    datasets: Sequence[Dataset],
    requested: Sequence[ItemRequest] | None = None,
    *,
    run_id: str | None = None,
    on_bytes: Any = None,
    on_item_done: Progress = lambda: None,
    on_items_done: Callable[[int], None] | None = None,
    on_planned: Callable[[int], None] = lambda count: None,
    concurrency: int = 8,
    options: SyncOptions | None = None,
    bucket: Callable[[str], bool] | None = None,
) -> SyncRun:
    """Sync ``datasets``: land their new, changed and damaged items; write each one's manifest.

    Args:
        connector: Builds a fresh (unconnected) connector of the source.
        folder: The source's workspace folder.
        datasets: The datasets to sync.
        requested: Only these items (a version of "" fetches whatever landed); None lists the source.
        run_id: Recorded in the lineage records.
        on_bytes: Progress listener of landed bytes (``connectors.landing.progress``).
        on_item_done: Called once per item landed or failed.
        on_items_done: Called with the number of items the plan settles at once (unchanged, skipped, in no
            dataset); None: ``on_item_done`` once for each of them.
        on_planned: Called with the number of items to fetch, once known.
        concurrency: Fetches at once.
        options: Exclude and prune (the source's ``metadata.sync``; default: the connector's config's).
        bucket: The items this sync answers for (a shard's: ``shard_of(i, N) == k``), None: all. Only
            those are kept from the listing, reported removed at the source and pruned; the
            buckets of several syncs (the shards) split the source between them.

    Returns:
        Each dataset's outcome, the items' errors, how many items were listed, and those skipped or pruned.
    """
    probe = connector()
    options = options if options is not None else sync_options(probe.config)
    landed = (folder / ".lineage").is_dir()
    # one walk of the folder (records, landed files' sizes) instead of stats per item, after a first sync of a
    # source landing at its identifiers
    records = requested is None and landed and LineageIndex(folder, probe.source_id,
                                                            probe.config.type_name).lands_at_identifier
    # a full listing goes to disk, not memory: only the wanted requests are held; what earlier syncs left
    # goes to a second file, loaded meanwhile (connectors.syncing.earlier_state)
    with _Spill() as everything, _Spill() as earlier, walk_file(records) as walked:
        loading = asyncio.ensure_future(asyncio.to_thread(load_earlier, earlier.db, folder, datasets, walked))
        await while_loading(_list_all(probe, options.exclude, everything, bucket) if requested is None
                            else _nothing(), loading)
        attach(everything.db, earlier.path, walked)
        return await _sync_listed(connector, folder, datasets, requested, everything, probe, options, run_id=run_id,
                                  on_bytes=on_bytes, on_item_done=on_item_done, on_planned=on_planned,
                                  on_items_done=on_items_done or _each(on_item_done),
                                  concurrency=concurrency, bucket=bucket, landed=landed, records=records)


def _each(on_item_done: Progress) -> Callable[[int], None]:
    """A count of items done reported item by item."""
    def done(count: int) -> None:
        for _ in range(count):
            on_item_done()
    return done


async def _nothing() -> None:
    return None


async def _sync_listed(connector: Callable[[], DataSourceConnector], folder: Path, datasets: Sequence[Dataset],
                       requested: Sequence[ItemRequest] | None, everything: _Spill, probe: DataSourceConnector,
                       options: SyncOptions, *, run_id: str | None, on_bytes: Any, on_item_done: Progress,
                       on_items_done: Callable[[int], None],
                       on_planned: Callable[[int], None], concurrency: int,
                       bucket: Callable[[str], bool] | None = None, landed: bool, records: bool) -> SyncRun:
    full = requested is None
    if not full:  # chosen items go through the same file as a listing: one code path, batches in key order
        everything.add([(r.identifier, r.version, True) for r in requested or []])
    sync = _Sync(folder=folder, datasets=datasets, store=DatasetStore(everything.db, tables=("entries",)),
                 index=LineageIndex(folder, probe.source_id, probe.config.type_name),
                 outcomes=[DatasetOutcome(dataset=d) for d in datasets],
                 repairs={i for d in datasets for i in read_repairs(folder, d.file_name)},
                 nothing_landed=not landed, recorded=records)
    sync.deferring = full and sync.one_whole_dataset
    on_planned(everything.wanted_count)
    previous: bytes | None = None
    async with connector() as conn:
        for rows in everything.wanted_rows(BATCH):
            batch = await asyncio.to_thread(_plan, sync, rows, previous, options, on_items_done)
            previous = sync.last = rows[-1][0]
            await _land(sync, conn, batch, run_id=run_id, on_bytes=on_bytes, on_item_done=on_item_done,
                        concurrency=concurrency)
    sync.skipped.extend(everything.refused)  # refused by the listing itself
    await asyncio.to_thread(_settle_deferred, sync)
    for number in range(len(datasets)):
        await asyncio.to_thread(_finish, sync, number, full)
    pruned: list[str] = []
    if full:
        # gone at the source: every landed item whose record says so, not only last run's manifest,
        # so an item stays reported (and can be pruned later) as long as its file is there; none when
        # no record existed before this sync (each landed since was listed): no walk of its records
        gone = {} if sync.nothing_landed else await asyncio.to_thread(_gone, sync, everything, bucket)
        for outcome in sync.outcomes:
            outcome.removed = sorted(i for i in gone if outcome.dataset.contains(i))
        if options.prune and everything.seen:  # an empty listing never prunes (an unmounted share)
            pruned = await asyncio.to_thread(_prune, folder, probe.source_id, gone)
    listed = everything.wanted_count if full else len(requested or [])
    return SyncRun(outcomes=sync.outcomes, errors=sync.errors, listed=listed, skipped=sync.skipped, pruned=pruned)


async def _list_all(connector: DataSourceConnector, exclude: Sequence[str], spill: _Spill,
                    bucket: Callable[[str], bool] | None = None) -> None:
    """Every item the source lists (of ``bucket``, when given), streamed to ``spill`` (excluded ones too:
    an excluded item is not gone)."""
    async with connector:
        await _spill_listing(connector, exclude, spill, bucket)
    spill.refused = listing_refusals(connector)


def _gone(sync: _Sync, listed: _Spill, bucket: Callable[[str], bool] | None) -> dict[str, str]:
    """Every landed item (of ``bucket``) the listing lacks: identifier -> landed path."""
    if not sync.recorded:
        return sync.index.landed_except(listed, bucket)
    unlisted = unlisted_recorded(listed.db)
    return sync.index.confirmed(unlisted if bucket is None else (i for i in unlisted if bucket(i)))


def _prune(folder: Path, source_id: str, gone: dict[str, str]) -> list[str]:
    """Remove the landed file and record of every item gone at the source (``metadata.sync.prune``)."""
    return [i for i, relative in sorted(gone.items()) if prune_landed(folder.absolute(), relative, source_id, i)]


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _versions(fetch: dict[str, str], chunk: Sequence[str]) -> dict[str, str]:
    """The versions to request for ``chunk`` (those forced, "", are left out): work bounded by the chunk."""
    return {i: fetch[i] for i in chunk if fetch[i]}


def _plan(sync: _Sync, rows: Sequence[tuple[bytes, bytes]], previous: bytes | None, options: SyncOptions,
          on_items_done: Callable[[int], None]) -> _Batch:
    """Plan one listing batch (stored rows: the items after ``previous`` up to the batch's last, in key order)."""
    last = rows[-1][0]
    kept: set[bytes] = set()
    if sync.one_whole_dataset:  # the usual re-sync: items at their landed version found by one query
        at_sight, others = sync.store.prior_rows_by_sight(previous, last, recorded=sync.recorded)
        batch = _Batch(priors=others)
        kept = _unchanged_at_sight(sync, batch, at_sight, options)
    else:
        batch = _Batch(priors=sync.store.prior_rows_between(previous, last))
    wanted = [ItemRequest(_text(i), _text(v)) for i, v in rows if i not in kept]
    safe = safe_requests(wanted, options, sync.skipped)
    everywhere = [n for n, d in enumerate(sync.datasets) if d.holds_every_item]
    elsewhere = [(n, d) for n, d in enumerate(sync.datasets) if not d.holds_every_item]
    for request in safe:
        # a dataset of every item (the default set) needs no test per item
        holders = everywhere if not elsewhere else sorted(
            everywhere + [n for n, d in elsewhere if d.contains(request.identifier)])
        if holders:
            batch.members[request.identifier] = holders
            _decide(sync, batch, request)
    _write_unchanged(sync, batch, previous, last)
    for identifier in batch.unchanged:
        for n in batch.members[identifier]:
            sync.outcomes[n].unchanged += 1
    if kept:
        sync.outcomes[0].unchanged += len(kept)
    on_items_done(len(rows) - len(batch.fetch))  # unchanged, skipped, or in no dataset: done now
    return batch


def _unchanged_at_sight(sync: _Sync, batch: _Batch, at_sight: Sequence[Row], options: SyncOptions) -> set[bytes]:
    """Those of the batch's items listed at the version their prior row holds (``at_sight``: their rows) that are
    safe, not excluded, not marked for repair, and whose landed file is intact: unchanged, with no request or entry
    built. The others' rows go to ``batch.priors`` and they are planned item by item. Only when the sync's one
    dataset holds every item (no test per item).
    """
    kept: set[bytes] = set()
    for row in at_sight:
        identifier = _text(row[0])
        if identifier in sync.repairs or (options.exclude and excluded_by(identifier, options.exclude)) \
                or not is_safe_name(identifier) \
                or not (sync.recorded or _intact(sync.folder, row_path(row), row[4], row[3])):
            batch.priors[identifier] = {0: row}
        else:
            kept.add(row[0])
    return kept


def _write_unchanged(sync: _Sync, batch: _Batch, previous: bytes | None, last: bytes) -> None:
    """Write the batch's unchanged entries: the prior rows of its key range copied in one statement, those
    that are not an unchanged item's entry in that dataset taken out again, and the others written.

    A batch whose every prior row is an unchanged item's, with nothing else to write, copies nothing while
    every batch before it did the same (``sync.deferring``); the first one that does not copies them all first.
    """
    if sync.deferring:
        if not batch.priors and not batch.unchanged and not batch.fetch:
            return
        sync.deferring = False
        if previous is not None:
            sync.store.copy_prior_between(None, previous)
    sync.store.copy_prior_between(previous, last)
    dropped: list[tuple[bytes, int]] = []
    for identifier, per_dataset in batch.priors.items():
        entry = batch.unchanged.get(identifier)
        holders = batch.members.get(identifier, ()) if entry is not None else ()
        for n, row in per_dataset.items():
            if n not in holders or not _same_entry(row, entry):
                dropped.append((row[0], n))
    sync.store.drop_entries(dropped)
    written = [_entry_row(n, entry) for i, entry in batch.unchanged.items() for n in batch.members[i]
               if not _same_entry(batch.priors.get(i, {}).get(n), entry)]
    sync.store.add_rows("entries", written)


def _same_entry(row: Row | None, entry: ManifestEntry | Row | None) -> bool:
    """Whether a prior row already holds ``entry`` (then its copy is the entry written)."""
    if row is entry:  # the usual case: the unchanged entry is this very prior row
        return True
    if row is None or entry is None:
        return False
    if isinstance(entry, ManifestEntry):
        entry = entry_row(row[1], entry)
    return row[2:] == entry[2:]


def _entry_row(dataset: int, entry: ManifestEntry | Row) -> Row:
    """The row an unchanged entry is written as: a prior row carried over as stored, or a record's entry."""
    if isinstance(entry, ManifestEntry):
        return entry_row(dataset, entry)
    return (entry[0], dataset, *entry[2:])


def _decide(sync: _Sync, batch: _Batch, request: ItemRequest) -> None:
    """Unchanged, repair (fetch whatever the version) or fetch (new, changed or forced)."""
    identifier, version = request.identifier, request.version
    if not version:
        batch.fetch[identifier] = ""
        return
    priors = batch.priors.get(identifier)
    row = next(iter(priors.values())) if priors else None  # any dataset's prior entry: the item landed once
    if row is not None and row_version(row) == version:  # the usual re-sync: the manifest proves the version
        _keep_or_repair(sync, batch, identifier, row, row_path(row), row[4], row[3])
        return
    record = sync.index.get(identifier) if not sync.nothing_landed else None
    entry = ManifestEntry.from_record(record, sync.folder) if record else None
    if entry is None or entry.version != version:
        batch.fetch[identifier] = version
        return
    _keep_or_repair(sync, batch, identifier, entry, entry.path, entry.size, entry.sha256)


def _keep_or_repair(sync: _Sync, batch: _Batch, identifier: str, entry: ManifestEntry | Row, path: str, size: int,
                    sha256: str) -> None:
    """An item at its landed version: unchanged when its landed file is intact, else fetched again (a repair)."""
    if identifier in sync.repairs or not _intact(sync.folder, path, size, sha256):
        batch.fetch[identifier] = ""
        sync.repairs.add(identifier)
    else:
        batch.unchanged[identifier] = entry


async def _land(sync: _Sync, conn: DataSourceConnector, batch: _Batch, *, run_id: str | None, on_bytes: Any,
                on_item_done: Progress, concurrency: int) -> None:
    """Fetch the batch's to-do list a chunk at a time; write each item's entries, count per dataset."""
    for chunk in _chunks(list(batch.fetch), CHUNK):
        # context variables are set around each await: Dagster may resume this coroutine in another task
        with run_context(run_id), on_progress(on_bytes):
            # checked: a plugin's returned path is verified and its missing record written
            # this chunk's versions only: a mapping over the whole plan per chunk made landing quadratic
            results = await fetch_many_checked(conn, chunk, sync.folder, concurrency=concurrency,
                                               versions=_versions(batch.fetch, chunk))
        rows: list[tuple[int, ManifestEntry]] = []
        for result in results:
            on_item_done()
            if isinstance(result.error, UnsafeNameError):
                sync.skipped.append((result.identifier, result.error.message))
            elif result.error is not None:
                sync.errors.append(result.error)
            rows.extend(_landed_rows(sync, batch, result.identifier, result.record))
        await asyncio.to_thread(sync.store.add, "entries", rows)


def _landed_rows(sync: _Sync, batch: _Batch, identifier: str,
                 record: dict[str, Any] | None) -> list[tuple[int, ManifestEntry]]:
    """An item's entries after its fetch: the landed one, or (failed) the previously landed, still intact."""
    rows = []
    entry = ManifestEntry.from_record(record, sync.folder) if record is not None else None
    for n in batch.members[identifier]:
        outcome = sync.outcomes[n]
        if record is not None and entry is not None:
            outcome.add_landed(record, sync.keeps(n))
            rows.append((n, entry))
            if identifier in sync.repairs:
                outcome.repaired.append(identifier)
            continue
        outcome.failed.append(identifier)
        prior = batch.priors.get(identifier, {}).get(n)
        if prior is not None:
            rows.append((n, row_entry(prior)))
    return rows


def _intact(folder: Path, path: str, size: int, sha256: str) -> bool:
    """The landed file is a regular file (not a link) of the recorded size, and its lineage record exists.

    Two cheap stats on string paths, no hashing: this runs for every item of every re-sync.

    Args:
        folder: The source's folder.
        path: The landed file, relative to ``folder`` (the entry's).
        size: Its recorded size.
        sha256: Its recorded sha256 (a dataset folder's, checked against the folder's record).
    """
    base = str(folder)
    try:
        info = os.lstat(f"{base}/{path}")
        os.stat(f"{base}/{LINEAGE_DIR}/{path}.json")
    except OSError:
        return False
    if stat.S_ISDIR(info.st_mode):  # a dataset folder of parts: each part against its record (stats)
        try:
            record = read_record(folder, path)
        except ValueError:  # a damaged record: fetched again
            return False
        return record is not None and record.get("sha256") == sha256 and dataset_problem(
            folder, path, record) is None
    return stat.S_ISREG(info.st_mode) and info.st_size == size


def _settle_deferred(sync: _Sync) -> None:
    """After the batches of a sync that deferred its copies: the entries are the prior rows when every batch kept
    its prior rows and no prior row lies past the last listed item (one removed at the source); else they are
    copied now."""
    if not sync.deferring:
        return
    sync.deferring = False
    if sync.last is not None and not sync.store.prior_after(sync.last):
        sync.entries_are_prior = True
    elif sync.last is not None:
        sync.store.copy_prior_between(None, sync.last)


def _finish(sync: _Sync, number: int, full: bool) -> None:
    """One dataset after the sync: its totals, its data version, and its manifest (written when it changed)."""
    store, dataset, outcome = sync.store, sync.datasets[number], sync.outcomes[number]
    if not full:  # chosen items: the others keep their prior entries
        store.keep_prior(number)
    held: Table = "prior" if sync.entries_are_prior else "entries"  # the same rows: not copied
    outcome.items, outcome.total_bytes = store.totals(held, number)
    outcome.version = store.data_version(held, number)
    prior_items = outcome.items if held == "prior" else store.totals("prior", number)[0]  # the same rows: once
    # nothing changed (a re-sync's usual case): one SQL comparison instead of a second digest of every entry
    changed = not sync.entries_are_prior and not store.same_as_prior(number) \
        and outcome.version != store.data_version("prior", number)
    if changed or not prior_items or (full and not sync.entries_are_prior and store.dropped(number)):
        outcome.manifest = write_manifest_sorted(
            sync.folder, dataset.file_name, store.entries(held, number), outcome.items,
            {"dataset": dataset.label, "data_version": outcome.version})
    else:
        outcome.manifest = manifest_path(sync.folder, dataset.file_name)
    if sync.keeps(number):
        outcome.entries = {e.identifier: e for e in store.entries(held, number)}
    write_repairs(sync.folder, dataset.file_name, set(outcome.failed) & sync.repairs)
