"""Per configured source: its assets, checks, sync job and sensor (see ``da_pipelines.assets``).

With ``N`` the source's slug (``connectors.ids.source_slug``); keys, groups and metadata come from
:class:`da_pipelines.translator.DataSourceTranslator`:

* ``[N, "remote"]``: an external asset, the data as it sits in the source;
* one asset per dataset: ``[N, set]`` per item set (blob and file sources; by
  default one set ``files``), ``[N, schema, table]`` per table or view (PostgreSQL);
  each with the check ``landed_files_match_lineage``;
* job ``N_sync``: one run, one step, lands every new, changed or damaged item;
* sensor ``N_sensor``: requests ``N_sync`` runs for the datasets that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetsDefinition, AssetSpec, SensorDefinition
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from connectors.base import DataSourceConfig
from connectors.pipeline_settings import pipeline_settings
from connectors.syncing.datasets import TABLE_TYPES, source_datasets
from connectors.syncing.table_listing import ListingState, cached_state, state_file
from da_pipelines.assets import datasets_asset, partitioned_set_asset
from da_pipelines.jobs import sync_job
from da_pipelines.sensors import source_sensor
from da_pipelines.sharded import sharded_set_asset
from da_pipelines.translator import WORKSPACE_KEY, DataSourceTranslator, SourceKeys, SpecTranslator, source_uri

__all__ = ["WORKSPACE_KEY", "SourceDefs", "build_source_defs", "source_keys", "source_uri"]


@dataclass(frozen=True)
class SourceDefs:
    """Everything one source contributes to the code location."""

    assets: list[AssetsDefinition | AssetSpec]
    job: UnresolvedAssetJobDefinition
    sensor: SensorDefinition
    resource_key: str


def source_keys(source: DataSourceConfig, listing: ListingState | None = None,
                translate: SpecTranslator | None = None,
                translator: DataSourceTranslator | None = None) -> SourceKeys:
    """The names, translator and datasets of ``source``.

    Args:
        source: the source.
        listing: the table listing state of a table source (None: not known).
        translate: a change applied to each dataset's spec (the Component's ``translation``).
        translator: a :class:`DataSourceTranslator` (subclass) to use instead of the default.

    Returns:
        The source's :class:`SourceKeys`.
    """
    settings = pipeline_settings(source)
    note = ""
    tables = None
    if source.type_name in TABLE_TYPES:
        tables = listing.tables if listing else None
        note = _listing_note(listing)
    datasets = source_datasets(source, settings, tables, note)
    if translator is None:
        translator = DataSourceTranslator(source, settings, translate)
    elif translate is not None:
        translator.translation = translate
    return SourceKeys(translator, tuple(datasets), note)


def _listing_note(listing: ListingState | None) -> str:
    if listing is None or listing.tables is None:
        why = listing.error if listing and listing.error else "no listing state yet"
        return f"the tables are not known ({why}); one asset stands for every table until a listing works."
    if listing.error:
        return f"{listing.error}; showing the tables listed at {listing.listed_at}."
    return ""


def build_source_defs(source: DataSourceConfig, workspace_root: Path | None = None,
                      keys: SourceKeys | None = None) -> SourceDefs:
    """The definitions of one source (its resource is added by the caller under ``resource_key``).

    Args:
        source: The source's validated entry.
        workspace_root: Where a table source's listing state is read from and refreshed into.
        keys: The source's translated names and datasets; None makes them (listing a table source).

    Returns:
        The source's assets, checks, jobs and sensors, and its keys.
    """
    if keys is None:
        listing = None
        if source.type_name in TABLE_TYPES and workspace_root is not None:
            settings = pipeline_settings(source)
            listing = cached_state(source, state_file(workspace_root, source.id), settings.listing_ttl_seconds)
        keys = source_keys(source, listing)
    specs = {d: keys.translator.get_asset_spec(d) for d in keys.datasets}
    multi = datasets_asset(keys, specs)
    assets: list[AssetsDefinition | AssetSpec] = [keys.translator.get_remote_spec(keys.listing_note)]
    assets.extend([multi] if multi is not None else [])
    assets.extend(partitioned_set_asset(keys, d, specs[d]) for d in keys.datasets if d.partitioned)
    sharded = [d for d in keys.datasets if d.sharded]
    assets.extend(sharded_set_asset(keys, d, specs[d]) for d in sharded)
    selectable = {d: specs[d].key for d in keys.datasets if not d.partitioned}
    job = sync_job(keys, list(selectable.values()), sharded=bool(sharded))
    return SourceDefs(assets=assets, job=job, sensor=source_sensor(keys, job, selectable),
                      resource_key=keys.resource_key)
