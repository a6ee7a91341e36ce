"""Per-source tuning of the Dagster layer, read from the source's ``metadata.dagster``.

Plain pydantic, no dagster: the sources file, the CLI and the API check an entry's
``metadata.dagster`` with the same model the code location uses.

Example (sources file)::

    metadata:
      dagster:
        max_items_per_tick: 2000
        item_sets:                      # blob and file sources; default: one set "files" for everything
          - {name: exports, prefix: exports/, glob: "*.parquet"}
          - {name: invoices, prefix: invoices/, partitioned: true}
        tables: {include: ["public.*"], exclude: ["public.tmp_*"]}   # PostgreSQL sources
        check: {mode: sampled, sample_size: 100}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.settings import describe_errors

DEFAULT_SET = "files"
DEFAULT_LOOKBACK_SECONDS = 900  # the sensor's cursor tracks items this close to the newest exactly
# Partitions per asset where Dagster's partition pages stay usable (its documented ceiling is ~100,000).
MAX_PARTITIONS = 25_000
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RESERVED_NAMES = frozenset({"remote", "tables"})


class ItemSetSpec(BaseModel):
    """One declared set of items of a blob or file source: one asset ``[N, name]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The asset's name under the source: lower-case letters, digits, _.")
    prefix: str = Field("", description="Only items whose identifier starts with this (a virtual folder).")
    glob: str | None = Field(None, description="fnmatch glob on the identifier (`*` also matches `/`).")
    partitioned: bool = Field(
        False, description=f"One partition per item (at most {MAX_PARTITIONS:,} items), so one can be "
                           "materialized on its own; removed items delete their partitions.")
    description: str | None = Field(None, description="Shown on the asset in the UI.")
    shards: int = Field(
        1, ge=1, le=64, description="Sync the set in this many steps (items split by a stable hash of their "
                                    "identifier), run side by side within the source's pool; then one merge step.")

    @model_validator(mode="after")
    def _shards_or_partitions(self) -> ItemSetSpec:
        if self.shards > 1 and self.partitioned:
            raise ValueError("a partitioned set cannot be sharded (each of its items is a step already)")
        return self

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value) or value in _RESERVED_NAMES:
            raise ValueError("must be lower-case letters, digits and _, start with a letter, "
                             f"and not be one of {sorted(_RESERVED_NAMES)}")
        return value


class TableScope(BaseModel):
    """Which tables and views of a PostgreSQL source become assets (fnmatch on ``schema.table``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: list[str] = Field(default_factory=lambda: ["*"], description="Globs of tables to include.")
    exclude: list[str] = Field(default_factory=list, description="Globs of tables to leave out.")


class CheckSettings(BaseModel):
    """How the integrity check of a set verifies its landed files against their lineage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["sampled", "full"] = Field(
        "sampled", description="sampled: every file's size and the sha256 of a sample; full: every sha256.")
    sample_size: int = Field(100, ge=1, description="Files whose sha256 is recomputed in sampled mode.")


class PipelineSettings(BaseModel):
    """How a source's assets, sensor and sync behave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum_interval_seconds: int = Field(30, ge=5, description="Seconds between sensor ticks.")
    max_items_per_tick: int = Field(
        5000, ge=1, description="Soft bound on the items one tick requests: keeps a tick short."
    )
    batch_size: int = Field(500, ge=1, description="Items per requested run.")
    lookback_seconds: int = Field(
        DEFAULT_LOOKBACK_SECONDS, ge=0, description="Items this close to the newest are tracked exactly."
    )
    concurrency: int = Field(8, ge=1, le=64, description="Fetches at once within a run.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a run step after a retryable error.")
    retry_delay_seconds: float = Field(5.0, ge=0, description="First retry delay; doubles each retry.")
    sensor_running_by_default: bool = Field(False, description="Start the sensor without a click in the UI.")
    item_sets: list[ItemSetSpec] = Field(
        default_factory=lambda: [ItemSetSpec.model_validate({"name": DEFAULT_SET})],
        description="Blob and file sources: the item sets, one asset each (default: one set for everything).")
    tables: TableScope = Field(
        default_factory=lambda: TableScope.model_validate({}), description="PostgreSQL sources: tables in scope.")
    check: CheckSettings = Field(
        default_factory=lambda: CheckSettings.model_validate({}), description="The integrity check of each set.")
    listing_ttl_seconds: int = Field(
        60, ge=0, description="PostgreSQL sources: age after which the table listing is refreshed on load.")
    group_name: str | None = Field(None, description="The assets' group (default: the source's slug N).")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags put on every asset of the source.")

    @field_validator("item_sets")
    @classmethod
    def _unique_set_names(cls, item_sets: list[ItemSetSpec]) -> list[ItemSetSpec]:
        names = [spec.name for spec in item_sets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"names must be unique, repeated: {duplicates}")
        if item_sets and all(spec.partitioned for spec in item_sets):
            raise ValueError("at least one set must be unpartitioned (N_sync lands the items of "
                             "partitioned sets through it)")
        return item_sets

def pipeline_settings(source: DataSourceConfig) -> PipelineSettings:
    """The settings in ``source.metadata["dagster"]`` (defaults when absent).

    Args:
        source: A sources-file entry.

    Returns:
        Its Dagster settings, validated.

    Raises:
        ConfigurationError: an unknown key or a bad value, naming the source and the field.
    """
    raw: Any = source.metadata.get("dagster") or {}
    try:
        return PipelineSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc, "metadata.dagster"), source_id=source.id) from None
