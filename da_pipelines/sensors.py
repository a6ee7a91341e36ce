"""Per source: the sensor ``N_sensor``, which requests ``N_sync`` runs for the datasets that changed.

The decision is the pure :func:`connectors.syncing.cursor.plan_tick`; this module lists the
source (through :func:`run_coroutine`: sensors are sync), drops bucket mates whose
landed lineage already has the listed version, and turns the work into run
requests: each names the new or changed items (run config) and selects only
the datasets they belong to, with run keys that make a repeated tick harmless.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

from dagster import (
    AssetKey,
    BetaWarning,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from connectors.base import DataItem
from connectors.syncing.aio import run_coroutine
from connectors.syncing.cursor import decode_cursor, drop_known, encode_cursor, item_version, plan_tick
from connectors.syncing.source_sync import excluded_by, sync_options
from da_pipelines.datasets import Dataset, datasets_of
from da_pipelines.resources import SourceResource
from da_pipelines.sync import ItemRequest, LineageIndex
from da_pipelines.translator import WORKSPACE_KEY, SourceKeys, source_and_folder


def source_sensor(keys: SourceKeys, sync_job: UnresolvedAssetJobDefinition,
                  selectable: dict[Dataset, AssetKey]) -> SensorDefinition:
    """``N_sensor``: each tick lists the source and requests ``N_sync`` runs for the changed datasets.

    ``selectable`` maps the datasets ``N_sync`` materializes to their (translated) asset keys.
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
        exclude = sync_options(keys.source).exclude  # the source's metadata.sync, as N_sync honours it
        items = [i for i in run_coroutine(_list_items(source)) if excluded_by(i.path, exclude) is None]
        plan = plan_tick(items, decode_cursor(context.cursor), max_items=settings.max_items_per_tick,
                         lookback=settings.lookback_seconds)
        work = drop_known(plan, landed_versions(source, folder, sorted(plan.coarse)))
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


def landed_versions(source: SourceResource, folder: Path, paths: Sequence[str]) -> dict[str, str | None]:
    """Per item path, the version its landed lineage record has (None when it never landed)."""
    index = LineageIndex(folder, source.source_id, source.connector_type())
    found: dict[str, str | None] = {}
    for path in paths:
        record = index.get(path)
        found[path] = str(record.get("source_version")) if record else None
    return found


async def _list_items(source: SourceResource) -> list[DataItem]:
    """The whole listing, streamed and kept slim (path, time, version: all a tick reads; the connector's
    other metadata would double the memory of a million items); the connector lives only for this call."""
    async with source.build_connector() as connector:
        return [DataItem(name="", path=i.path, size=i.size, modified_at=i.modified_at,
                         metadata={"version": item_version(i)}) async for i in connector.iter_items()]


def run_requests(keys: SourceKeys, work: Sequence[DataItem], selectable: dict[Dataset, AssetKey]) -> list[RunRequest]:
    """``N_sync`` runs for ``work``, ``batch_size`` items each, selecting only the datasets they touch.

    The run key is a digest of the batch's (item, version) pairs: a repeated
    tick requests the same keys, which Dagster does not launch twice. Items of
    a partitioned set ride along with any selected dataset (the op lands them).
    """
    size = keys.settings.batch_size
    fallback = sorted(selectable.values(), key=lambda k: k.to_user_string())[:1]
    requests = []
    for start in range(0, len(work), size):
        batch = [ItemRequest(item.path, item_version(item)) for item in work[start : start + size]]
        touched = {selectable[d] for r in batch for d in datasets_of(r.identifier, keys.datasets) if d in selectable}
        requests.append(RunRequest(
            run_key=f"{keys.slug}:{batch_digest(batch)}",
            asset_selection=sorted(touched, key=lambda k: k.to_user_string()) or fallback,
            run_config={"ops": {keys.op_name: {"config": {
                "items": [{"identifier": r.identifier, "version": r.version} for r in batch]}}}},
            tags={"da/source": keys.source.id, "da/items": str(len(batch))},
        ))
    return requests


def batch_digest(batch: Sequence[ItemRequest]) -> str:
    """A digest of (identifier, version) pairs, independent of their order."""
    digest = hashlib.sha256()
    for request in sorted(batch, key=lambda r: (r.identifier, r.version)):
        digest.update(f"{request.identifier}\0{request.version}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]
