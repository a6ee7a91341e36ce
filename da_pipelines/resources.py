"""Dagster resources: configuration of one source (per connector type) and of the workspace.

Resources stay thin: they hold configuration and build a connector on demand
(``build_connector``); the work lives in plain functions (``connectors.syncing``).
No SDK client is kept on a resource: a connector is built, used inside one
``async with`` on the caller's event loop, and dropped.

Secrets never appear here as literals: a secret field holds an ``EnvVar`` (Dagster
resolves it in the run's process, and shows only the variable's name) or is
named in ``secret_refs`` (a credential-store reference that the connector
resolves when it connects).

Example:
    >>> AzureBlobResource(source_id="ds-azure-prod", source_name="Prod", container_name="data",
    ...                   connection_string=EnvVar("AZURE_STORAGE_CONNECTION_STRING"))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from dagster import ConfigurableResource
from pydantic import Field

from connectors.api.policy import ApiPolicy
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.landing.names import safe_relative_path
from connectors.plugins import get_connector_class
from connectors.secrets.references import MASK

# Fields of SourceResource itself, not part of a connector's config.
_OWN_FIELDS = frozenset({"source_id", "source_name", "secret_refs", "references", "reach_policy_file"})


class WorkspaceResource(ConfigurableResource):  # type: ignore[type-arg]  # generic only for dagster internals
    """The workspace root (``DA_WORKSPACE``); source ``X`` lands under ``<root>/X/``."""

    root: str = Field(description="Absolute path of the workspace root folder.")

    def source_dir(self, source_id: str) -> Path:
        """The folder where source ``source_id`` lands.

        Args:
            source_id: a configured source's id (a safe folder name by the id rule).

        Returns:
            ``<root>/<source_id>``, absolute.

        Raises:
            UnsafeNameError: ``source_id`` is not a safe folder name.
        """
        return Path(self.root).absolute() / safe_relative_path(source_id)


class SourceResource(ConfigurableResource):  # type: ignore[type-arg]  # generic only for dagster internals
    """Base of the per-type source resources: identity, references, and the connector factory."""

    type_name: ClassVar[str] = ""
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    source_id: str = Field(description="The source's id in the sources file.")
    source_name: str = Field(description="The source's human-readable name.")
    secret_refs: dict[str, str] = Field(
        default_factory=dict, description="Config key -> credential-store secret name ({secret: NAME})."
    )
    references: dict[str, str] = Field(
        default_factory=dict, description="Config key -> environment variable for non-text fields ({env: NAME})."
    )
    reach_policy_file: str | None = Field(
        None, description="For a source made through the HTTP API: the API policy file whose hosts, ports and "
        "schemes its connections are checked against at connect time (names resolved by us).",
    )

    def connector_type(self) -> str:
        """The connector type name this resource configures.

        Returns:
            The registered type name (``local_file``, ``azure_blob``, ``s3``, ``postgresql`` or a plugin's).
        """
        return self.type_name

    def connector_config(self) -> dict[str, Any]:
        """The connector's config dict: set fields, plus references (never resolved here).

        Returns:
            The config, each secret as ``{secret: NAME}`` or ``{env: NAME}``.
        """
        values = {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name not in _OWN_FIELDS and getattr(self, name) is not None
        }
        values.update({key: {"secret": name} for key, name in self.secret_refs.items()})
        values.update({key: {"env": name} for key, name in self.references.items()})
        return values

    def source_config(self) -> DataSourceConfig:
        """The validated config of this source.

        Returns:
            A :class:`~connectors.base.DataSourceConfig` with secrets as references.

        Raises:
            ConfigurationError: the fields do not make a valid config.
        """
        return DataSourceConfig(
            id=self.source_id, type=self.connector_type(), name=self.source_name, config=self.connector_config()
        )

    def build_connector(self) -> DataSourceConnector:
        """A new, unconnected connector; use it in ``async with`` on the current event loop.

        The connector lives for one coroutine: SDK clients bound to a loop never stay on the resource.

        Returns:
            The connector, held to the API policy's reach rules for a source made through the API.

        Raises:
            ConfigurationError: the connector type is unknown or its package is not installed.
        """
        connector = get_connector_class(self.connector_type())(self.source_config())
        if self.reach_policy_file:  # made through the API: held to the operator's reach rules here too
            connector.reach = ApiPolicy.load(self.reach_policy_file).reach
        return connector

    def __repr_args__(self) -> Any:
        # repr() of a resource may end up in a log or an error: mask resolved secrets
        for name, value in super().__repr_args__():
            yield name, (MASK if name in self.secret_fields and value is not None else value)


class LocalFileResource(SourceResource):
    """A ``local_file`` source: a folder on a local or shared disk."""

    type_name: ClassVar[str] = "local_file"

    root: str = Field(description="Folder the source serves; nothing outside it is ever read.")
    pattern: str | None = Field(None, description="fnmatch glob on the path relative to root.")
    recursive: bool = Field(True, description="List sub-folders too.")


class AzureBlobResource(SourceResource):
    """An ``azure_blob`` source: one container. Secrets as ``EnvVar`` or ``secret_refs`` only."""

    type_name: ClassVar[str] = "azure_blob"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"connection_string", "account_key", "sas_token"})

    container_name: str = Field(description="The container to read.")
    connection_string: str | None = Field(None, description="Storage connection string (an EnvVar).")
    account_url: str | None = Field(None, description="https://<account>.blob.core.windows.net")
    account_key: str | None = Field(None, description="Shared key, with account_url (an EnvVar).")
    sas_token: str | None = Field(None, description="SAS token, with account_url (an EnvVar).")
    credential: str | None = Field(None, description="'default': DefaultAzureCredential (azure-identity).")
    prefix: str = Field("", description="Only blobs under this virtual folder.")
    pattern: str | None = Field(None, description="fnmatch glob on the blob name.")
    connect_timeout: float = Field(10.0, description="Seconds to open a connection.")
    read_timeout: float = Field(60.0, description="Seconds without a byte before giving up.")
    max_concurrency: int = Field(8, description="Parallel ranged reads per blob.")
    retry_total: int = Field(5, description="Retries of transient failures.")


class S3Resource(SourceResource):
    """An ``s3`` source: one bucket of S3 or an S3-compatible store. Secrets as ``EnvVar`` or ``secret_refs`` only."""

    type_name: ClassVar[str] = "s3"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_key_id", "secret_access_key", "session_token"})

    bucket: str = Field(description="The bucket to read.")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; none: Amazon S3.")
    region: str = Field("us-east-1", description="Region the requests are signed for.")
    path_style: bool | None = Field(None, description="Path-style addressing (default: with endpoint_url).")
    access_key_id: str | None = Field(None, description="Access key id (an EnvVar).")
    secret_access_key: str | None = Field(None, description="Secret access key (an EnvVar).")
    session_token: str | None = Field(None, description="Session token (an EnvVar).")
    profile: str | None = Field(None, description="A named profile of the shared AWS config files.")
    credential: str | None = Field(None, description="'default' (the AWS chain) or 'anonymous'.")
    prefix: str = Field("", description="Only objects under this virtual folder.")
    pattern: str | None = Field(None, description="fnmatch glob on the object key.")
    verify_etag_md5: bool = Field(True, description="Check single-part ETags as MD5s (off for SSE-KMS/SSE-C).")
    connect_timeout: float = Field(10.0, description="Seconds to open a connection.")
    read_timeout: float = Field(60.0, description="Seconds without a byte before giving up.")
    max_concurrency: int = Field(8, description="Parallel ranged reads per object.")
    retry_total: int = Field(5, description="Retries of transient failures.")


class PostgreSQLResource(SourceResource):
    """A ``postgresql`` source: tables of some schemas. Secrets as ``EnvVar`` or ``secret_refs`` only."""

    type_name: ClassVar[str] = "postgresql"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"dsn", "password"})

    dsn: str | None = Field(None, description="libpq connection string or URI (an EnvVar).")
    host: str | None = Field(None, description="Server host name or address.")
    port: int = Field(5432, description="Server port.")
    dbname: str | None = Field(None, description="Database name.")
    user: str | None = Field(None, description="User name.")
    password: str | None = Field(None, description="Password (an EnvVar).")
    sslmode: str | None = Field(None, description="libpq sslmode.")
    schemas: list[str] = Field(default_factory=lambda: ["public"], description="Schemas to list.")
    format: str = Field("csv", description="File format of fetched tables: csv or parquet.")
    connect_timeout: float = Field(10.0, description="Seconds to connect.")
    statement_timeout: float | None = Field(None, description="Seconds a statement may run (default 3600).")
    lock_timeout: float | None = Field(None, description="Seconds a read waits for a lock (default 30).")
    csv_values: str | None = Field(None, description="CSV value forms: analysis (default) or postgresql.")
    allow_privileged_queries: bool | None = Field(None, description="Let fetch_query run with a privileged role.")
    pool_min_size: int | None = Field(None, description="Connections kept open (default 0).")
    pool_max_size: int | None = Field(None, description="Most connections at once (default 4).")
    pool_max_lifetime: float | None = Field(None, description="Seconds before a connection is renewed.")
    sensitive_columns: list[str] | None = Field(None, description="Columns whose values no profile shows.")
    part_bytes: int | None = Field(None, description="Parquet: a table at least this big lands as a dataset folder "
                                   "of parts of about this size (default 128 MiB).")
    table_options_json: str | None = Field(
        None, description="Per table, the part every fetch lands (the source's table_options, as JSON).")
    incremental_json: str | None = Field(
        None, description="Tables synced incrementally by a cursor (the source's incremental, as JSON).")

    def connector_config(self) -> dict[str, Any]:
        values = super().connector_config()
        for field, key in (("table_options_json", "table_options"), ("incremental_json", "incremental")):
            nested = values.pop(field, None)
            if nested is not None:
                values[key] = json.loads(nested)
        return values


class PluginSourceResource(SourceResource):
    """A source of a plugin connector type; its config is JSON whose secrets are references."""

    plugin_type: str = Field(description="The registered connector type name.")
    config_json: str = Field(description="The connector config as JSON (secrets only as references).")

    def connector_type(self) -> str:
        return self.plugin_type

    def connector_config(self) -> dict[str, Any]:
        values: dict[str, Any] = json.loads(self.config_json)
        values.update({key: {"secret": name} for key, name in self.secret_refs.items()})
        values.update({key: {"env": name} for key, name in self.references.items()})
        return values


RESOURCE_TYPES: dict[str, type[SourceResource]] = {
    cls.type_name: cls for cls in (LocalFileResource, AzureBlobResource, S3Resource, PostgreSQLResource)
}
