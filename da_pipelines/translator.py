"""The names, keys and policies of one source's definitions, and the source's URI.

With ``N`` the source's slug (``da_pipelines.names.source_slug``): resource ``N_source``,
the external asset ``[N, "remote"]``, one asset per dataset (``da_pipelines.datasets``),
the op ``N_sync_items`` that lands them, job ``N_sync``, sensor ``N_sensor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dagster import AssetKey, AssetSpec, Backoff, DynamicPartitionsDefinition, Jitter, RetryPolicy

from connectors.base import DataSourceConfig
from connectors.pipeline_settings import PipelineSettings
from connectors.secrets.references import Secret, is_reference
from da_pipelines.datasets import Dataset
from da_pipelines.names import source_slug
from da_pipelines.resources import SourceResource, WorkspaceResource

WORKSPACE_KEY = "workspace"
CHECK_NAME = "landed_files_match_lineage"
KINDS = {"local_file": "file", "azure_blob": "azure", "s3": "s3", "postgresql": "postgres"}
# How the component (or a caller) changes the asset specs: key, group, tags, automation condition.
SpecTranslator = Callable[[AssetSpec, Dataset], AssetSpec]


@dataclass(frozen=True)
class SourceKeys:
    """The names and keys of one source's definitions, and its datasets."""

    source: DataSourceConfig
    settings: PipelineSettings
    datasets: tuple[Dataset, ...] = ()
    listing_note: str = ""  # why the table listing is old or missing, shown on the remote asset
    translate: SpecTranslator | None = field(default=None, compare=False)

    @property
    def slug(self) -> str:
        """``N``: the source id lower-cased, other characters than ``[a-z0-9_]`` as ``_``."""
        return source_slug(self.source.id)

    @property
    def resource_key(self) -> str:
        """The key of the source's resource."""
        return f"{self.slug}_source"

    @property
    def group(self) -> str:
        """The assets' group: ``metadata.dagster.group_name`` or ``N``."""
        return self.settings.group_name or self.slug

    @property
    def remote(self) -> AssetKey:
        """The external asset: the data as it sits in the source."""
        return AssetKey([self.slug, "remote"])

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
        """The item partitions of a set that opted in: ``N__set``."""
        return DynamicPartitionsDefinition(name=f"{self.slug}__{dataset.file_name}")


def source_and_folder(resources: Any, keys: SourceKeys) -> tuple[SourceResource, Path]:
    """The source's resource and its workspace folder, from a context's resources."""
    source: SourceResource = getattr(resources, keys.resource_key)
    workspace: WorkspaceResource = getattr(resources, WORKSPACE_KEY)
    return source, workspace.source_dir(source.source_id)


def source_uri(source: DataSourceConfig) -> str:
    """Where the source lives, for ``dagster/uri``: built from non-secret settings only."""
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
