"""Typed settings of the built-in connector types, and their validation.

``DataSourceConfig.config`` is a plain dict (DeepAnalyze's original interface). It is checked
against the type's settings model twice: when the config is built, with secret
references allowed in place of any value, and when a connector connects, after
the references are resolved, to give the connector a typed settings object.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from connectors.errors import ConfigurationError
from connectors.rows import IncrementalSpec, RowOptions
from connectors.secrets.references import MASK, Secret, carries_secret, resolve_config


class EnvReference(BaseModel):
    """``{"env": "NAME"}``: the value of an environment variable, read at connect time."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    env: str = Field(description="Name of the environment variable.")


class StoreReference(BaseModel):
    """``{"secret": "NAME"}``: a value from the credential store, read at connect time."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    secret: str = Field(description="Name of the secret in the credential store.")


class ConnectorSettings(BaseModel):
    """Base of every connector type's settings: unknown keys are refused.

    ``complete_at_connect``: a config of this type may be built incomplete (a required field
    missing, no way to authenticate yet); it is checked whole when a connector connects, and when
    it is stored (:func:`check_complete`). DeepAnalyze's own example builds Azure configs that way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    complete_at_connect: ClassVar[bool] = False

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """Names of the fields that hold secrets (masked in every repr).

        Returns:
            The names of the fields typed :class:`Secret`.
        """
        return frozenset(n for n, f in cls.model_fields.items() if _mentions_secret(f.annotation))

    def __repr_args__(self) -> Any:
        # a resolved account_url with a SAS, a host with a password: text fields that carry a secret
        for name, value in super().__repr_args__():
            yield name, (MASK if isinstance(value, str) and carries_secret(value) else value)


def _mentions_secret(annotation: Any) -> bool:
    return annotation is Secret or Secret in getattr(annotation, "__args__", ())


class LocalFileSettings(ConnectorSettings):
    """Settings of a ``local_file`` source."""

    root: str = Field(description="Folder the source serves; nothing outside it is ever read.")
    pattern: str | None = Field(
        None, description="fnmatch glob on the path relative to root, e.g. '*.csv'."
    )
    recursive: bool = Field(True, description="List sub-folders too.")


class AzureBlobSettings(ConnectorSettings):
    """Settings of an ``azure_blob`` source."""

    complete_at_connect: ClassVar[bool] = True  # DataSourceConfig(type=AZURE_BLOB, config={"connection_string": ...})

    container_name: str = Field(description="The container to read.")
    connection_string: Secret | None = Field(None, description="Storage connection string.")
    account_url: str | None = Field(None, description="https://<account>.blob.core.windows.net")
    account_key: Secret | None = Field(None, description="Shared key, with account_url.")
    sas_token: Secret | None = Field(None, description="SAS token, with account_url.")
    credential: Literal["default"] | None = Field(
        None, description="'default': DefaultAzureCredential (needs the azure-identity extra)."
    )
    prefix: str = Field("", description="Only blobs under this virtual folder.")
    pattern: str | None = Field(None, description="fnmatch glob on the blob name.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(60.0, gt=0, description="Seconds without a byte before giving up.")
    max_concurrency: int = Field(8, ge=1, le=64, description="Parallel ranged reads per blob.")
    retry_total: int = Field(5, ge=0, le=20, description="Retries of transient failures.")

    @field_validator("account_key")
    @classmethod
    def _key_is_base64(cls, value: Any) -> Any:
        # checked here, at once: a key that is not base64 would only fail when the first request is signed
        if _is_bad_key(_revealed(value)):
            raise ValueError("is not a storage account key: expected the base64 text the portal shows "
                             "(88 characters ending in '==')")
        return value

    @field_validator("connection_string")
    @classmethod
    def _connection_string_key_is_base64(cls, value: Any) -> Any:
        if _is_bad_key(_account_key_of(_revealed(value))):
            raise ValueError("its AccountKey is not a storage account key: expected the base64 text the "
                             "portal shows (88 characters ending in '==')")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> AzureBlobSettings:
        if (self.connection_string is None) == (self.account_url is None):
            raise ValueError("give exactly one of connection_string or account_url")
        given = [k for k in ("account_key", "sas_token", "credential") if getattr(self, k) is not None]
        if self.connection_string is not None and given:
            raise ValueError(f"{given[0]} goes with account_url, not with connection_string")
        if len(given) > 1:
            raise ValueError(f"give at most one of account_key, sas_token, credential (got {given})")
        if self.credential == "default" and not (self.account_url or "").lower().startswith("https://"):
            raise ValueError("credential 'default' sends an Entra ID token, which Azure accepts over https "
                             "only: account_url must start with https://")
        return self


class S3Settings(ConnectorSettings):
    """Settings of an ``s3`` source: one bucket of Amazon S3 or an S3-compatible store."""

    bucket: str = Field(description="The bucket to read.")
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, R2, Ceph...), e.g. https://minio.example:9000; "
        "none: Amazon S3 in region.")
    region: str = Field("us-east-1", description="Region the requests are signed for.")
    path_style: bool | None = Field(
        None, description="Address the bucket as <endpoint>/<bucket> (true) or <bucket>.<host> (false); "
        "default: path style with endpoint_url, virtual-hosted on Amazon S3.")
    access_key_id: Secret | None = Field(None, description="Access key id, with secret_access_key.")
    secret_access_key: Secret | None = Field(None, description="Secret access key, with access_key_id.")
    session_token: Secret | None = Field(None, description="Session token of temporary keys.")
    profile: str | None = Field(None, description="A named profile of the shared AWS config files.")
    credential: Literal["default", "anonymous"] | None = Field(
        None, description="'default': the default AWS chain (environment, config files, web identity, "
        "container and instance metadata); 'anonymous': unsigned requests (public buckets).")
    prefix: str = Field("", description="Only objects under this virtual folder.")
    pattern: str | None = Field(None, description="fnmatch glob on the object key.")
    verify_etag_md5: bool = Field(
        True, description="Check a single-part object's bytes against its ETag (its MD5); turn off for "
        "SSE-KMS or SSE-C buckets, whose ETags are not MD5s.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(60.0, gt=0, description="Seconds without a byte before giving up.")
    max_concurrency: int = Field(8, ge=1, le=64, description="Parallel ranged reads per object.")
    retry_total: int = Field(5, ge=0, le=20, description="Retries of transient failures (throttling included).")

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> S3Settings:
        keys = self.access_key_id is not None or self.secret_access_key is not None
        if keys and (self.access_key_id is None or self.secret_access_key is None):
            raise ValueError("give access_key_id and secret_access_key together")
        if self.session_token is not None and not keys:
            raise ValueError("session_token goes with access_key_id and secret_access_key")
        given = [name for name, on in (("access_key_id", keys), ("profile", self.profile is not None),
                                       ("credential", self.credential is not None)) if on]
        if len(given) != 1:
            raise ValueError("give exactly one way to authenticate: access_key_id + secret_access_key, "
                             f"profile, or credential ('default' or 'anonymous'); got {given or 'none'}")
        if self.endpoint_url is not None and not self.endpoint_url.lower().startswith(("http://", "https://")):
            raise ValueError("endpoint_url must start with http:// or https://")
        return self


def _revealed(value: Any) -> str | None:
    """The text of a literal secret; None for a reference (checked once resolved) or a masked copy."""
    if not isinstance(value, Secret):
        return None
    try:
        return value.reveal()
    except ConfigurationError:
        return None


def _account_key_of(connection_string: str | None) -> str | None:
    for part in (connection_string or "").split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "accountkey":
            return value.strip()
    return None


def _is_bad_key(key: str | None) -> bool:
    if key is None:
        return False
    try:
        return not base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        return True


class PostgreSQLSettings(ConnectorSettings):
    """Settings of a ``postgresql`` source."""

    dsn: Secret | None = Field(None, description="libpq connection string or URI.")
    host: str | None = Field(None, description="Server host name or address.")
    port: int = Field(5432, ge=1, le=65535, description="Server port.")
    dbname: str | None = Field(None, description="Database name.")
    user: str | None = Field(None, description="User name.")
    password: Secret | None = Field(None, description="Password.")
    sslmode: str | None = Field(None, description="libpq sslmode (disable, require, verify-full...).")
    schemas: list[str] = Field(
        default_factory=lambda: ["public"],
        description="The source's scope: listing, fetch_data and get_metadata see only these schemas "
        "(anything else is not found). fetch_query is bounded by the role's privileges instead.",
    )
    format: Literal["csv", "parquet"] = Field("csv", description="File format of fetched tables.")
    partitions: bool = Field(
        False,
        description="List each partition of a partitioned table as an item of its own, besides the parent. "
        "Off: only the parent is listed (it reads every partition), so the data lands once; a partition "
        "can still be fetched by name.")
    csv_values: Literal["analysis", "postgresql"] = Field(
        "analysis",
        description="CSV value forms. 'analysis': true/false, arrays as JSON, bytea as plain hex, money as "
        "a plain number, so pandas and pyarrow read them back typed. 'postgresql': PostgreSQL's own text "
        "forms (t/f, {a,\"b,c\"}, \\x..., $12.34).",
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect.")
    statement_timeout: float | None = Field(
        3600.0, gt=0,
        description="Seconds one statement may run: a listing, or the whole export of one table or query "
        "(null: the server's setting, which is no limit unless the server sets one).",
    )
    lock_timeout: float | None = Field(
        30.0, gt=0,
        description="Seconds a read waits for a lock another session holds (ALTER TABLE, TRUNCATE, LOCK, "
        "VACUUM FULL) before failing with a retryable error (null: the server's setting, by default "
        "waiting forever).",
    )
    allow_privileged_queries: bool = Field(
        False,
        description="Let fetch_query run with a role that can act outside the database (superuser, server "
        "files or programs, signalling sessions, administrator functions, dblink, table writes). Off: such "
        "a role is refused.",
    )
    table_options: dict[str, RowOptions] = Field(
        default_factory=dict,
        description="Per table ('schema.table'), the part of it every fetch lands (fetch, N_sync, the Dagster "
        "table datasets, sensors): columns, where (+ params), limit, sample, seed. A table not named lands whole.",
    )
    incremental: dict[str, IncrementalSpec] = Field(
        default_factory=dict,
        description="Per table ('schema.table'), sync it incrementally by a cursor column into a Parquet dataset "
        "folder of parts (sync_table / da-sources sync-table); deletes are not seen: run it with full to replace.",
    )
    part_bytes: int = Field(
        128 << 20, ge=1 << 16,
        description="Parquet: a table whose size in the database is at least this (or a query result the planner "
        "expects that big) lands as a dataset folder '<schema>.<table>/' of parts of about this many bytes each "
        "(pyarrow, pandas, DuckDB, Polars read the folder as one table); a smaller one as one file '.parquet'.",
    )
    profile: bool | Literal["exact"] = Field(
        True, description="Describe every landed table or query result in its lineage record (rows, per column "
        "types, nulls, min/max, distinct count, examples). true: a big CSV export's profile uses only idle CPU "
        "and, when the CPU is busy, describes part of the rows (it says how many: 'profiled_rows'; the row count "
        "stays exact); 'exact': every row, whatever it costs; false: no profile.")
    sensitive_columns: list[str] = Field(
        default_factory=list,
        description="Columns whose values never appear in a landed file's profile (no examples, no min/max): "
        "patterns over the column name or 'schema.table.column', e.g. 'email', 'public.users.*'.",
    )
    pool_min_size: int = Field(0, ge=0, description="Connections kept open.")
    pool_max_size: int = Field(4, ge=1, description="Most connections at once.")
    pool_max_lifetime: float = Field(3600.0, gt=0, description="Seconds before a connection is renewed.")

    @model_validator(mode="after")
    def _dsn_or_host(self) -> PostgreSQLSettings:
        if self.dsn is None and self.host is None:
            raise ValueError("give dsn, or host (with port, dbname, user, password)")
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size is larger than pool_max_size")
        return self


BUILTIN_SETTINGS: dict[str, type[ConnectorSettings]] = {
    "local_file": LocalFileSettings,
    "azure_blob": AzureBlobSettings,
    "postgresql": PostgreSQLSettings,
    "s3": S3Settings,
}

_Reference = EnvReference | StoreReference


@functools.cache
def _with_references(model: type[ConnectorSettings]) -> type[ConnectorSettings]:
    """``model`` with a secret reference accepted in place of any field's value."""
    fields: dict[str, Any] = {name: _tolerant_field(info) for name, info in model.model_fields.items()}
    derived: type[ConnectorSettings] = create_model(  # type: ignore[call-overload]
        f"{model.__name__}WithReferences", __base__=model, **fields
    )
    return derived


def _tolerant_field(info: FieldInfo) -> tuple[Any, Any]:
    # constraints (ge, gt...) stay on the literal branch; a reference is checked at connect time
    literal = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    if info.default_factory is not None:
        default = Field(default_factory=info.default_factory)
    else:
        default = Field(info.default) if not info.is_required() else Field()
    return (literal | _Reference, default)


def check_config(
    model: type[ConnectorSettings], config: Mapping[str, Any], source_id: str
) -> dict[str, Any]:
    """Validate ``config`` (references allowed); return it with literal secrets masked.

    Of a type whose settings are ``complete_at_connect``, only what is given is checked (types and
    forms): a missing field or a missing way to authenticate waits for the connect, or for
    :func:`check_complete` when the source is stored.

    A literal secret is the value of a secret field, or any text value that
    carries a secret part (:func:`~connectors.secrets.references.carries_secret`:
    an ``account_url`` with a SAS, a ``host`` with ``user:password@``...). Both
    are kept as :class:`Secret`: masked, never written to the sources file,
    refused by Dagster; give them as references instead.

    Args:
        model: The type's settings model.
        config: The source's ``config`` mapping (hostile input).
        source_id: The source, named in the error.

    Returns:
        ``config`` with every literal secret wrapped in :class:`Secret`.

    Raises:
        ConfigurationError: naming the source and each bad field.
    """
    secret_fields = model.secret_fields()
    try:
        _with_references(model).model_validate(_revealed_text(config, secret_fields))
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if model.complete_at_connect:  # what is missing is checked at connect (and when stored)
            errors = [e for e in errors if e["type"] != "missing" and e["loc"]]
        if errors:
            raise ConfigurationError(describe_error_list(errors, "config"), source_id=source_id) from None
    return {
        key: Secret(value) if isinstance(value, str) and (key in secret_fields or carries_secret(value)) else value
        for key, value in config.items()
    }


def _revealed_text(config: Mapping[str, Any], secret_fields: frozenset[str]) -> dict[str, Any]:
    """``config`` with text fields that :func:`check_config` masked (an ``account_url`` with a SAS) as text."""
    return {k: v.reveal() if isinstance(v, Secret) and k not in secret_fields else v for k, v in config.items()}


def literal_secrets(model: type[ConnectorSettings], config: Mapping[str, Any]) -> dict[str, str]:
    """Per key of ``config`` holding a literal secret (in key order): how to name it in a message.

    Example: ``{"account_url": "config.account_url (its value carries a secret: ...)"}``.

    Args:
        model: The type's settings model.
        config: A config as :func:`check_config` returned it.

    Returns:
        Per key holding a literal secret, how a message names it (never its value).
    """
    secret_fields = model.secret_fields()
    why = " (its value carries a secret: a SAS signature, a password or a key)"
    return {
        key: f"config.{key}" + ("" if key in secret_fields else why)
        for key, value in sorted(config.items())
        if isinstance(value, Secret)
    }


_Settings = Any


def resolve_settings(
    model: type[ConnectorSettings], config: Mapping[str, Any], source_id: str
) -> _Settings:
    """Resolve the references in ``config`` and return the typed settings object.

    Args:
        model: The type's settings model.
        config: The source's ``config``, references and all.
        source_id: The source, named in the error.

    Returns:
        An instance of ``model``, secrets resolved.

    Raises:
        ConfigurationError: A bad or missing field, or a reference that cannot be resolved.
    """
    resolved = resolve_config(_revealed_text(config, model.secret_fields()), source_id=source_id)
    try:
        return model.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc, "config"), source_id=source_id) from None


def check_complete(model: type[ConnectorSettings], config: Mapping[str, Any], source_id: str) -> None:
    """Check ``config`` whole, required fields included (references allowed): before a source is stored.

    Args:
        model: The type's settings model.
        config: The source's ``config``.
        source_id: The source, named in the error.

    Raises:
        ConfigurationError: naming the source and each bad or missing field.
    """
    try:
        _with_references(model).model_validate(_revealed_text(config, model.secret_fields()))
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc, "config"), source_id=source_id) from None


def describe_errors(exc: ValidationError, prefix: str) -> str:
    """One line per bad field, without the offending values (they may be secrets).

    Args:
        exc: pydantic's error.
        prefix: What the fields are under, in the message (``config``, ``metadata.dagster``).

    Returns:
        ``prefix.field: what is wrong`` for each bad field, joined by ``; ``.
    """
    return describe_error_list(exc.errors(include_input=False, include_url=False), prefix)


def describe_error_list(errors: Any, prefix: str) -> str:
    """:func:`describe_errors` of a list of pydantic errors.

    Args:
        errors: pydantic's ``ValidationError.errors()``, without inputs.
        prefix: What the fields are under, in the message.

    Returns:
        ``prefix.field: what is wrong`` for each bad field, joined by ``; ``.
    """
    seen: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error["loc"][:1]] if error["loc"] else []
        field = ".".join(part for part in [prefix, *loc] if part) or "value"
        seen.setdefault(field, _plain_message(error))
    return "; ".join(f"{field}: {message}" for field, message in seen.items())


def _plain_message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return message.removeprefix("Value error, ")
