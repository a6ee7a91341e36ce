"""Lineage records as Dagster metadata, and the integrity check of a landed file.

Plain functions: the asset, the sync op and the asset check all use them, so a
materialization carries the same facts whichever way the item landed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from dagster import MetadataValue, TableColumn, TableSchema

_HASH_BUFFER = 4 * 1024 * 1024


def materialization_metadata(record: dict[str, Any], partition_key: str) -> dict[str, Any]:
    """The lineage facts of one landed item, under Dagster's standard keys where there is one."""
    metadata: dict[str, Any] = {
        "dagster/uri": MetadataValue.text(str(record.get("source_uri") or "")),
        "path": MetadataValue.path(str(record["local_path"])),
        "identifier": MetadataValue.text(str(record["identifier"])),
        "partition_key": MetadataValue.text(partition_key),
        "size": MetadataValue.int(int(record["size"])),
        "sha256": MetadataValue.text(str(record["sha256"])),
        "source_id": MetadataValue.text(str(record["source_id"])),
        "source_type": MetadataValue.text(str(record["source_type"])),
        "source_version": MetadataValue.text(str(record.get("source_version"))),
        "fetched_at": MetadataValue.text(str(record["fetched_at"])),
    }
    metadata.update(_table_metadata(record))
    return metadata


def _table_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """Row count, column schema and table name, for items that are tables."""
    metadata: dict[str, Any] = {}
    if record.get("row_count") is not None:
        metadata["dagster/row_count"] = MetadataValue.int(int(record["row_count"]))
    columns = record.get("columns")
    if columns:
        schema = TableSchema(columns=[_column(column) for column in columns])
        metadata["dagster/column_schema"] = MetadataValue.table_schema(schema)
        metadata["dagster/table_name"] = MetadataValue.text(str(record.get("table") or record["identifier"]))
    if record.get("sql"):
        metadata["sql"] = MetadataValue.text(str(record["sql"]))
    return metadata


def _column(column: Any) -> TableColumn:
    """A column given as ``{"name", "type"}`` or as a ``[name, type]`` pair."""
    if isinstance(column, dict):
        return TableColumn(name=str(column.get("name")), type=str(column.get("type", "unknown")))
    name, kind = column
    return TableColumn(name=str(name), type=str(kind))


def verify_landed(record: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether the landed file exists and its size and sha256 match its lineage record."""
    path = Path(str(record["local_path"]))
    facts: dict[str, Any] = {"path": MetadataValue.path(str(path)), "expected_sha256": record["sha256"]}
    if not path.is_file() or path.is_symlink():
        return False, {**facts, "problem": "the landed file is missing"}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_BUFFER):
            digest.update(chunk)
    actual = digest.hexdigest()
    facts["actual_sha256"] = actual
    if actual != record["sha256"] or path.stat().st_size != int(record["size"]):
        return False, {**facts, "problem": "the file differs from its lineage record"}
    return True, facts
