"""Sharded syncs: a set declared with ``shards: N`` lands its items in N steps, then merges.

The set's asset ``[N, set]`` is a graph of N shard ops and a merge op:

* ``N__set_shard_K`` (K = 0..N-1) syncs the items of shard K (``connectors.syncing.shard_plan``):
  it lists the source keeping only the shard's items (the others are never stored, planned or
  looked up), lands its new, changed and damaged items and writes the shard's manifest.
  Each is its own step, in the source's pool (``da_source_<N>``): the multiprocess
  executor runs them side by side on one machine (each forked from a fork server that
  imported the code location once, ``da_pipelines.jobs.shard_executor``), ``k8s_job_executor``
  in pods (``deploy/``), never more at once than the pool's limit. Each uses
  ``concurrency // N`` fetches (at least one), so the shards together stay within the
  source's ``concurrency``.
* ``N__set_merge`` reads the shards' manifests and writes the set's whole manifest, and
  reports the set's one materialization (counts, bytes, manifest, data version).

A run stores a fixed number of events per shard and per set, whatever the item count.
The integrity check reads the merged manifest and marks damaged items for repair in
their shard. Each shard reports (and with ``metadata.sync.prune``, prunes) the landed items of
its own hash bucket gone at the source, so together they cover every landed item once.
"""


import asyncio
import heapq
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    Config,
    DataVersion,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    asset_check,
    graph_asset,
    op,
)

from connectors.errors import DataSourceError
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.secrets.references import redact
from connectors.syncing.dataset_manifest import (
    ManifestEntry,
    data_version_sorted,
    iter_manifest,
    manifest_items,
    write_manifest_sorted,
    write_repairs,
)
from connectors.syncing.dataset_sync import SyncRun, sync_datasets
from connectors.syncing.datasets import Dataset
from connectors.syncing.progress_log import ProgressLog
from connectors.syncing.shard_plan import merge_summaries, shard_of, shard_summary, split_by_shard
from connectors.syncing.source_sync import ItemRequest, sync_options
from da_pipelines.checks import verify_entries
from da_pipelines.deploy import exit_with_parent, pool_of
from da_pipelines.jobs import SyncItem, failure_for
from da_pipelines.resources import SourceResource
from da_pipelines.translator import CHECK_NAME, WORKSPACE_KEY, SourceKeys, source_and_folder


class ShardConfig(Config):  # type: ignore[misc]
    """Run config of a shard op: no items and ``chosen`` false means list the source and sync the shard."""

    items: list[SyncItem] = []
    chosen: bool = False  # the run names its items: land only these (none of this shard: nothing to do)


def _shard_op_name(keys: SourceKeys, dataset: Dataset, shard: int) -> str:
    """``N__set_shard_K``."""
    return f"{keys.slug}__{dataset.file_name}_shard_{shard}"


def sharded_set_asset(keys: SourceKeys, dataset: Dataset, spec: AssetSpec) -> AssetsDefinition:
    """The set's asset: N shard steps, then a merge step that materializes it once.

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        dataset: The set that opted in to ``shards``.
        spec: The set's asset spec.

    Returns:
        The graph-backed asset.
    """
    shards = [_shard_op(keys, dataset, shard) for shard in range(dataset.shards)]
    merge = _merge_op(keys, dataset)

    def _sharded(remote: Any) -> Any:
        return merge([shard(remote) for shard in shards])

    return graph_asset(key=spec.key, group_name=spec.group_name, kinds=spec.kinds, tags=spec.tags,
                       description=spec.description, metadata=spec.metadata,
                       automation_condition=spec.automation_condition,
                       ins={"remote": AssetIn(key=keys.remote, dagster_type=Nothing)})(_sharded)


def _shard_op(keys: SourceKeys, dataset: Dataset, shard: int) -> Any:
    part = dataset.shard_of_set(shard)

    @op(name=_shard_op_name(keys, dataset, shard), ins={"remote": In(Nothing)}, out=Out(dict),
        required_resource_keys={keys.resource_key, WORKSPACE_KEY}, retry_policy=keys.retry_policy,
        tags={"da/source": keys.source.id, "da/shard": f"{shard}/{dataset.shards}"}, pool=pool_of(keys.source.id))
    async def _sync_shard(context: OpExecutionContext, config: ShardConfig) -> dict[str, Any]:
        exit_with_parent()  # a step worker orphaned by a killed run worker must not land on
        source, folder = source_and_folder(context.resources, keys)
        requested = [ItemRequest(i.identifier, i.version) for i in config.items if part.contains(i.identifier)]
        if config.chosen and not requested:
            context.log.info(f"shard {shard}/{dataset.shards}: none of the run's items is in this shard")
            return {"shard": shard, "listed": 0}
        run = await _sync_part(context, keys, source, folder, part, requested or None)
        skipped = [pair for pair in run.skipped if part.contains(pair[0])]
        outcome = run.outcomes[0]
        context.log.info(f"shard {shard}/{dataset.shards}: {outcome.landed_count} landed, {outcome.unchanged} "
                         f"unchanged, {len(outcome.repaired)} repaired, {len(skipped)} skipped, "
                         f"{len(outcome.removed)} removed at source, {len(outcome.failed)} failed")
        if run.errors:
            raise failure_for(run.errors)
        return shard_summary(shard, run.listed, outcome, skipped, len(run.errors))

    return _sync_shard


async def _sync_part(context: OpExecutionContext, keys: SourceKeys, source: SourceResource, folder: Path,
                     part: Dataset, requested: Sequence[ItemRequest] | None) -> SyncRun:
    """Sync one shard (``part``): its share of the source's concurrency, the items of its hash bucket."""
    progress = ProgressLog(context.log.info, total_items=len(requested or ()))
    options = sync_options(keys.source)
    shard, shards = part.shard, part.shards
    try:
        with workspace_root(getattr(context.resources, WORKSPACE_KEY).root):
            if part.shard == 0:
                await asyncio.to_thread(sweep_workspace, folder)  # temporaries of a killed run (one shard sweeps)
            return await sync_datasets(
                source.build_connector, folder, [part], requested, run_id=context.run.run_id,
                on_bytes=progress.on_bytes, on_item_done=progress.item_done, on_planned=progress.set_total,
                concurrency=max(1, keys.settings.concurrency // part.shards), options=options,
                bucket=lambda identifier: shard_of(identifier, shards) == shard)
    except DataSourceError as exc:  # listing or connecting failed: retried only when retryable
        raise failure_for([exc], before_items=True) from exc


def _merge_op(keys: SourceKeys, dataset: Dataset) -> Any:
    @op(name=f"{keys.slug}__{dataset.file_name}_merge", ins={"shards": In(list)}, out=Out(Nothing),
        required_resource_keys={keys.resource_key, WORKSPACE_KEY}, tags={"da/source": keys.source.id})
    def _merge(context: OpExecutionContext, shards: list[dict[str, Any]]) -> Output[None]:
        _, folder = source_and_folder(context.resources, keys)
        # the shards' manifests streamed twice (digest and totals, then the merged file): never held whole
        totals = [0, 0]
        version = data_version_sorted(_counted(_merged_shards(folder, dataset), totals))
        manifest = write_manifest_sorted(folder, dataset.file_name, _merged_shards(folder, dataset), totals[0], {
            "dataset": dataset.label, "data_version": version, "shards": dataset.shards})
        summary = merge_summaries(shards)
        context.log.info(f"{dataset.label}: {totals[0]} items in {dataset.shards} shards, "
                         f"{summary.get('landed', 0)} landed now")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=BetaWarning)  # Output(data_version=): beta in 1.13
            return Output(None, metadata=_merged_metadata(keys, dataset, summary, totals, manifest),
                          data_version=DataVersion(version))

    return _merge


def _merged_shards(folder: Path, dataset: Dataset) -> Iterator[ManifestEntry]:
    """The shards' manifest entries in identifier order (each manifest is sorted), streamed; an identifier
    in two shards' manifests (the shard count changed) is taken from the later shard."""
    streams = [iter_manifest(folder, dataset.shard_of_set(shard).file_name) for shard in range(dataset.shards)]
    previous: ManifestEntry | None = None
    for entry in heapq.merge(*streams, key=lambda e: e.identifier):  # stable: equal names in shard order
        if previous is not None and entry.identifier != previous.identifier:
            yield previous
        previous = entry
    if previous is not None:
        yield previous


def _counted(entries: Iterator[ManifestEntry], totals: list[int]) -> Iterator[ManifestEntry]:
    """``entries`` passed through, counting them and their bytes into ``totals``."""
    for entry in entries:
        totals[0], totals[1] = totals[0] + 1, totals[1] + entry.size
        yield entry


def _merged_metadata(keys: SourceKeys, dataset: Dataset, summary: dict[str, Any], totals: Sequence[int],
                    manifest: Path) -> dict[str, Any]:
    """The set's materialization metadata: the same counts as an unsharded set's, and the shards.

    ``totals``: the set's items and their bytes.
    """
    metadata: dict[str, Any] = {
        "dagster/uri": MetadataValue.text(keys.translator.get_uri(dataset)), "items": MetadataValue.int(totals[0]),
        "bytes": MetadataValue.int(totals[1]), "shards": MetadataValue.int(dataset.shards),
        "manifest": MetadataValue.path(str(manifest)),
    }
    for name in ("landed", "unchanged", "repaired", "failed", "skipped"):
        metadata[f"items_{name}"] = MetadataValue.int(int(summary.get(name, 0)))
    metadata["items_removed_at_source"] = MetadataValue.int(int(summary.get("removed", 0)))
    metadata["bytes_landed"] = MetadataValue.int(int(summary.get("bytes_landed", 0)))
    for name in ("failed_items", "removed_items"):
        if summary.get(name):
            metadata[name] = MetadataValue.json(summary[name])
    if summary.get("skipped_items"):
        metadata["skipped_items"] = MetadataValue.json(
            [{"item": item, "why": redact(why)} for item, why in summary["skipped_items"]])
    return metadata


def sharded_check(keys: SourceKeys, dataset: Dataset, key: AssetKey) -> AssetChecksDefinition:
    """The integrity check of a sharded set: the merged manifest; damaged items marked in their shard.

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        dataset: The sharded set.
        key: The set's asset key.

    Returns:
        The check.
    """

    @asset_check(asset=key, name=CHECK_NAME, required_resource_keys={keys.resource_key, WORKSPACE_KEY},
                 op_tags={"da/source": keys.source.id}, description=(
                     "The set's landed files exist with their recorded size, and their sha256 (sampled or all) "
                     "matches their lineage; damaged files are repaired by the next sync of their shard."))
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        _, folder = source_and_folder(context.resources, keys)
        settings = keys.settings.check
        damaged, facts = verify_entries(folder, iter_manifest(folder, dataset.file_name),  # streamed
                                        count=manifest_items(folder, dataset.file_name),
                                        full=settings.mode == "full", sample_size=settings.sample_size)
        for shard, group in enumerate(split_by_shard(damaged, dataset.shards)):
            write_repairs(folder, dataset.shard_of_set(shard).file_name, group)
        return AssetCheckResult(passed=not damaged, metadata=facts)

    return _check


def sharded_run_config(keys: SourceKeys, dataset: Dataset, key: AssetKey,
                       batch: Sequence[ItemRequest]) -> dict[str, Any]:
    """Run config naming ``batch``'s items to the shards of the set, each its own: for the sensor.

    The set's graph is the node ``key.to_python_identifier()`` (``N__set``); its ops are nested under it.

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        dataset: The sharded set.
        key: The set's asset key.
        batch: The items (and their versions) this run lands.

    Returns:
        The ``ops`` run config of the set's shard ops.
    """
    mine = [r for r in batch if dataset.contains(r.identifier)]
    ops = {_shard_op_name(keys, dataset, shard): {"config": {"chosen": True, "items": [
        {"identifier": r.identifier, "version": r.version} for r in mine
        if shard_of(r.identifier, dataset.shards) == shard]}} for shard in range(dataset.shards)}
    return {key.to_python_identifier(): {"ops": ops}}
