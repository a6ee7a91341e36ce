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
import hashlib
import heapq
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetIn,
    AssetKey,
    AssetOut,
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
    graph_multi_asset,
    op,
)

from connectors.errors import DataSourceError
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.secrets.references import redact
from connectors.syncing.dataset_manifest import manifest_items, manifest_path, write_manifest_lines, write_repairs
from connectors.syncing.dataset_sync import SyncRun, sync_datasets
from connectors.syncing.datasets import Dataset
from connectors.syncing.progress_log import ProgressLog
from connectors.syncing.shard_plan import merge_summaries, shard_of, shard_summary, split_by_shard
from connectors.syncing.source_sync import ItemRequest, sync_options
from da_pipelines.checks import verify_manifest
from da_pipelines.deploy import exit_with_parent, pool_of
from da_pipelines.jobs import SyncItem, failure_for
from da_pipelines.resources import SourceResource
from da_pipelines.translator import CHECK_NAME, WORKSPACE_KEY, SourceKeys, source_and_folder

CHECK_DESCRIPTION = ("The set's landed files exist with their recorded size, and their sha256 (sampled or all) "
                     "matches their lineage; damaged files are repaired by the next sync of their shard.")


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
    check = AssetCheckSpec(CHECK_NAME, asset=spec.key, description=CHECK_DESCRIPTION)
    shards = [_shard_op(keys, dataset, shard, spec.key) for shard in range(dataset.shards)]
    merge = _merge_op(keys, dataset)

    def _sharded(remote: Any) -> Any:
        merged = merge([shard(remote) for shard in shards])
        return {"result": merged.result, check.get_python_identifier(): merged.check}

    # subsettable: the check alone runs no sync (the shards see their set unselected), as an unsharded set's
    out = AssetOut.from_spec(spec.replace_attributes(deps=[]))  # the dependency is the input below
    return graph_multi_asset(name=spec.key.to_python_identifier(), outs={"result": out}, check_specs=[check],
                             can_subset=True, group_name=spec.group_name,
                             ins={"remote": AssetIn(key=keys.remote, dagster_type=Nothing)})(_sharded)


def _shard_op(keys: SourceKeys, dataset: Dataset, shard: int, key: AssetKey) -> Any:
    part = dataset.shard_of_set(shard)

    @op(name=_shard_op_name(keys, dataset, shard), ins={"remote": In(Nothing)}, out=Out(dict),
        required_resource_keys={keys.resource_key, WORKSPACE_KEY}, retry_policy=keys.retry_policy,
        tags={"da/source": keys.source.id, "da/shard": f"{shard}/{dataset.shards}"}, pool=pool_of(keys.source.id))
    async def _sync_shard(context: OpExecutionContext, config: ShardConfig) -> dict[str, Any]:
        exit_with_parent()  # a step worker orphaned by a killed run worker must not land on
        if key not in context.selected_asset_keys:  # the set's check alone: it reads the set's last manifest
            return {"shard": shard, "listed": 0}
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
                on_bytes=progress.on_bytes, on_item_done=progress.item_done, on_items_done=progress.items_done,
                on_planned=progress.set_total, concurrency=max(1, keys.settings.concurrency // part.shards),
                options=options,
                bucket=lambda identifier: shard_of(identifier, shards) == shard)
    except DataSourceError as exc:  # listing or connecting failed: retried only when retryable
        raise failure_for([exc], before_items=True) from exc


def _merge_op(keys: SourceKeys, dataset: Dataset) -> Any:
    @op(name=f"{keys.slug}__{dataset.file_name}_merge", ins={"shards": In(list)},
        out={"result": Out(Nothing, is_required=False), "check": Out(Nothing, is_required=False)},
        required_resource_keys={keys.resource_key, WORKSPACE_KEY}, tags={"da/source": keys.source.id})
    def _merge(context: OpExecutionContext, shards: list[dict[str, Any]]) -> Iterator[Output[None] | AssetCheckResult]:
        _, folder = source_and_folder(context.resources, keys)
        merged = None
        if "result" in context.selected_output_names:  # else the check alone: the set's last manifest
            merged = _merge_manifests(folder, dataset)
            count, size, version, manifest = merged
            summary = merge_summaries(shards)
            context.log.info(f"{dataset.label}: {count} items in {dataset.shards} shards, "
                             f"{summary.get('landed', 0)} landed now")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=BetaWarning)  # Output(data_version=): beta in 1.13
                yield Output(None, output_name="result", data_version=DataVersion(version),
                             metadata=_merged_metadata(keys, dataset, summary, (count, size), manifest))
        if "check" in context.selected_output_names:  # in this step: no process started just to check
            count = merged[0] if merged else manifest_items(folder, dataset.file_name)
            yield _check_result(keys, dataset, folder, count, stat_checked=bool(merged) and _all_checked(shards, count))

    return _merge


def _merge_manifests(folder: Path, dataset: Dataset) -> tuple[int, int, str, Path]:
    """Write the set's manifest from its shards' in one streamed pass: its items, bytes, data version and path.

    The shards' lines (each manifest sorted) are merged in identifier order and copied as they are
    to a spool while the data version is digested; the manifest is then its header and the spool.
    An identifier in two shards' manifests (the shard count changed) is taken from the later shard.
    """
    digest, count, size = hashlib.sha256(), 0, 0
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogatepass") as spool:
        for fields, line in _merged_lines(folder, dataset):
            digest.update(f"{fields['identifier']}\0{fields['version']}\0{fields['sha256']}\n".encode(
                "utf-8", "surrogatepass"))
            count, size = count + 1, size + int(fields["size"])
            spool.write(line)
        spool.seek(0)
        version = digest.hexdigest()[:32]  # connectors.syncing.dataset_manifest.data_version_sorted's digest
        manifest = write_manifest_lines(folder, dataset.file_name, spool, count, {
            "dataset": dataset.label, "data_version": version, "shards": dataset.shards})
    return count, size, version, manifest


def _merged_lines(folder: Path, dataset: Dataset) -> Iterator[tuple[dict[str, Any], str]]:
    """The shards' manifest lines (parsed, and as written) in identifier order, the later shard's on a tie."""
    streams = [_manifest_lines(folder, dataset.shard_of_set(shard).file_name) for shard in range(dataset.shards)]
    previous: tuple[dict[str, Any], str] | None = None
    for pair in heapq.merge(*streams, key=lambda p: p[0]["identifier"]):  # stable: equal names in shard order
        if previous is not None and pair[0]["identifier"] != previous[0]["identifier"]:
            yield previous
        previous = pair
    if previous is not None:
        yield previous


def _manifest_lines(folder: Path, name: str) -> Iterator[tuple[dict[str, Any], str]]:
    path = manifest_path(folder, name)
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="surrogatepass") as handle:
        next(handle, None)  # the header
        for line in handle:
            yield json.loads(line), line if line.endswith("\n") else line + "\n"


def _all_checked(shards: Sequence[dict[str, Any]], count: int) -> bool:
    """Whether every shard stat-checked or landed each entry it holds now, and they hold the merged ``count``."""
    return all("checked" in s and s["checked"] == s.get("items") for s in shards) and sum(
        int(s.get("items", 0)) for s in shards) == count


def _check_result(keys: SourceKeys, dataset: Dataset, folder: Path, count: int, *,
                  stat_checked: bool = False) -> AssetCheckResult:
    """The integrity check of the merged manifest; damaged items are marked for repair in their shard."""
    settings = keys.settings.check
    damaged, facts = verify_manifest(folder, dataset.file_name, count=count, full=settings.mode == "full",
                                     sample_size=settings.sample_size, stat_checked=stat_checked)
    for shard, group in enumerate(split_by_shard(damaged, dataset.shards)):
        write_repairs(folder, dataset.shard_of_set(shard).file_name, group)
    return AssetCheckResult(passed=not damaged, metadata=facts)


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
