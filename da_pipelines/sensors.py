"""Per source: the sensor ``N_sensor``, which requests ``N_sync`` runs for the datasets that changed.

The decision is the pure :func:`connectors.syncing.cursor.plan_tick`; this module lists the
source (through :func:`run_coroutine`: sensors are sync), drops bucket mates whose
landed lineage already has the listed version, and turns the work into run
requests: each names the new or changed items (run config) and selects only
the datasets they belong to, with run keys that make a repeated tick harmless.

A tick must stay short whatever the source's size (Dagster cuts a tick off at 60 s;
listing 1,000,000 files takes minutes). A tick reads at most ``TICK_LISTING_LIMIT``
items of the listing: a source that lists more is *large*, and its tick only decides:
it requests one full ``N_sync`` run (no items named: the run lists the source
itself and syncs what is new, changed or damaged, batch by batch, memory flat)
unless such a run is already queued or running. The run does the work; the tick
costs the first ``TICK_LISTING_LIMIT`` items of the listing and one query of the
run storage.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    BetaWarning,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from connectors.base import DataItem
from connectors.syncing.aio import run_coroutine
from connectors.syncing.cursor import decode_cursor, drop_known, encode_cursor, item_version, plan_tick
from connectors.syncing.datasets import Dataset, datasets_of
from connectors.syncing.source_sync import ItemRequest, LineageIndex, excluded_by, sync_options
from da_pipelines.resources import SourceResource
from da_pipelines.sharded import sharded_run_config
from da_pipelines.translator import WORKSPACE_KEY, SourceKeys, source_and_folder

TICK_LISTING_LIMIT = 20_000  # items a tick reads of the listing; a source listing more gets full sync runs
FULL_SYNC_TAG = "da/full_sync"
_NOT_FINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                 DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def source_sensor(keys: SourceKeys, sync_job: UnresolvedAssetJobDefinition,
                  selectable: dict[Dataset, AssetKey]) -> SensorDefinition:
    """``N_sensor``: each tick lists the source and requests ``N_sync`` runs for the changed datasets.

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        sync_job: The source's ``N_sync`` job.
        selectable: The datasets ``N_sync`` materializes, with their (translated) asset keys.

    Returns:
        The sensor.
    """
    settings = keys.settings
    status = DefaultSensorStatus.RUNNING if settings.sensor_running_by_default else DefaultSensorStatus.STOPPED
    with warnings.catch_warnings():
        # dagster's own @sensor passes its beta `owners` parameter; nothing of ours is beta
        warnings.filterwarnings("ignore", category=BetaWarning)
        return _build_sensor(keys, sync_job, status, selectable)


def _build_sensor(keys: SourceKeys, sync_job: UnresolvedAssetJobDefinition, status: DefaultSensorStatus,
                  selectable: dict[Dataset, AssetKey]) -> SensorDefinition:
    settings = keys.settings

    @sensor(
        name=f"{keys.slug}_sensor",
        job=sync_job,
        minimum_interval_seconds=settings.minimum_interval_seconds,
        required_resource_keys={keys.resource_key, WORKSPACE_KEY},
        default_status=status,
        description=f"Requests {keys.slug}_sync runs for the datasets of {keys.source.name} that changed.",
    )
    def _watch(context: SensorEvaluationContext) -> SensorResult:
        source, folder = source_and_folder(context.resources, keys)
        listed = run_coroutine(_list_items(source, TICK_LISTING_LIMIT))
        if len(listed) > TICK_LISTING_LIMIT:  # a large source: the tick decides, a full sync run does the work
            return _full_sync_request(context, keys, sync_job.name, selectable)
        exclude = sync_options(keys.source).exclude  # the source's metadata.sync, as N_sync honours it
        items = [i for i in listed if excluded_by(i.path, exclude) is None]
        plan = plan_tick(items, decode_cursor(context.cursor), max_items=settings.max_items_per_tick,
                         lookback=settings.lookback_seconds)
        work = drop_known(plan, _landed_versions(source, folder, sorted(plan.coarse)))
        if plan.backlog:
            context.log.info(f"{len(work)} items requested; {plan.backlog} left for the next ticks")
        outside = [item.path for item in work if not datasets_of(item.path, keys.datasets)]
        if outside:
            context.log.info(f"{len(outside)} new or changed items belong to no dataset (e.g. {outside[0]!r}); "
                             "refresh the source's listing state (reload the code location) to see new tables")
        inside = [item for item in work if datasets_of(item.path, keys.datasets)]
        return SensorResult(run_requests=run_requests(keys, inside, selectable),
                            cursor=encode_cursor(plan.cursor))

    return _watch


def _landed_versions(source: SourceResource, folder: Path, paths: Sequence[str]) -> dict[str, str | None]:
    """Per item path, the version its landed lineage record has (None when it never landed)."""
    index = LineageIndex(folder, source.source_id, source.connector_type())
    found: dict[str, str | None] = {}
    for path in paths:
        record = index.get(path)
        found[path] = str(record.get("source_version")) if record else None
    return found


def _full_sync_request(context: SensorEvaluationContext, keys: SourceKeys, job_name: str,
                      selectable: dict[Dataset, AssetKey]) -> SensorResult:
    """A large source's tick: one full sync run of every dataset, unless one is already queued or running.

    The cursor is kept as it was: the run, not the tick, finds what changed.
    """
    waiting = context.instance.get_runs_count(RunsFilter(
        job_name=job_name, statuses=_NOT_FINISHED, tags={"da/source": keys.source.id, FULL_SYNC_TAG: "true"}))
    if waiting:
        return SensorResult(skip_reason=f"a full sync of {keys.source.name!r} is queued or running",
                            cursor=context.cursor)
    context.log.info(f"{keys.source.name!r} lists more than {TICK_LISTING_LIMIT:,} items: "
                     "a full sync run finds and lands what changed")
    step = max(keys.settings.minimum_interval_seconds, 1)
    return SensorResult(run_requests=[RunRequest(
        run_key=f"{keys.slug}:full:{int(time.time()) // step}",  # a repeated tick of the same interval: no 2nd run
        asset_selection=sorted(selectable.values(), key=lambda k: k.to_user_string()),
        tags={"da/source": keys.source.id, FULL_SYNC_TAG: "true"},
    )], cursor=context.cursor)


async def _list_items(source: SourceResource, limit: int) -> list[DataItem]:
    """The listing up to ``limit`` + 1 items (more means a large source), streamed and kept slim (path, time,
    version: all a tick reads); the connector lives only for this call."""
    items: list[DataItem] = []
    async with source.build_connector() as connector:
        listing = connector.iter_items()
        try:
            async for i in listing:
                items.append(DataItem(name="", path=i.path, size=i.size, modified_at=i.modified_at,
                                      metadata={"version": item_version(i)}))
                if len(items) > limit:
                    break
        finally:
            close = getattr(listing, "aclose", None)  # a generator left early: its folders and pages closed now
            if close is not None:
                await close()
    return items


def run_requests(keys: SourceKeys, work: Sequence[DataItem], selectable: dict[Dataset, AssetKey]) -> list[RunRequest]:
    """``N_sync`` runs for ``work``, ``batch_size`` items each, selecting only the datasets they touch.

    The run key is a digest of the batch's (item, version) pairs: a repeated tick requests the
    same keys, which Dagster does not launch twice. Items of a partitioned set ride along with
    any selected dataset (the op lands them).

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        work: The new or changed items, in listing order.
        selectable: The datasets ``N_sync`` materializes, with their asset keys.

    Returns:
        One run request per batch.
    """
    size = keys.settings.batch_size
    # items of partitioned sets alone: the op of the plain sets lands them (a sharded set's steps do not)
    fallback = sorted(selectable, key=lambda d: (d.sharded, selectable[d].to_user_string()))[:1]
    requests = []
    for start in range(0, len(work), size):
        batch = [ItemRequest(item.path, item_version(item)) for item in work[start : start + size]]
        touched = {d for r in batch for d in datasets_of(r.identifier, keys.datasets) if d in selectable} or set(
            fallback)
        requests.append(RunRequest(
            run_key=f"{keys.slug}:{_batch_digest(batch)}",
            asset_selection=sorted((selectable[d] for d in touched), key=lambda k: k.to_user_string()),
            run_config={"ops": _ops_config(keys, touched, selectable, batch)},
            tags={"da/source": keys.source.id, "da/items": str(len(batch))},
        ))
    return requests


def _ops_config(keys: SourceKeys, touched: set[Dataset], selectable: dict[Dataset, AssetKey],
                batch: Sequence[ItemRequest]) -> dict[str, Any]:
    """The run's op config: the batch to ``N_sync_items`` (if a plain set is selected), each shard its share."""
    ops: dict[str, Any] = {}
    if any(not d.sharded for d in touched):
        ops[keys.op_name] = {"config": {"items": [{"identifier": r.identifier, "version": r.version} for r in batch]}}
    for dataset in sorted((d for d in touched if d.sharded), key=lambda d: d.name):
        ops.update(sharded_run_config(keys, dataset, selectable[dataset], batch))
    return ops


def _batch_digest(batch: Sequence[ItemRequest]) -> str:
    """A digest of (identifier, version) pairs, independent of their order."""
    digest = hashlib.sha256()
    for request in sorted(batch, key=lambda r: (r.identifier, r.version)):
        digest.update(f"{request.identifier}\0{request.version}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]
