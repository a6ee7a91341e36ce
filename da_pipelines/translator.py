"""How a source's datasets become Dagster assets: every key, group, kind, tag, description and metadata.

:class:`DataSourceTranslator` decides them, as ``DagsterDltTranslator`` does for
dagster-dlt; subclass it and override a ``get_*`` method to change one (pass the
instance to :func:`da_pipelines.factory.source_keys`). The Component's
``translation`` settings are applied through it too. The metadata of materializations
(lineage facts of landed items, a dataset's sync summary) are made here as well. :class:`SourceKeys` holds
the rest of one source's names: resource ``N_source``, op ``N_sync_items``,
job ``N_sync``, sensor ``N_sensor``, with ``N`` the source's slug
(:func:`connectors.ids.source_slug`).

Example:
    >>> class Prefixed(DataSourceTranslator):
    ...     def get_asset_key(self, dataset: Dataset) -> AssetKey:
    ...         return super().get_asset_key(dataset).with_prefix("lake")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from dagster import (
    AssetKey,
    AssetSpec,
    Backoff,
    DynamicPartitionsDefinition,
    Jitter,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableSchema,
)

from connectors.base import DataSourceConfig
from connectors.ids import source_slug
from connectors.pipeline_settings import PipelineSettings
from connectors.secrets.references import Secret, is_reference, redact
from connectors.syncing.dataset_sync import DatasetOutcome
from connectors.syncing.datasets import Dataset
from da_pipelines.resources import SourceResource, WorkspaceResource

WORKSPACE_KEY = "workspace"
CHECK_NAME = "landed_files_match_lineage"
KINDS = {"local_file": "file", "azure_blob": "azure", "s3": "s3", "postgresql": "postgres"}
# A change applied to each dataset's spec after the translator made it (the Component's ``translation``).
SpecTranslator = Callable[[AssetSpec, Dataset], AssetSpec]


class DataSourceTranslator:
    """Decides the asset key, group, kinds, tags, description and metadata of each dataset of one source.

    Args:
        source: the source whose datasets are translated.
        settings: its ``metadata.dagster`` settings (group name, tags).
        translation: a change applied to each finished spec (the Component's ``translation``).
    """

    def __init__(self, source: DataSourceConfig, settings: PipelineSettings,
                 translation: SpecTranslator | None = None) -> None:
        self.source = source
        self.settings = settings
        self.translation = translation

    @property
    def slug(self) -> str:
        """``N``: the source id lower-cased, other characters than ``[a-z0-9_]`` as ``_``."""
        return source_slug(self.source.id)

    @property
    def group_name(self) -> str:
        """The source's group: ``metadata.dagster.group_name`` or ``N``."""
        return self.settings.group_name or self.slug

    @property
    def remote_key(self) -> AssetKey:
        """``[N, "remote"]``: the external asset, the data as it sits in the source."""
        return AssetKey([self.slug, "remote"])

    def get_asset_key(self, dataset: Dataset) -> AssetKey:
        """The dataset's asset key.

        Args:
            dataset: one dataset of the source.

        Returns:
            ``[N, set]`` or ``[N, schema, table]`` (the dataset's ``path``).
        """
        return AssetKey(list(dataset.path))

    def get_group_name(self, dataset: Dataset) -> str:
        """The dataset's group.

        Args:
            dataset: one dataset of the source.

        Returns:
            ``metadata.dagster.group_name`` or ``N``, the source's group.
        """
        return self.group_name

    def get_kinds(self, dataset: Dataset) -> set[str]:
        """The kinds shown on the asset.

        Args:
            dataset: one dataset of the source.

        Returns:
            ``table`` or ``file``, and the storage (``postgres``, ``azure``, ``s3``, ``file``).
        """
        return {"table" if dataset.kind == "table" else "file", KINDS.get(self.source.type_name, "file")}

    def get_tags(self, dataset: Dataset) -> dict[str, str]:
        """The asset's tags.

        Args:
            dataset: one dataset of the source.

        Returns:
            The source's ``metadata.dagster.tags``.
        """
        return dict(self.settings.tags)

    def get_description(self, dataset: Dataset) -> str:
        """The asset's description.

        Args:
            dataset: one dataset of the source.

        Returns:
            What the dataset holds.
        """
        return dataset.description

    def get_uri(self, dataset: Dataset) -> str:
        """Where the dataset lives, for ``dagster/uri`` (never a secret).

        Args:
            dataset: one dataset of the source.

        Returns:
            The source's URI with the set's prefix, or ``#schema.table`` for a table.
        """
        base = source_uri(self.source)
        if dataset.kind == "table":
            return f"{base}#{dataset.name}"
        return f"{base.rstrip('/')}/{dataset.prefix}" if dataset.prefix else base

    def get_metadata(self, dataset: Dataset) -> dict[str, Any]:
        """The asset's definition metadata.

        Args:
            dataset: one dataset of the source.

        Returns:
            ``dagster/uri`` and ``source_id``; a table's ``dagster/table_name`` and
            ``dagster/column_schema``; a set's ``prefix`` and ``glob``.
        """
        metadata: dict[str, Any] = {"dagster/uri": self.get_uri(dataset), "source_id": self.source.id}
        if dataset.kind == "table":
            metadata["dagster/table_name"] = dataset.name
            columns = [TableColumn(name=str(c.get("name")), type=str(c.get("type", "unknown")))
                       for c in dataset.facts.get("columns") or [] if isinstance(c, dict)]
            if columns:
                metadata["dagster/column_schema"] = TableSchema(columns=columns)
        else:
            metadata.update({"prefix": dataset.prefix, "glob": dataset.glob or "*"})
        return metadata

    def get_asset_spec(self, dataset: Dataset) -> AssetSpec:
        """The dataset's spec, from the ``get_*`` methods, then ``translation`` if one was given.

        Args:
            dataset: one dataset of the source.

        Returns:
            The spec, depending on ``[N, "remote"]``.
        """
        spec = AssetSpec(key=self.get_asset_key(dataset), deps=[self.remote_key],
                         group_name=self.get_group_name(dataset), kinds=self.get_kinds(dataset),
                         description=self.get_description(dataset), metadata=self.get_metadata(dataset),
                         tags=self.get_tags(dataset), skippable=False)
        return self.translation(spec, dataset) if self.translation else spec

    def get_remote_spec(self, listing_note: str = "") -> AssetSpec:
        """``[N, "remote"]``: external; Dagster does not materialize it, it shows where data comes from.

        Args:
            listing_note: why the table listing is old or missing, shown in the description.

        Returns:
            The external asset's spec.
        """
        note = f"\n\n**Listing:** {listing_note}" if listing_note else ""
        return AssetSpec(
            key=self.remote_key,
            description=f"{self.source.name}: the data as it sits in the source (external).{note}",
            group_name=self.group_name,
            kinds={KINDS.get(self.source.type_name, self.source.type_name)},
            metadata={"dagster/uri": source_uri(self.source), "source_id": self.source.id},
        )


@dataclass(frozen=True)
class SourceKeys:
    """One source's definitions by name: its datasets, translator, resource, op and policies."""

    translator: DataSourceTranslator = field(compare=False)
    datasets: tuple[Dataset, ...] = ()
    listing_note: str = ""  # why the table listing is old or missing, shown on the remote asset

    @property
    def source(self) -> DataSourceConfig:
        """The source these definitions serve."""
        return self.translator.source

    @property
    def settings(self) -> PipelineSettings:
        """Its ``metadata.dagster`` settings."""
        return self.translator.settings

    @property
    def slug(self) -> str:
        """``N``: the source id lower-cased, other characters than ``[a-z0-9_]`` as ``_``."""
        return self.translator.slug

    @property
    def resource_key(self) -> str:
        """The key of the source's resource."""
        return f"{self.slug}_source"

    @property
    def group(self) -> str:
        """The source's group: ``metadata.dagster.group_name`` or ``N``."""
        return self.translator.group_name

    @property
    def remote(self) -> AssetKey:
        """The external asset: the data as it sits in the source."""
        return self.translator.remote_key

    @property
    def op_name(self) -> str:
        """The op that lands the datasets (its run config takes chosen items)."""
        return f"{self.slug}_sync_items"

    @property
    def retry_policy(self) -> RetryPolicy:
        """Retries reach only errors marked retryable: terminal ones raise Failure(allow_retries=False)."""
        return RetryPolicy(max_retries=self.settings.max_retries, delay=self.settings.retry_delay_seconds,
                           backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

    def partitions(self, dataset: Dataset) -> DynamicPartitionsDefinition:
        """The item partitions of a set that opted in: ``N__set``.

        Args:
            dataset: A partitioned item set.

        Returns:
            The dynamic partitions definition, one key per item (:func:`item_partition_key`).
        """
        return DynamicPartitionsDefinition(name=f"{self.slug}__{dataset.file_name}")


# --- metadata of materializations: the lineage facts, under Dagster's standard keys ---------


def materialization_metadata(record: dict[str, Any], partition_key: str) -> dict[str, Any]:
    """The lineage facts of one landed item, under Dagster's standard keys where there is one.

    Args:
        record: The item's lineage record.
        partition_key: The item's partition key.

    Returns:
        The materialization metadata (path, size, sha256, version, ``dagster/uri``; a table's facts).
    """
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
    if isinstance(record.get("options"), dict):  # the part of the table landed
        metadata["options"] = MetadataValue.json(record["options"])
    if isinstance(record.get("profile"), dict):  # nulls, min/max, distinct, examples per column
        metadata["profile"] = MetadataValue.json(record["profile"])
    return metadata


def _column(column: Any) -> TableColumn:
    """A column given as ``{"name", "type"}`` or as a ``[name, type]`` pair."""
    if isinstance(column, dict):
        return TableColumn(name=str(column.get("name")), type=str(column.get("type", "unknown")))
    name, kind = column
    return TableColumn(name=str(name), type=str(kind))


def dataset_metadata(outcome: DatasetOutcome, uri: str, record: dict[str, Any] | None,
                     skipped: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The summary of one dataset's sync: counts, bytes, manifest, URI; table facts from ``record``.

    Args:
        outcome: What the sync did to the dataset.
        uri: Where the source lives (``dagster/uri``).
        record: A table's lineage record (row count, columns), or None.
        skipped: The dataset's items that were not landed, with why (unsafe or refused names, excluded).

    Returns:
        The materialization metadata.
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



def source_and_folder(resources: Any, keys: SourceKeys) -> tuple[SourceResource, Path]:
    """The source's resource and its workspace folder, from a context's resources.

    Args:
        resources: An asset's or sensor's ``context.resources``.
        keys: The source's keys (its resource key).

    Returns:
        The source's resource, and ``<workspace>/<source_id>``.
    """
    source: SourceResource = getattr(resources, keys.resource_key)
    workspace: WorkspaceResource = getattr(resources, WORKSPACE_KEY)
    return source, workspace.source_dir(source.source_id)


def source_uri(source: DataSourceConfig) -> str:
    """Where the source lives, for ``dagster/uri``: built from non-secret settings only.

    Args:
        source: The source's entry.

    Returns:
        A URI such as ``file:///srv/docs``, ``s3://bucket/prefix`` or ``postgresql://host:5432/db``;
        ``<type>://<id>`` when the settings give nothing literal to build one from.
    """
    config = source.config

    def literal(key: str) -> str | None:
        value = config.get(key)
        if isinstance(value, Secret) and key == "account_url":  # a SAS inside: _without_query drops it
            return value.reveal()
        return value if isinstance(value, str) and not is_reference(value) else None

    if source.type_name == "local_file" and literal("root"):
        return Path(str(literal("root"))).absolute().as_uri()
    if source.type_name == "azure_blob":
        base = _without_query(literal("account_url"))
        container = f"{base.rstrip('/')}/{config.get('container_name')}" if base else (
            f"azure://{config.get('container_name')}")
        return f"{container}/{config.get('prefix') or ''}".rstrip("/")
    if source.type_name == "s3":
        base = _without_query(literal("endpoint_url"))
        bucket = f"{base.rstrip('/')}/{config.get('bucket')}" if base else f"s3://{config.get('bucket')}"
        return f"{bucket}/{config.get('prefix') or ''}".rstrip("/")
    if source.type_name == "postgresql" and literal("host"):
        port = config.get("port", 5432)
        where = f"{literal('host')}:{port}" if isinstance(port, int) else str(literal("host"))
        return f"postgresql://{where}/{literal('dbname') or ''}"
    return f"{source.type_name}://{source.id}"


def _without_query(url: str | None) -> str | None:
    """``url`` without query or credentials (a SAS token must never become metadata)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# Substrings Dagster refuses in partition keys (dagster's INVALID_PARTITION_SUBSTRINGS), plus "%",
# which marks an encoded key. Everything else is kept, so keys read as the identifiers.
_REFUSED_IN_KEYS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


def item_partition_key(identifier: str) -> str:
    """The partition key of an item: the identifier itself, unless Dagster would refuse it.

    Only then (``...``, control characters) or when it holds ``%`` is it
    percent-encoded, so :func:`item_from_partition_key` always gives it back.

    Args:
        identifier: The item's identifier (hostile input).

    Returns:
        The partition key.
    """
    if "%" not in identifier and not any(bad in identifier for bad in _REFUSED_IN_KEYS):
        return identifier
    encoded = "".join(f"%{ord(c):02X}" if c == "%" or ord(c) < 32 else c for c in identifier)
    return encoded.replace("..", ".%2E").replace("%2E.", "%2E%2E")


def item_from_partition_key(key: str) -> str:
    """The identifier a partition key was made from.

    Args:
        key: A key made by :func:`item_partition_key`.

    Returns:
        The item's identifier.
    """
    return unquote(key) if "%" in key else key
