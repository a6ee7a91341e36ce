"""Per source: the external (remote) asset, the landed-files asset and its integrity check."""

import warnings

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    DataVersion,
    MaterializeResult,
    PreviewWarning,
    asset,
    asset_check,
)

from connectors.errors import DataSourceError
from connectors.landing.lineage import run_context
from connectors.landing.progress import on_progress
from connectors.landing.root import workspace_root
from da_pipelines.jobs import failure_for
from da_pipelines.keys import CHECK_NAME, KINDS, WORKSPACE_KEY, SourceKeys, source_and_folder, source_uri
from da_pipelines.lineage_meta import materialization_metadata, verify_landed
from da_pipelines.names import item_from_partition_key
from da_pipelines.progress_log import ProgressLog
from da_pipelines.sync import LineageIndex, fetch_one


def remote_spec(keys: SourceKeys) -> AssetSpec:
    """``[N, "remote"]``: an external asset; Dagster does not materialize it, it shows where data comes from."""
    kind = KINDS.get(keys.source.type_name, keys.source.type_name)
    return AssetSpec(
        key=keys.remote,
        description=f"{keys.source.name}: the data as it sits in the source (external).",
        group_name=keys.slug,
        kinds={kind},
        metadata={"dagster/uri": source_uri(keys.source), "source_id": keys.source.id},
    )


def files_asset(keys: SourceKeys) -> AssetsDefinition:
    """``[N, "files"]``: materializing a partition lands that one item (always, even if unchanged)."""
    @asset(
        key=keys.files,
        deps=[keys.remote],
        partitions_def=keys.partitions,
        group_name=keys.slug,
        kinds={"file"},
        required_resource_keys={keys.resource_key, WORKSPACE_KEY},
        retry_policy=keys.retry_policy,
        description=f"{keys.source.name}: landed files, one partition per item, with lineage.",
    )
    async def _files(context: AssetExecutionContext) -> MaterializeResult[None]:
        source, folder = source_and_folder(context.resources, keys)
        identifier = item_from_partition_key(context.partition_key)
        progress = ProgressLog(context.log.info, total_items=1)
        with run_context(context.run.run_id), on_progress(progress.on_bytes), \
                workspace_root(getattr(context.resources, WORKSPACE_KEY).root):  # no link below it followed
            try:
                record = await fetch_one(source.build_connector(), folder, identifier)
            except DataSourceError as exc:
                raise failure_for([exc]) from exc
        context.log.info(f"landed {identifier!r}: " + progress.summary())
        return MaterializeResult(
            metadata=materialization_metadata(record, context.partition_key),
            data_version=DataVersion(str(record.get("source_version"))),
        )

    return _files


def integrity_check(keys: SourceKeys) -> AssetChecksDefinition:
    """``landed_file_matches_lineage``: per item, the landed file exists and matches its lineage record."""
    with warnings.catch_warnings():
        # partitioned checks are "preview" in 1.13; they are what lets a check follow one item
        warnings.filterwarnings("ignore", category=PreviewWarning)
        return _build_integrity_check(keys)


def _build_integrity_check(keys: SourceKeys) -> AssetChecksDefinition:
    @asset_check(
        asset=keys.files,
        name=CHECK_NAME,
        partitions_def=keys.partitions,
        required_resource_keys={keys.resource_key, WORKSPACE_KEY},
        description="The landed file exists and its size and sha256 match its lineage record.",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        source, folder = source_and_folder(context.resources, keys)
        identifier = item_from_partition_key(context.partition_key)
        index = LineageIndex(folder, source.source_id, source.connector_type())
        with workspace_root(getattr(context.resources, WORKSPACE_KEY).root):  # records read without following links
            record = index.get(identifier)
        if record is None:
            return AssetCheckResult(passed=False, metadata={"problem": "no lineage record"})
        passed, facts = verify_landed(record)
        return AssetCheckResult(passed=passed, metadata=facts)

    return _check
