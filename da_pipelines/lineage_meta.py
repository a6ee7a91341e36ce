"""Lineage records as Dagster metadata, and the integrity check of a landed file.

Plain functions: the asset, the sync op and the asset check all use them, so a
materialization carries the same facts whichever way the item landed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import MetadataValue, TableColumn, TableSchema

from connectors.errors import DataSourceError
from connectors.landing.dirs import open_regular_file
from connectors.landing.root import open_workspace_folder
from connectors.secrets.references import redact
from connectors.syncing.dataset_manifest import ManifestEntry

if TYPE_CHECKING:
    from da_pipelines.dataset_sync import DatasetOutcome

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
        metadata["dagster/table_name"] = MetadataValue.text(str(record["identifier"]))
    if record.get("sql"):
        metadata["sql"] = MetadataValue.text(str(record["sql"]))
    if isinstance(record.get("options"), dict):  # the part of the table landed (issue 26.1)
        metadata["options"] = MetadataValue.json(record["options"])
    if isinstance(record.get("profile"), dict):  # nulls, min/max, distinct, examples per column (issue 26.2)
        metadata["profile"] = MetadataValue.json(record["profile"])
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


def sha256_beneath(folder: Path, relative: str) -> str | None:
    """The sha256 of the regular file ``folder/relative``, reached without following any link; else None.

    The manifest and the landed tree live in the workspace, where the agent writes too: a
    folder swapped for a link, an absolute or ``..`` path, must not make the check read
    a file outside the source's folder.
    """
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    try:
        dir_fd = open_workspace_folder(folder, parts[:-1], create=False)
    except (OSError, DataSourceError):
        return None
    try:
        fd = open_regular_file(dir_fd, parts[-1])
    finally:
        os.close(dir_fd)
    if fd is None:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(_HASH_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def verify_entries(folder: Path, entries: Iterable[ManifestEntry], *, full: bool, sample_size: int,
                   count: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """Check a dataset's landed files against its manifest: the damaged identifiers and the facts.

    Every file is checked for presence and size (a stat); the sha256 is
    recomputed for every file (``full``) or for an evenly spread sample of
    ``sample_size`` files, so a check stays fast on 100,000 files. ``entries``
    is streamed once when ``count`` (their number) is given: nothing is held
    but the damaged identifiers.
    """
    if count is None:
        entries = list(entries)
        count = len(entries)
    damaged: list[str] = []
    base = str(folder)
    step = 1 if full or count <= sample_size else count / sample_size
    picked = None if step == 1 else {int(i * step) for i in range(sample_size)}
    hashed = 0
    for position, entry in enumerate(entries):  # one lstat on a string path per file: runs over every file
        try:
            info = os.lstat(f"{base}/{entry.path}")
        except OSError:
            damaged.append(entry.identifier)
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
            damaged.append(entry.identifier)
        elif picked is None or position in picked:
            hashed += 1
            if sha256_beneath(folder, entry.path) != entry.sha256:
                damaged.append(entry.identifier)
    facts: dict[str, Any] = {
        "files": MetadataValue.int(count),
        "hashed": MetadataValue.int(hashed),
        "mode": MetadataValue.text("full" if step == 1 else f"sampled ({sample_size} sha256, every size)"),
        "damaged": MetadataValue.int(len(damaged)),
    }
    if damaged:
        facts["damaged_items"] = MetadataValue.json(sorted(damaged)[:20])
        facts["problem"] = MetadataValue.text(
            f"{len(damaged)} landed file(s) are missing or differ from their lineage; the next sync repairs them")
    return damaged, facts


def dataset_metadata(outcome: DatasetOutcome, uri: str, record: dict[str, Any] | None,
                     skipped: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The summary of one dataset's sync: counts, bytes, manifest, URI; table facts from ``record``.

    ``skipped``: the dataset's items that were not landed, with why (unsafe or refused names, excluded).
    """
    metadata: dict[str, Any] = {
        "dagster/uri": MetadataValue.text(uri),
        "items": MetadataValue.int(outcome.items),
        "items_landed": MetadataValue.int(outcome.landed_count),
        "items_unchanged": MetadataValue.int(outcome.unchanged),
        "items_repaired": MetadataValue.int(len(outcome.repaired)),
        "items_failed": MetadataValue.int(len(outcome.failed)),
        "items_removed_at_source": MetadataValue.int(len(outcome.removed)),
        "items_skipped": MetadataValue.int(len(skipped)),
        "bytes_landed": MetadataValue.int(outcome.bytes_landed),
        "bytes": MetadataValue.int(outcome.total_bytes),
    }
    if outcome.manifest is not None:
        metadata["manifest"] = MetadataValue.path(str(outcome.manifest))
    if outcome.failed:
        metadata["failed_items"] = MetadataValue.json(sorted(outcome.failed)[:20])
    if skipped:
        metadata["skipped_items"] = MetadataValue.json([{"item": i, "why": redact(w)} for i, w in skipped[:20]])
    if outcome.removed:
        metadata["removed_items"] = MetadataValue.json(outcome.removed[:20])
    if record is not None:
        metadata.update(_table_metadata(record))
        metadata["path"] = MetadataValue.path(str(record["local_path"]))
        metadata["sha256"] = MetadataValue.text(str(record["sha256"]))
        metadata["source_version"] = MetadataValue.text(str(record.get("source_version")))
    return metadata
