"""Per configured source: the remote and landing assets, checks, the sync job and the sensor.

With ``N`` the source's slug (``da_pipelines.names.source_slug``):

* ``[N, "remote"]``: an external asset, the data as it sits in the source;
* ``[N, "files"]``: the landed files, one dynamic partition per item (``N_items``),
  so one item can be materialized on its own from the UI;
* check ``landed_file_matches_lineage`` on ``[N, "files"]``: the file exists and
  its sha256 matches its lineage record;
* job ``N_sync``: one run that fetches every new or changed item (or the items
  its run config names) and records a materialization and a check per item;
* sensor ``N_sensor``: requests ``N_sync`` runs for new or changed items only.
"""

from dataclasses import dataclass

from dagster import AssetChecksDefinition, AssetsDefinition, AssetSpec, JobDefinition, SensorDefinition

from connectors.base import DataSourceConfig
from da_pipelines.assets import files_asset, integrity_check, remote_spec
from da_pipelines.jobs import sync_job
from da_pipelines.keys import WORKSPACE_KEY, SourceKeys, source_uri
from da_pipelines.sensors import source_sensor
from da_pipelines.settings import pipeline_settings

__all__ = ["WORKSPACE_KEY", "SourceDefs", "build_source_defs", "source_uri"]


@dataclass(frozen=True)
class SourceDefs:
    """Everything one source contributes to the code location."""

    assets: list[AssetsDefinition | AssetSpec]
    checks: list[AssetChecksDefinition]
    job: JobDefinition
    sensor: SensorDefinition
    resource_key: str


def build_source_defs(source: DataSourceConfig) -> SourceDefs:
    """The definitions of one source (its resource is added by the caller under ``resource_key``)."""
    keys = SourceKeys(source, pipeline_settings(source))
    job = sync_job(keys)
    return SourceDefs(
        assets=[remote_spec(keys), files_asset(keys)],
        checks=[integrity_check(keys)],
        job=job,
        sensor=source_sensor(keys, job),
        resource_key=keys.resource_key,
    )


