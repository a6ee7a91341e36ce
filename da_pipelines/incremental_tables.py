"""Incremental tables in Dagster: a table named in its source's ``incremental`` syncs by its cursor.

Such a table's asset does not land one file through ``fetch_data``: it runs the connector's
``sync_table`` (a first sync exports it whole as a Parquet dataset folder of parts; later syncs add
a part with the rows after the last cursor, minus the look-back). Its materialization carries:

* ``DataVersion``: the cursor's high-water mark and the row count (a late commit below the mark
  still changes the version, by its row);
* metadata: ``dagster/row_count``, ``dagster/column_schema``, ``rows_added``, ``cursor`` and
  ``cursor_high_water_mark``, ``parts``, ``last_sync`` (``full`` / ``increment``), and
  ``schema_drift`` (this sync's added / removed / retyped columns) with ``on_schema_change``.

Run config ``full_refresh: true`` (on ``N_sync_items``) exports the table whole again and replaces
the folder in one step: a cursor does not see deletes. Under ``on_schema_change: fail`` a drift
fails the step; the asset gets an observation naming the drift first, so it shows in the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetObservation, DataVersion, MaterializeResult, MetadataValue

from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import DataSourceError, NotFoundError, UnsafeNameError
from connectors.landing.lineage import read_record, run_context
from connectors.secrets.references import redact
from connectors.syncing.datasets import Dataset
from da_pipelines.checks import sha256_beneath
from da_pipelines.translator import materialization_metadata


@dataclass
class IncrementalOutcome:
    """One incremental table after this run: its dataset record, or the error that stopped it."""

    dataset: Dataset
    record: dict[str, Any] | None
    synced: bool
    error: DataSourceError | None = None


def _name_parts(text: str) -> list[str] | None:
    from connectors.postgresql.catalog import parse_name_parts  # psycopg only where a table source is

    try:
        return parse_name_parts(text)
    except (NotFoundError, UnsafeNameError):
        return None


def is_incremental(dataset: Dataset, source: DataSourceConfig) -> bool:
    """Whether ``dataset`` is a table its source's ``incremental`` setting names.

    Args:
        dataset: One of the source's datasets.
        source: The source's entry (its ``incremental`` setting).

    Returns:
        True when the table is synced by its cursor rather than landed whole.
    """
    tables = source.config.get("incremental") if source.type_name == "postgresql" else None
    if dataset.kind != "table" or not isinstance(tables, dict) or not tables:
        return False
    parts = _name_parts(dataset.name)
    return parts is not None and any(_name_parts(str(key)) == parts for key in tables)


def folder_name(dataset: Dataset) -> str | None:
    """The dataset folder's name in the source's folder (``schema.table``), as the connector names it.

    Args:
        dataset: A table's dataset.

    Returns:
        The folder's name, or None when the dataset's name is not a table name.
    """
    from connectors.postgresql.catalog import landed_name

    parts = _name_parts(dataset.name)
    if not parts or len(parts) != 2:
        return None
    try:
        return landed_name(parts[0], parts[1], "parquet").removesuffix(".parquet")
    except UnsafeNameError:
        return None


async def sync_incremental(build: Callable[[], DataSourceConnector], folder: Path, dataset: Dataset, *,
                           full: bool, run_id: str | None) -> IncrementalOutcome:
    """Run ``sync_table`` for ``dataset``; errors are returned, not raised.

    Args:
        build: Makes the (PostgreSQL) connector.
        folder: The source's folder in the workspace.
        dataset: The table's dataset.
        full: Export the whole table and replace the dataset.
        run_id: The Dagster run, recorded in the lineage.

    Returns:
        The table's record after the sync, or its record as it stands and the error.
    """
    try:
        with run_context(run_id):
            async with build() as connector:
                sync = getattr(connector, "sync_table")  # noqa: B009 - a PostgreSQL connector's own method
                landed = Path(await sync(dataset.name, str(folder), full=full))
    except DataSourceError as exc:
        return IncrementalOutcome(dataset, current_record(folder, dataset), synced=False, error=exc)
    return IncrementalOutcome(dataset, read_record(folder, landed.name), synced=True)


def current_record(folder: Path, dataset: Dataset) -> dict[str, Any] | None:
    """The dataset record of an incremental table as it stands.

    Args:
        folder: The source's folder in the workspace.
        dataset: The table's dataset.

    Returns:
        The record, or None before its first sync.
    """
    name = folder_name(dataset)
    return read_record(folder, name) if name else None


def data_version(record: dict[str, Any] | None) -> DataVersion:
    """The Dagster data version of an incremental table: its cursor's high-water mark and row count.

    Args:
        record: The table's dataset record; None before its first sync.

    Returns:
        ``cursor=<max>;rows=<count>``, or ``none`` before a first sync.
    """
    if not record:
        return DataVersion("none")
    return DataVersion(f"cursor={record.get('cursor_max')};rows={record.get('row_count')}")


def _incremental_metadata(outcome: IncrementalOutcome, uri: str) -> dict[str, Any]:
    """The materialization metadata of an incremental table after this run."""
    record = outcome.record or {}
    metadata: dict[str, Any] = {"dagster/uri": MetadataValue.text(uri),
                                "incremental": MetadataValue.bool(True),
                                "synced_now": MetadataValue.bool(outcome.synced)}
    if not record:
        return metadata
    metadata.update({key: value for key, value in materialization_metadata(record, "").items()
                     if key not in ("partition_key", "dagster/uri", "sql")})
    drift = record.get("schema_change") if outcome.synced else {}
    metadata.update({
        "rows_added": MetadataValue.int(int(record.get("rows_synced") or 0) if outcome.synced else 0),
        "cursor": MetadataValue.text(str(record.get("cursor"))),
        "cursor_high_water_mark": MetadataValue.text(str(record.get("cursor_max"))),
        "parts": MetadataValue.int(len(record.get("parts") or [])),
        "last_sync": MetadataValue.text(str(record.get("last_sync"))),
        "schema_drift": MetadataValue.json(drift or {}),
        "on_schema_change": MetadataValue.text(str(record.get("on_schema_change", "full_refresh"))),
        "deletes": MetadataValue.text(str(record.get("deletes", ""))),
    })
    return metadata


def incremental_events(outcome: IncrementalOutcome, key: AssetKey,
                       uri: str) -> list[MaterializeResult[None] | AssetObservation]:
    """The events of one incremental table after this run.

    Args:
        outcome: The table's record after the run, or the error that stopped it.
        key: The table's asset key.
        uri: Where the source lives (``dagster/uri``).

    Returns:
        A materialization when the table synced (or was not asked to); an observation of the error when not.
    """
    if outcome.error is None:
        return [MaterializeResult(asset_key=key, metadata=_incremental_metadata(outcome, uri),
                                  data_version=data_version(outcome.record))]
    from connectors.postgresql.incremental import SchemaChangedError

    facts: dict[str, Any] = {"error": MetadataValue.text(redact(str(outcome.error)))}
    if isinstance(outcome.error, SchemaChangedError):
        facts.update({"schema_drift_refused": MetadataValue.bool(True),
                      "on_schema_change": MetadataValue.text("fail")})
    return [AssetObservation(asset_key=key, metadata=facts)]


def verify_parts(folder: Path, dataset: Dataset) -> tuple[list[str], dict[str, Any]]:
    """Check each part of an incremental table against its own lineage record.

    Args:
        folder: The source's folder in the workspace.
        dataset: The table's dataset.

    Returns:
        The damaged parts, and the check's metadata.
    """
    name = folder_name(dataset)
    record = current_record(folder, dataset) or {}
    damaged: list[str] = []
    for part in record.get("parts") or []:
        relative = f"{name}/{part['name']}"
        part_record = read_record(folder, relative)  # read beneath the folder, never through a link
        if part_record is None or sha256_beneath(folder, relative) != part_record.get("sha256"):
            damaged.append(str(part["name"]))
    facts = {"parts": MetadataValue.int(len(record.get("parts") or [])),
             "damaged_parts": MetadataValue.json(damaged[:20])}
    return damaged, facts
