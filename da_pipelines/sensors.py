"""Per source: the sensor ``N_sensor``, which requests ``N_sync`` runs for new or changed items only.

The decision is the pure :func:`da_pipelines.cursor.plan_tick`; this module lists the
source (through :func:`run_coroutine`: sensors are sync), asks Dagster which bucket
mates already landed, and turns the work into run requests whose keys make a
repeated tick harmless.
"""

import hashlib
import warnings
from collections.abc import Sequence

from dagster import (
    AssetKey,
    BetaWarning,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from connectors.base import DataItem
from connectors.sync import excluded_by, sync_options
from da_pipelines.aio import run_coroutine
from da_pipelines.cursor import decode_cursor, drop_known, encode_cursor, item_version, plan_tick
from da_pipelines.keys import SourceKeys
from da_pipelines.names import partition_key_for_item
from da_pipelines.resources import SourceResource
from da_pipelines.sync import ItemRequest


def source_sensor(keys: SourceKeys, sync_job: JobDefinition) -> SensorDefinition:
    """``N_sensor``: each tick lists the source and requests ``N_sync`` runs for the new or changed items."""
    settings = keys.settings
    status = DefaultSensorStatus.RUNNING if settings.sensor_running_by_default else DefaultSensorStatus.STOPPED
    with warnings.catch_warnings():
        # dagster's own @sensor passes its beta `owners` parameter; nothing of ours is beta
        warnings.filterwarnings("ignore", category=BetaWarning)
        return _build_sensor(keys, sync_job, status)


def _build_sensor(keys: SourceKeys, sync_job: JobDefinition, status: DefaultSensorStatus) -> SensorDefinition:
    settings = keys.settings

    @sensor(
        name=f"{keys.slug}_sensor",
        job=sync_job,
        minimum_interval_seconds=settings.minimum_interval_seconds,
        required_resource_keys={keys.resource_key},
        default_status=status,
        description=f"Requests {keys.slug}_sync runs for new or changed items of {keys.source.name}.",
    )
    def _watch(context: SensorEvaluationContext) -> SensorResult:
        source: SourceResource = getattr(context.resources, keys.resource_key)
        exclude = sync_options(keys.source).exclude  # the source's metadata.sync, as N_sync honours it
        items = [i for i in run_coroutine(_list_items(source)) if excluded_by(i.path, exclude) is None]
        plan = plan_tick(items, decode_cursor(context.cursor), max_items=settings.max_items_per_tick,
                         lookback=settings.lookback_seconds)
        work = drop_known(plan, landed_versions(context.instance, keys.files, sorted(plan.coarse)))
        if plan.backlog:
            context.log.info(f"{len(work)} items requested; {plan.backlog} left for the next ticks")
        new_keys = [partition_key_for_item(item.path) for item in work]
        return SensorResult(
            run_requests=run_requests(keys, work),
            cursor=encode_cursor(plan.cursor),
            dynamic_partitions_requests=[keys.partitions.build_add_request(new_keys)] if new_keys else [],
        )

    return _watch


def landed_versions(instance: DagsterInstance, asset_key: AssetKey, paths: Sequence[str]) -> dict[str, str | None]:
    """Per item path, the data version of its partition's latest materialization (if any)."""
    found: dict[str, str | None] = {}
    for start in range(0, len(paths), 500):  # bounded IN (...) lists
        chunk = {partition_key_for_item(path): path for path in paths[start : start + 500]}
        tags = instance.event_log_storage.get_latest_tags_by_partition(
            asset_key, DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG], list(chunk))
        found.update({chunk[key]: values.get(DATA_VERSION_TAG) for key, values in tags.items() if key in chunk})
    return found


async def _list_items(source: SourceResource) -> list[DataItem]:
    """The whole listing; the connector lives only for this call, on the helper's own loop."""
    async with source.build_connector() as connector:
        return await connector.list_items()


def run_requests(keys: SourceKeys, work: Sequence[DataItem]) -> list[RunRequest]:
    """``N_sync`` runs for ``work``, ``batch_size`` items each.

    The run key is a digest of the batch's (item, version) pairs: a repeated
    tick requests the same keys, which Dagster does not launch twice.
    """
    size = keys.settings.batch_size
    requests = []
    for start in range(0, len(work), size):
        batch = [ItemRequest(item.path, item_version(item)) for item in work[start : start + size]]
        requests.append(RunRequest(
            run_key=f"{keys.slug}:{batch_digest(batch)}",
            run_config={"ops": {f"{keys.slug}_sync_items": {"config": {
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


