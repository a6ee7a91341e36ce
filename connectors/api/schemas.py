"""Request and response bodies, in DeepAnalyze's style: ``id``, ``object``, ``created_at``; lists and deletes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.landing.names import unsafe_text_reason
from connectors.rows import RowOptions

_REF: dict[str, Any] = {"secret": "warehouse.password"}


class Body(BaseModel):
    """A request body: unknown keys are refused (422)."""

    model_config = ConfigDict(extra="forbid")


class SourceCreate(Body):
    """A new source. A secret field takes a reference ({env}/{secret}) or a literal, which is write-only:
    it goes to the credential store as ``<id>.<field>`` and the source keeps a reference to it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "warehouse", "type": "postgresql", "name": "Warehouse",
        "config": {"host": "db.internal", "dbname": "sales", "user": "reader", "password": {"env": "PG_PASSWORD"}},
        "metadata": {"team": "finance"}}]})
    id: str = Field(description="Letters, digits, '-' and '_', starting with a letter; at most 63.")
    type: str = Field(description="Connector type: azure_blob, s3, postgresql, local_file or a plugin's.")
    name: str | None = Field(None, max_length=200, description="Human-readable name (default: the id).")
    config: dict[str, Any] = Field(description="Type-specific settings; secrets as references or write-only.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form labels; "
                                     "metadata.api.max_item_bytes sets this source's item size limit.")


class SourceUpdate(Body):
    """Changes: ``config`` and ``metadata`` keys are merged; a null value removes a key."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"config": {"schemas": ["public"]}}]})
    name: str | None = Field(None, max_length=200, description="New name.")
    config: dict[str, Any] | None = Field(None, description="Keys to set (null removes).")
    metadata: dict[str, Any] | None = Field(None, description="Keys to set (null removes).")


class DataSource(BaseModel):
    """A configured source. Secrets appear only as references, never as values."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "warehouse", "object": "data_source", "created_at": 1764662400, "type": "postgresql",
        "name": "Warehouse", "config": {"host": "db.internal", "password": _REF}, "metadata": {}}]})
    id: str
    object: Literal["data_source"] = "data_source"
    created_at: int
    type: str
    name: str
    config: dict[str, Any]
    metadata: dict[str, Any]


class Page(BaseModel):
    """One page of a list: ask again with ``after=next_cursor`` while ``has_more``."""

    object: Literal["list"] = "list"
    has_more: bool = Field(description="More follow: ask again with after=next_cursor.")
    next_cursor: str | None = None


class SourceList(Page):
    """A page of sources."""

    data: list[DataSource]


class Deleted(BaseModel):
    """What a delete removed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "warehouse", "object": "data_source",
                                                               "deleted": True}]})
    id: str
    object: str
    deleted: Literal[True] = True


class TestResult(BaseModel):
    """Whether the source answered a fresh connection, how fast, or why not."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "warehouse", "object": "data_source.test", "ok": False, "latency_ms": 12,
        "error": "source 'warehouse': connect: password authentication failed for user \"reader\""}]})
    id: str
    object: Literal["data_source.test"] = "data_source.test"
    ok: bool
    latency_ms: int
    error: str | None = Field(None, description="Why it failed (never a secret).")


class Entry(BaseModel):
    """An item (``data_source.item``) or a folder (``data_source.folder``) of a browse."""

    object: Literal["data_source.item", "data_source.folder"]
    path: str = Field(description="Identifier of an item; prefix (ending in the delimiter) of a folder.")
    name: str
    size: int | None = None
    modified_at: int | None = None
    metadata: dict[str, Any] | None = None


class RefusedItem(BaseModel):
    """A name the listing left out, with why."""

    path: str
    reason: str


class EntryList(Page):
    """A page of a source's items and folders."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"object": "list", "has_more": False,
        "next_cursor": None, "data": [
            {"object": "data_source.folder", "path": "2024/", "name": "2024"},
            {"object": "data_source.item", "path": "sales.csv", "name": "sales.csv", "size": 5120,
             "modified_at": 1764662400, "metadata": {"version": "0x8DC..."}}]}]})
    data: list[Entry]
    refused: list[RefusedItem] = Field(
        default_factory=list, description="First page only: names under the path the listing refused "
                                          "(a link leading outside the root, an unsafe name), never listed.")
    refused_count: int = Field(0, description="First page only: how many names were refused in all.")


class ItemMetadata(BaseModel):
    """What the connector knows of one item (size, version, columns...)."""

    object: Literal["data_source.item_metadata"] = "data_source.item_metadata"
    source_id: str
    item: str
    metadata: dict[str, Any]


class Column(BaseModel):
    """A table's column."""

    name: str
    type: str
    nullable: bool


class ForeignKey(BaseModel):
    """A foreign key: its columns and the table and columns they reference."""

    name: str
    table: str = Field(description="The referencing table (schema.table).")
    columns: list[str]
    references_table: str
    references_columns: list[str]


class TableSchema(BaseModel):
    """A table's columns, primary key and foreign keys."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "object": "data_source.table_schema", "source_id": "warehouse", "item": "public.orders",
        "kind": "table", "columns": [{"name": "id", "type": "integer", "nullable": False}],
        "primary_key": ["id"], "foreign_keys": [{"name": "orders_customer_fk", "table": "public.orders",
        "columns": ["customer_id"], "references_table": "public.customers", "references_columns": ["id"]}]}]})
    object: Literal["data_source.table_schema"] = "data_source.table_schema"
    source_id: str
    item: str
    kind: str
    columns: list[Column]
    primary_key: list[str]
    foreign_keys: list[ForeignKey]


class Relationships(BaseModel):
    """A page of the foreign keys between the source's tables."""

    object: Literal["list"] = "list"
    data: list[ForeignKey]
    has_more: bool = False
    next_cursor: str | None = None


class Preview(BaseModel):
    """The first rows of a table or file, with its columns."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "object": "data_source.preview", "source_id": "warehouse", "item": "public.orders",
        "columns": [{"name": "id", "type": "integer"}], "rows": [[1], [2]], "limit": 10}]})
    object: Literal["data_source.preview"] = "data_source.preview"
    source_id: str
    item: str
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    limit: int


class ColumnStats(BaseModel):
    """Statistics of one numeric column, computed by the database."""

    column: str
    type: str
    count: int
    nan_count: int = Field(0, description="Values that are NaN (numeric, real, double): left out of min, max, mean.")
    min: float | None
    max: float | None
    mean: float | None


class Stats(BaseModel):
    """A table's row count and its numeric columns' statistics."""

    object: Literal["data_source.stats"] = "data_source.stats"
    source_id: str
    item: str
    row_count: int
    columns: list[ColumnStats]


class FetchRequest(Body):
    """What to fetch and where: ``items`` (identifiers) or ``glob`` (over the source's listing)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"items": ["sales/2024.csv"], "workspace": "nightly-sales"}, {"glob": "sales/*.csv", "workspace": "t1"}]})
    items: list[str] | None = Field(None, max_length=10000, description="Identifiers, as the browse lists them.")
    glob: str | None = Field(None, max_length=1000, description="fnmatch pattern over the identifiers.")
    workspace: str = Field(description="A folder under the server's fetch-job base (an id, not a path).")
    options: RowOptions | None = Field(None, description="Tables (SQL sources): land only part of each: columns, "
                                       "where (with params), limit, sample (fraction or rows) and seed.")

    @field_validator("items")
    @classmethod
    def _safe_items(cls, items: list[str] | None) -> list[str] | None:
        for index, item in enumerate(items or ()):
            reason = unsafe_text_reason(item)
            if reason:
                raise ValueError(f"items[{index}] {reason}")
        return items

    @field_validator("glob")
    @classmethod
    def _safe_glob(cls, glob: str | None) -> str | None:
        reason = unsafe_text_reason(glob or "")
        if reason:
            raise ValueError(f"glob {reason}")
        return glob


class Progress(BaseModel):
    """How far a fetch job is: items and bytes (``bytes_total`` null when a size is unknown)."""

    items_total: int
    items_done: int
    bytes_done: int
    bytes_total: int | None


class LandedFile(BaseModel):
    """A file a fetch job landed, with its lineage record."""

    identifier: str
    path: str = Field(description="Relative to the fetch-jobs base: <workspace>/<landed name>.")
    size: int | None
    sha256: str | None
    lineage: dict[str, Any]


class Job(BaseModel):
    """A background fetch into a workspace: status, progress and, once finished, the files landed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "job-5b1f0c2e9a7d4b3c8e6f1a2d", "object": "data_source.fetch_job", "created_at": 1764662400,
        "source_id": "az", "workspace": "t1", "status": "running", "finished_at": None,
        "progress": {"items_total": 2, "items_done": 1, "bytes_done": 5120, "bytes_total": 10240},
        "files": [], "errors": []}]})
    id: str
    object: Literal["data_source.fetch_job"] = "data_source.fetch_job"
    created_at: int
    source_id: str
    workspace: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    finished_at: int | None
    progress: Progress
    files: list[LandedFile]
    errors: list[dict[str, str]]


class JobList(BaseModel):
    """A page of a source's fetch jobs, oldest first."""

    object: Literal["list"] = "list"
    data: list[Job]
    has_more: bool = False
    next_cursor: str | None = None


class Lineage(BaseModel):
    """The provenance record of a landed file."""

    object: Literal["data_source.lineage"] = "data_source.lineage"
    path: str
    record: dict[str, Any]


class ErrorBody(BaseModel):
    """Every error answer: ``{"detail": ...}``, never a secret."""

    detail: Any = Field(description="What went wrong, in one line (a list of fields for 422).")


class Health(BaseModel):
    """Liveness: the server answers (no key needed)."""

    status: str
    timestamp: int
