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
from connectors.checked_fetch import check_identifier, fetch_many_checked, prune_landed
from connectors.errors import DataSourceError, UnsafeNameError
from connectors.landing.lineage import run_context
from connectors.landing.names import LINEAGE_DIR
from connectors.landing.progress import on_progress
from connectors.syncing.dataset_manifest import (
    ManifestEntry,
    data_version,
    read_manifest,
    read_repairs,
    write_manifest,
    write_repairs,
)
from connectors.syncing.source_sync import (
    SyncOptions,
    _Spill,
    _spill_listing,
    excluded_by,
    listing_refusals,
    sync_options,
)
from connectors.syncing.source_sync import list_requests as list_source
from da_pipelines.datasets import Dataset
from da_pipelines.sync import ItemRequest, LineageIndex

Progress = Callable[[], None]
# items per fetch_many call: each call lands its small files in groups, one file-system sync per group
# (measured: 64 beats both 32 and 512 on 10,000 files of 4 KiB)
CHUNK = 64


@dataclass
class DatasetOutcome:
    """What one dataset holds after a sync, and what the sync did to it."""

    dataset: Dataset
    entries: dict[str, ManifestEntry]
    landed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    repaired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    version: str = ""
    manifest: Path | None = None

    @property
    def bytes_landed(self) -> int:
        """Bytes landed by this sync in this dataset."""
        return sum(int(record["size"]) for record in self.landed)


@dataclass
class SyncRun:
    """The outcome of :func:`sync_datasets`: per dataset, and the errors of the items that failed."""

    outcomes: list[DatasetOutcome]
    errors: list[DataSourceError]
    listed: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (identifier, why): unsafe or excluded
    pruned: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    members: dict[Dataset, dict[str, str]]  # dataset -> identifier -> wanted version
    priors: dict[Dataset, dict[str, ManifestEntry]]
    unchanged: dict[str, ManifestEntry] = field(default_factory=dict)
    fetch: dict[str, str] = field(default_factory=dict)  # identifier -> version to request ("" forces)
    repairs: set[str] = field(default_factory=set)


async def list_requests(connector: DataSourceConnector, exclude: Sequence[str] = ()) -> list[ItemRequest]:
    """Every item of the source at its current version, but those ``exclude`` matches."""
    async with connector:
        return await list_source(connector, exclude)


def safe_requests(wanted: Sequence[ItemRequest], options: SyncOptions,
                  skipped: list[tuple[str, str]]) -> list[ItemRequest]:
    """The requests that can land: unsafe names and excluded items go to ``skipped`` with the reason."""
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
    on_planned: Callable[[int], None] = lambda count: None,
    concurrency: int = 8,
    options: SyncOptions | None = None,
) -> SyncRun:
    """Sync ``datasets``: land their new, changed and damaged items; write each one's manifest.

    Args:
        connector: builds a fresh (unconnected) connector of the source.
        folder: the source's workspace folder.
        datasets: the datasets to sync.
        requested: only these items (a version of "" fetches whatever landed); None lists the source.
        run_id: recorded in the lineage records.
        on_bytes, on_item_done, on_planned: progress listeners.
        concurrency: fetches at once.
        options: exclude and prune (the source's ``metadata.sync``; default: the connector's config's).
    """
    probe = connector()
    options = options if options is not None else sync_options(probe.config)
    with _Spill() as everything:  # a full listing goes to disk, not memory: only the wanted requests are held
        if requested is None:
            await _list_all(probe, options.exclude, everything)
        return await _sync_listed(connector, folder, datasets, requested, everything, probe, options, run_id=run_id,
                                  on_bytes=on_bytes, on_item_done=on_item_done, on_planned=on_planned,
                                  concurrency=concurrency)


async def _sync_listed(connector: Callable[[], DataSourceConnector], folder: Path, datasets: Sequence[Dataset],
                       requested: Sequence[ItemRequest] | None, everything: _Spill, probe: DataSourceConnector,
                       options: SyncOptions, *, run_id: str | None, on_bytes: Any, on_item_done: Progress,
                       on_planned: Callable[[int], None], concurrency: int) -> SyncRun:
    full = requested is None
    skipped: list[tuple[str, str]] = []
    # a full listing drops excluded items silently; an excluded item asked for by name is reported skipped
    listed = ([r for batch in everything.wanted(4096) for r in batch] if full else list(requested or []))
    wanted = safe_requests(listed, options, skipped)
    skipped.extend(everything.refused)  # refused by the listing itself
    index = LineageIndex(folder, probe.source_id, probe.config.type_name)
    plan = _plan(folder, datasets, wanted, index, forced={r.identifier for r in wanted if not r.version})
    on_planned(sum(1 for _ in _union(plan.members)))
    for _ in plan.unchanged:
        on_item_done()
    landed: dict[str, dict[str, Any]] = {}
    errors: list[DataSourceError] = []
    # items of tables and partitioned sets keep their whole record (table facts, one materialization each)
    whole = {i for d in datasets if d.kind != "set" or d.partitioned for i in plan.members[d]}
    if plan.fetch:
        # the plan already compared versions and landed files: fetch exactly these, no second lookup
        async with connector() as conn:
            for chunk in _chunks(list(plan.fetch), CHUNK):
                # context variables are set around each await: Dagster may resume this coroutine in another task
                with run_context(run_id), on_progress(on_bytes):
                    # checked: a plugin's returned path is verified and its missing record written
                    # this chunk's versions only: a mapping over the whole plan per chunk made landing quadratic
                    results = await fetch_many_checked(conn, chunk, folder, concurrency=concurrency,
                                                       versions=_versions(plan.fetch, chunk))
                for result in results:
                    on_item_done()
                    if isinstance(result.error, UnsafeNameError):
                        skipped.append((result.identifier, result.error.message))
                    elif result.error is not None:
                        errors.append(result.error)
                    elif result.record is not None:
                        landed[result.identifier] = _kept(result.record, result.identifier in whole)
    outcomes = [_outcome(folder, dataset, plan, landed, full) for dataset in datasets]
    pruned: list[str] = []
    if full:
        # gone at the source: every landed item whose record says so, not only last run's manifest,
        # so an item stays reported (and can be pruned later) as long as its file is there
        gone = await asyncio.to_thread(index.landed_except, everything)
        for outcome in outcomes:
            outcome.removed = sorted(i for i in gone if outcome.dataset.contains(i))
        if options.prune and everything.count:  # an empty listing never prunes (an unmounted share)
            pruned = await asyncio.to_thread(_prune, folder, probe.source_id, gone)
    return SyncRun(outcomes=outcomes, errors=errors, listed=len(listed), skipped=skipped, pruned=pruned)


async def _list_all(connector: DataSourceConnector, exclude: Sequence[str], spill: _Spill) -> None:
    """Every item the source lists, streamed to ``spill`` (excluded ones too: an excluded item is not gone)."""
    async with connector:
        await _spill_listing(connector, exclude, spill)
    spill.refused = listing_refusals(connector)


def _prune(folder: Path, source_id: str, gone: dict[str, str]) -> list[str]:
    """Remove the landed file and record of every item gone at the source (``metadata.sync.prune``)."""
    return [i for i, relative in sorted(gone.items()) if prune_landed(folder.absolute(), relative, source_id, i)]


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


_MANIFEST_KEYS = ("identifier", "local_path", "sha256", "size", "source_version")


def _kept(record: dict[str, Any], whole: bool) -> dict[str, Any]:
    """What a sync keeps of a landed item's record until its outcome is built: for an item of a plain set,
    only what its manifest entry and the counts need (a whole record weighs ~1.5 KiB, a million of them GiBs)."""
    return record if whole else {key: record[key] for key in _MANIFEST_KEYS if key in record}


def _versions(fetch: dict[str, str], chunk: Sequence[str]) -> dict[str, str]:
    """The versions to request for ``chunk`` (those forced, "", are left out): work bounded by the chunk."""
    return {i: fetch[i] for i in chunk if fetch[i]}


def _union(members: dict[Dataset, dict[str, str]]) -> set[str]:
    return {identifier for items in members.values() for identifier in items}


def _plan(folder: Path, datasets: Sequence[Dataset], wanted: Sequence[ItemRequest], index: LineageIndex,
          forced: set[str]) -> _Plan:
    members = {d: {r.identifier: r.version for r in wanted if d.contains(r.identifier)} for d in datasets}
    plan = _Plan(members=members, priors={d: read_manifest(folder, d.file_name) for d in datasets})
    known = {i: e for prior in plan.priors.values() for i, e in prior.items()}
    plan.repairs = {i for d in datasets for i in read_repairs(folder, d.file_name)}
    nothing_landed = not (folder / ".lineage").is_dir()  # a first sync: no record to look up
    for identifier, version in {i: v for items in members.values() for i, v in items.items()}.items():
        if identifier in forced:
            plan.fetch[identifier] = ""
            continue
        entry = known.get(identifier)
        if (entry is None or entry.version != version) and nothing_landed is False:
            record = index.get(identifier)
            entry = ManifestEntry.from_record(record, folder) if record else None
        _decide(plan, folder, identifier, version, entry)
    return plan


def _decide(plan: _Plan, folder: Path, identifier: str, version: str, entry: ManifestEntry | None) -> None:
    """Unchanged, repair (fetch whatever the version) or fetch (new or changed)."""
    if entry is None or entry.version != version:
        plan.fetch[identifier] = version
    elif identifier in plan.repairs or not _intact(folder, entry):
        plan.fetch[identifier] = ""
        plan.repairs.add(identifier)
    else:
        plan.unchanged[identifier] = entry


def _intact(folder: Path, entry: ManifestEntry) -> bool:
    """The landed file is a regular file (not a link) of the recorded size, and its lineage record exists.

    Two cheap stats on string paths, no hashing: this runs for every item of every re-sync.
    """
    base = str(folder)
    try:
        info = os.lstat(f"{base}/{entry.path}")
        os.stat(f"{base}/{LINEAGE_DIR}/{entry.path}.json")
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == entry.size


def _outcome(folder: Path, dataset: Dataset, plan: _Plan, landed: dict[str, dict[str, Any]],
             full: bool) -> DatasetOutcome:
    """One dataset's entries after the sync, its counts, and its manifest (written when it changed)."""
    prior = plan.priors[dataset]
    members = plan.members[dataset]
    outcome = DatasetOutcome(dataset=dataset, entries={} if full else dict(prior))
    for identifier in members:
        if identifier in landed:
            outcome.landed.append(landed[identifier])
            outcome.entries[identifier] = ManifestEntry.from_record(landed[identifier], folder)
            if identifier in plan.repairs:
                outcome.repaired.append(identifier)
        elif identifier in plan.unchanged:
            outcome.unchanged += 1
            outcome.entries[identifier] = plan.unchanged[identifier]
        else:
            outcome.failed.append(identifier)
            if identifier in prior:  # the previously landed version is still there, intact
                outcome.entries[identifier] = prior[identifier]
    if full:
        outcome.removed = sorted(set(prior) - set(members))
    outcome.version = data_version(outcome.entries.values())
    if outcome.version != data_version(prior.values()) or not prior or outcome.removed:
        outcome.manifest = write_manifest(folder, dataset.file_name, outcome.entries.values(),
                                          {"dataset": dataset.key.to_user_string(), "data_version": outcome.version})
    else:
        outcome.manifest = folder / ".lineage" / ".sets" / f"{dataset.file_name}.manifest.jsonl"
    write_repairs(folder, dataset.file_name, set(outcome.failed) & plan.repairs)
    return outcome
