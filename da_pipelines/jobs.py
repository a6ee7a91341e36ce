"""Per source: the sync job ``N_sync`` (one run lands every new or changed item, or those it is given)."""

from collections.abc import AsyncIterator, Sequence
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetMaterialization,
    Config,
    DagsterInstance,
    Failure,
    JobDefinition,
    Nothing,
    OpExecutionContext,
    Out,
    job,
    op,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError

from connectors.errors import DataSourceError, is_retryable
from connectors.landing.root import under_workspace_root
from connectors.secrets.references import redact
from da_pipelines.deploy import exit_with_parent
from da_pipelines.keys import CHECK_NAME, WORKSPACE_KEY, SourceKeys, source_and_folder
from da_pipelines.lineage_meta import materialization_metadata, verify_landed
from da_pipelines.names import partition_key_for_item
from da_pipelines.progress_log import ProgressLog
from da_pipelines.sync import ItemRequest, SyncReport, sync_source


class SyncItem(Config):  # type: ignore[misc]
    """One item a sync run should land: its identifier and the version the sensor saw."""

    identifier: str
    version: str = ""  # empty: fetch it whatever version landed before


class SyncConfig(Config):  # type: ignore[misc]
    """Run config of ``N_sync``: no items means list the source and sync everything new or changed."""

    items: list[SyncItem] = []


def sync_job(keys: SourceKeys) -> JobDefinition:
    """``N_sync``: one op that syncs the source, yielding a materialization and a check per landed item."""

    @op(
        name=f"{keys.slug}_sync_items",
        out=Out(Nothing),
        required_resource_keys={keys.resource_key, WORKSPACE_KEY},
        retry_policy=keys.retry_policy,
        tags={"da/source": keys.source.id},
    )
    async def _sync_items(context: OpExecutionContext, config: SyncConfig) -> AsyncIterator[Any]:
        exit_with_parent()  # an orphaned step worker must not land on after its run failed
        source, folder = source_and_folder(context.resources, keys)
        requested = [ItemRequest(i.identifier, i.version) for i in config.items] or None
        report = SyncReport()
        progress = ProgressLog(context.log.info, total_items=len(requested) if requested else 0)
        landed = sync_source(source.build_connector(), folder, requested, report=report, run_id=context.run.run_id,
                             on_bytes=progress.on_bytes, on_item_done=progress.item_done,
                             on_planned=progress.set_total, concurrency=keys.settings.concurrency)
        # the workspace root is trusted, no link below it followed; a killed run's temporaries swept first
        landed = under_workspace_root(getattr(context.resources, WORKSPACE_KEY).root, landed, sweep=folder)
        registered = set(context.instance.get_dynamic_partitions(keys.partitions.name or ""))
        try:
            async for record in landed:
                for event in item_events(context, keys, record, registered):
                    yield event
        except DataSourceError as exc:  # listing or connecting failed: retried only when retryable
            raise failure_for([exc]) from exc
        context.log.info(f"{len(report.landed)} landed, {len(report.skipped)} unchanged (skipped), "
                         f"{len(report.failed)} failed; " + progress.summary())
        if report.failed:
            raise failure_for(report.failed)

    @job(name=f"{keys.slug}_sync", description=f"Fetch every new or changed item of {keys.source.name}.",
         tags={"da/source": keys.source.id})
    def _sync() -> None:
        _sync_items()

    return _sync


def item_events(
    context: OpExecutionContext, keys: SourceKeys, record: dict[str, Any], registered: set[str]
) -> tuple[AssetMaterialization, AssetCheckEvaluation]:
    """The materialization and the integrity check of one landed item.

    Its partition is registered first unless it is in ``registered`` (the
    partitions known at the start of the run, updated here): one query per run,
    not one per item.
    """
    key = partition_key_for_item(str(record["identifier"]))
    if key not in registered:
        register_partition(context.instance, keys.partitions.name or "", key)
        registered.add(key)
    passed, facts = verify_landed(record)
    check = AssetCheckEvaluation(
        asset_key=keys.files, check_name=CHECK_NAME, passed=passed, metadata=facts, partition=key
    )
    return item_materialization(keys.files, record, key), check


def register_partition(instance: DagsterInstance, name: str, key: str, attempts: int = 3) -> None:
    """Add dynamic partition ``key``, tolerating a concurrent run adding it at the same moment.

    ``add_dynamic_partitions`` skips keys that exist, but two runs can both
    find a key missing and both insert it; the loser gets a unique-constraint
    error, which only means the partition now exists.
    """
    for attempt in range(attempts):
        try:
            instance.add_dynamic_partitions(name, [key])
            return
        except SQLAlchemyIntegrityError:
            if key in instance.get_dynamic_partitions(name) or attempt == attempts - 1:
                return


def item_materialization(asset_key: AssetKey, record: dict[str, Any], key: str) -> AssetMaterialization:
    """The materialization of one landed item: lineage metadata, data version = source version."""
    return AssetMaterialization(
        asset_key=asset_key,
        partition=key,
        metadata=materialization_metadata(record, key),
        tags={DATA_VERSION_TAG: str(record.get("source_version"))},
    )


def failure_for(errors: Sequence[DataSourceError]) -> Failure:
    """A ``Failure`` that lets the ``RetryPolicy`` retry only when some error is retryable."""
    retryable = any(is_retryable(error) for error in errors)
    shown = "; ".join(redact(str(error)) for error in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return Failure(
        description=f"{len(errors)} item(s) failed: {shown}{more}",
        metadata={"failed": len(errors), "retryable": retryable},
        allow_retries=retryable,
    )


