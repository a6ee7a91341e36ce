"""The asset model of one source: the remote (external) asset and one asset per dataset.

* ``[N, "remote"]``: an external asset, the data as it sits in the source;
* one asset per dataset (``connectors.syncing.datasets``): ``[N, set]`` for an item set,
  ``[N, schema, table]`` for a table; all of a source's unpartitioned datasets
  are materialized by one multi-asset op, ``N_sync_items``, which lists the
  source once and lands the new, changed and damaged items of the selected
  datasets. Each dataset gets **one** materialization (a summary: counts, bytes,
  manifest, data version) and **one** check result per run, whatever its size;
* a set that opts in to ``partitioned: true`` is its own asset with one dynamic
  partition per item (keys read as the identifiers); materializing a partition
  lands that item, and a sync of the source registers new items as partitions
  and deletes those of removed items.
"""

import asyncio
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    asset,
    multi_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from connectors.errors import ConfigurationError, DataSourceError
from connectors.landing.lineage import run_context
from connectors.landing.progress import on_progress
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.pipeline_settings import MAX_PARTITIONS
from connectors.secrets.references import redact
from connectors.syncing.dataset_manifest import manifest_items, write_repairs
from connectors.syncing.dataset_sync import DatasetOutcome, SyncRun, sync_datasets
from connectors.syncing.datasets import Dataset
from connectors.syncing.progress_log import ProgressLog
from connectors.syncing.source_sync import ItemRequest, LineageIndex, fetch_one, sync_options
from da_pipelines.checks import verify_manifest
from da_pipelines.deploy import exit_with_parent, pool_of
from da_pipelines.incremental_tables import (
    IncrementalOutcome,
    current_record,
    incremental_events,
    is_incremental,
    sync_incremental,
    verify_parts,
)
from da_pipelines.jobs import SyncConfig, failure_for
from da_pipelines.partitions import sync_partitions
from da_pipelines.resources import SourceResource
from da_pipelines.translator import (
    CHECK_NAME,
    WORKSPACE_KEY,
    SourceKeys,
    dataset_metadata,
    item_from_partition_key,
    item_partition_key,
    materialization_metadata,
    source_and_folder,
)


def datasets_asset(keys: SourceKeys, specs: dict[Dataset, AssetSpec]) -> AssetsDefinition | None:
    """``N_sync_items``: one op for every unpartitioned dataset of the source, subsettable.

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        specs: Each dataset's asset spec (its translated key, group, kinds and metadata).

    Returns:
        The multi-asset, or None when every dataset of the source is partitioned or sharded.

    Raises:
        dagster.Failure: (when it runs) items failed or the source could not be listed; retried by the
            ``RetryPolicy`` only when some error is retryable.
    """
    datasets = [d for d in keys.datasets if not d.partitioned and not d.sharded]  # sharded: da_pipelines.sharded
    if not datasets:
        return None
    by_key = {specs[d].key: d for d in datasets}
    checks = [AssetCheckSpec(CHECK_NAME, asset=key, description=(
        "The dataset's landed files exist with their recorded size, and their sha256 (sampled or all) "
        "matches their lineage; damaged files are repaired by the next sync.")) for key in by_key]

    @multi_asset(name=keys.op_name, specs=[specs[d] for d in datasets], check_specs=checks, can_subset=True,
                 required_resource_keys={keys.resource_key, WORKSPACE_KEY}, retry_policy=keys.retry_policy,
                 op_tags={"da/source": keys.source.id}, pool=pool_of(keys.source.id))
    async def _sync(context: AssetExecutionContext, config: SyncConfig):  # type: ignore[no-untyped-def]  # dagster reads the annotation
        exit_with_parent()  # a step worker orphaned by a killed run worker must not land on
        source, folder = source_and_folder(context.resources, keys)
        selected = [d for k, d in by_key.items() if k in context.selected_asset_keys]
        whole = len(selected) == len(by_key)
        tables = [d for d in selected if is_incremental(d, keys.source)]  # synced by their cursor
        selected = [d for d in selected if d not in tables]
        partitioned = [d for d in keys.datasets if d.partitioned
                       and (whole or any(d.contains(i.identifier) for i in config.items))]
        run = (await _run_sync(context, keys, source, folder, [*selected, *partitioned], config,
                               skip={d.name for d in tables})
               if selected or partitioned else SyncRun(outcomes=[], errors=[], listed=0))
        synced_tables = await _sync_tables(context, source, folder, tables, config)
        for table in synced_tables:
            key = next(k for k, d in by_key.items() if d == table.dataset)
            for table_event in incremental_events(table, key, keys.translator.get_uri(table.dataset)):
                yield table_event
        index = LineageIndex(folder, source.source_id, source.connector_type())
        for outcome in run.outcomes:
            if outcome.dataset.partitioned:
                for event in _partition_events(context, keys, outcome):
                    yield event
                continue
            key = next(k for k, d in by_key.items() if d == outcome.dataset)
            record = _table_record(outcome, index)
            skipped = [s for s in run.skipped if outcome.dataset.contains(s[0])]
            yield MaterializeResult(asset_key=key, metadata=dataset_metadata(outcome, keys.translator.get_uri(
                outcome.dataset), record, skipped), data_version=DataVersion(outcome.version))
        synced = {outcome.dataset: outcome for outcome in run.outcomes}
        for key, dataset in by_key.items():
            if AssetCheckKey(key, CHECK_NAME) in context.selected_asset_check_keys:
                yield (_parts_check(folder, key, dataset) if dataset in tables
                       else _check_result(keys, folder, key, dataset, synced.get(dataset)))
        errors = [*run.errors, *(t.error for t in synced_tables if t.error is not None)]
        if errors:
            raise failure_for(errors)

    return _sync


async def _sync_tables(context: AssetExecutionContext, source: SourceResource, folder: Path,
                      tables: Sequence[Dataset], config: SyncConfig) -> list[IncrementalOutcome]:
    """Sync each incremental table (those the run config names, when it names items); report the others."""
    outcomes = []
    root = getattr(context.resources, WORKSPACE_KEY).root
    for dataset in tables:
        if config.items and not any(i.identifier == dataset.name for i in config.items):
            outcomes.append(IncrementalOutcome(dataset, current_record(folder, dataset), synced=False))
            continue
        with workspace_root(root):
            outcome = await sync_incremental(source.build_connector, folder, dataset, full=config.full_refresh,
                                             run_id=context.run.run_id)
        record = outcome.record or {}
        context.log.info(f"{dataset.name}: " + (redact(str(outcome.error)) if outcome.error else (
            f"{record.get('last_sync')} sync, {record.get('rows_synced')} rows added, "
            f"{len(record.get('parts') or [])} parts, cursor up to {record.get('cursor_max')}")))
        outcomes.append(outcome)
    return outcomes


def _parts_check(folder: Path, key: AssetKey, dataset: Dataset) -> AssetCheckResult:
    """The integrity check of an incremental table: each part against its lineage record."""
    damaged, facts = verify_parts(folder, dataset)
    return AssetCheckResult(asset_key=key, check_name=CHECK_NAME, passed=not damaged, metadata=facts)


async def _run_sync(context: AssetExecutionContext, keys: SourceKeys, source: SourceResource, folder: Path,
                    datasets: Sequence[Dataset], config: SyncConfig, skip: set[str] | None = None) -> SyncRun:
    """Sync ``datasets`` (chosen items only when the run config names some, but ``skip``), logging progress."""
    chosen = [i for i in config.items if i.identifier not in (skip or set())]
    requested = [ItemRequest(i.identifier, i.version) for i in chosen] if config.items else None
    progress = ProgressLog(context.log.info, total_items=len(requested) if requested else 0)
    root = getattr(context.resources, WORKSPACE_KEY).root
    try:
        with workspace_root(root):  # trusted: no link below it is followed (the agent writes there)
            await asyncio.to_thread(sweep_workspace, folder)  # temporaries of a killed run
            run = await sync_datasets(source.build_connector, folder, datasets, requested, run_id=context.run.run_id,
                                      on_bytes=progress.on_bytes, on_item_done=progress.item_done,
                                      on_items_done=progress.items_done, on_planned=progress.set_total,
                                      concurrency=keys.settings.concurrency,
                                      options=sync_options(keys.source))
    except DataSourceError as exc:  # listing or connecting failed: retried only when retryable
        raise failure_for([exc], before_items=True) from exc
    _log_skipped(context, run)
    pruned_now = set(run.pruned)  # a set: one lookup per removed item, not a scan of the list
    for outcome in run.outcomes:
        skipped = sum(1 for identifier, _ in run.skipped if outcome.dataset.contains(identifier))
        pruned = sum(1 for identifier in outcome.removed if identifier in pruned_now)
        context.log.info(  # the words of SyncReport.summary(), as `da-sources fetch --all` prints them
            f"{outcome.dataset.label}: {outcome.landed_count} landed, {outcome.unchanged} unchanged, "
            f"{len(outcome.repaired)} repaired, {skipped} skipped, {len(outcome.removed)} removed at source, "
            f"{pruned} pruned, {len(outcome.failed)} failed")
    context.log.info(f"{run.listed} items; " + progress.summary())
    return run


def _log_skipped(context: AssetExecutionContext, run: SyncRun, shown: int = 20) -> None:
    """Warn about items skipped (unsafe or excluded), removed at the source, or pruned (bounded lines)."""
    for identifier, reason in run.skipped[:shown]:
        context.log.warning(f"skipped {identifier!r}: {redact(reason)}")
    removed = [i for outcome in run.outcomes for i in outcome.removed]
    for identifier in removed[:shown]:
        state = "pruned" if identifier in run.pruned else "kept (set metadata.sync.prune to remove it)"
        context.log.warning(f"{identifier!r} is no longer at the source; its landed file was {state}")
    hidden = max(len(run.skipped), len(removed)) - shown
    if hidden > 0:
        context.log.warning(f"... and {hidden} more skipped or removed item(s)")


def _table_record(outcome: DatasetOutcome, index: LineageIndex) -> dict[str, Any] | None:
    """The lineage record of a table dataset (landed now or before), for its table metadata."""
    if outcome.dataset.kind != "table":
        return None
    return outcome.landed[0] if outcome.landed else index.get(outcome.dataset.name)


def _check_result(keys: SourceKeys, folder: Path, key: AssetKey, dataset: Dataset,
                 synced: DatasetOutcome | None = None) -> AssetCheckResult:
    """The integrity check of one dataset, from its manifest; damaged items are marked for repair."""
    settings = keys.settings.check
    # the manifest streamed from its file (the sync just wrote it): a million entries are never held
    count = synced.items if synced is not None else manifest_items(folder, dataset.file_name)
    damaged, facts = verify_manifest(folder, dataset.file_name, count=count, full=settings.mode == "full",
                                     sample_size=settings.sample_size,
                                     stat_checked=synced is not None and synced.all_checked)
    write_repairs(folder, dataset.file_name, damaged)
    return AssetCheckResult(asset_key=key, check_name=CHECK_NAME, passed=not damaged, metadata=facts)


def _partition_events(context: AssetExecutionContext, keys: SourceKeys,
                     outcome: DatasetOutcome) -> list[AssetMaterialization]:
    """A partitioned set after a sync: partitions added and removed, one materialization per landed item."""
    dataset = outcome.dataset
    if len(outcome.entries) > MAX_PARTITIONS:
        raise failure_for([_too_many(keys, dataset, len(outcome.entries))])
    sync_partitions(context.instance, keys.partitions(dataset).name or "",
                    [item_partition_key(i) for i in outcome.entries], [item_partition_key(i) for i in outcome.removed])
    events = []
    for record in outcome.landed:
        key = item_partition_key(str(record["identifier"]))
        events.append(AssetMaterialization(asset_key=keys.translator.get_asset_key(dataset), partition=key,
                                           metadata=materialization_metadata(record, key),
                                           tags={DATA_VERSION_TAG: str(record.get("source_version"))}))
    return events + _already_landed(context, keys.translator.get_asset_key(dataset), outcome)


def _already_landed(context: AssetExecutionContext, asset_key: AssetKey,
                    outcome: DatasetOutcome) -> list[AssetMaterialization]:
    """A materialization for each item landed and current but never materialized as its partition.

    Partitioning turned on for a set that was synced before would show every partition
    "Missing" although its file is landed and current; the first sync after that records them.
    """
    landed = {str(record["identifier"]) for record in outcome.landed}
    done = context.instance.get_materialized_partitions(asset_key)
    events = []
    for identifier, entry in outcome.entries.items():
        key = item_partition_key(identifier)
        if identifier in landed or key in done:
            continue
        events.append(AssetMaterialization(
            asset_key=asset_key, partition=key, tags={DATA_VERSION_TAG: entry.version},
            metadata={"identifier": MetadataValue.text(identifier), "size": MetadataValue.int(entry.size),
                      "sha256": MetadataValue.text(entry.sha256), "partition_key": MetadataValue.text(key),
                      "already_landed": MetadataValue.bool(True)}))
    return events


def _too_many(keys: SourceKeys, dataset: Dataset, count: int) -> DataSourceError:
    return ConfigurationError(
        f"item set {dataset.name!r} has {count:,} items, more than the {MAX_PARTITIONS:,} a partitioned set may "
        "hold (Dagster's partition pages slow down long before its ~100,000 ceiling); set partitioned: false "
        "or narrow its prefix/glob", source_id=keys.source.id)


def partitioned_set_asset(keys: SourceKeys, dataset: Dataset, spec: AssetSpec) -> AssetsDefinition:
    """A set with one partition per item: materializing a partition lands that item, even if unchanged.

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        dataset: The item set that opted in to ``partitioned``.
        spec: The set's asset spec.

    Returns:
        The partitioned asset.

    Raises:
        dagster.Failure: (when it runs) the item could not be landed.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PreviewWarning)

        @asset(key=spec.key, deps=[keys.remote], partitions_def=keys.partitions(dataset), group_name=spec.group_name,
               kinds=spec.kinds, tags=spec.tags, description=spec.description, metadata=spec.metadata,
               automation_condition=spec.automation_condition,
               required_resource_keys={keys.resource_key, WORKSPACE_KEY}, retry_policy=keys.retry_policy,
               op_tags={"da/source": keys.source.id}, pool=pool_of(keys.source.id))
        async def _item(context: AssetExecutionContext) -> MaterializeResult[None]:
            exit_with_parent()  # a step worker orphaned by a killed run worker must not land on
            source, folder = source_and_folder(context.resources, keys)
            identifier = item_from_partition_key(context.partition_key)
            progress = ProgressLog(context.log.info, total_items=1)
            root = getattr(context.resources, WORKSPACE_KEY).root
            with run_context(context.run.run_id), on_progress(progress.on_bytes), workspace_root(root):
                try:
                    record = await fetch_one(source.build_connector(), folder, identifier)
                except DataSourceError as exc:
                    raise failure_for([exc]) from exc
            progress.item_done()
            context.log.info(f"landed {identifier!r}: " + progress.summary())
            return MaterializeResult(metadata=materialization_metadata(record, context.partition_key),
                                     data_version=DataVersion(str(record.get("source_version"))))

    return _item
