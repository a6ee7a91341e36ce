"""Sizing options of a read (which rows and columns) and size budgets: plain data, shared by every layer.

:class:`RowOptions` say which part of a table, query result or CSV/Parquet file to land;
:class:`RowBudget` is an operator's bound on one read. How a SQL source applies them:
:mod:`connectors.postgresql.slicing`; a file: :mod:`connectors.file_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.errors import ConfigurationError

OPTION_NAMES = "limit, sample, columns, where"


class RowOptions(BaseModel):
    """Which part of a table or query result to land (all fields optional)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    columns: list[str] | None = Field(None, min_length=1, max_length=1600,
                                      description="Only these columns, in this order.")
    where: str | None = Field(None, min_length=1, max_length=10000,
                              description="A SQL condition over the columns, e.g. 'status = %s'.")
    params: list[Any] | dict[str, Any] | None = Field(None, description="Values for the where's placeholders.")
    limit: int | None = Field(None, ge=0, description="At most this many rows (by primary key when there is one).")
    sample: float | None = Field(None, gt=0, description="A fraction (0 < x < 1) or a row count (whole number >= 1).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="The sample's seed: same seed, same data, same rows.")

    @model_validator(mode="after")
    def _consistent(self) -> RowOptions:
        if self.sample is not None and self.sample >= 1 and self.sample != int(self.sample):
            raise ValueError("sample: a fraction below 1, or a whole number of rows")
        if self.params is not None and self.where is None:
            raise ValueError("params need a where")
        return self

    def is_empty(self) -> bool:
        """Whether no option cuts anything (columns, where, limit and sample all unset).

        Returns:
            True when the table or query is fetched whole.
        """
        return self.columns is None and self.where is None and self.limit is None and self.sample is None

    def recorded(self) -> dict[str, Any]:
        """The options as the lineage record keeps them (without the defaults left unset).

        Returns:
            The options that are set, as JSON-ready values.
        """
        return self.model_dump(exclude_none=True)

    @property
    def sample_rows(self) -> int | None:
        return int(self.sample) if self.sample is not None and self.sample >= 1 else None


@dataclass(frozen=True)
class RowBudget:
    """The most rows and (estimated) bytes one read may land; None: no bound."""

    max_rows: int | None = None
    max_bytes: int | None = None


class BudgetExceededError(ConfigurationError):
    """A read is larger than the budget; it was refused before reading more than the budget."""




class IncrementalSpec(BaseModel):
    """How a PostgreSQL table is synced incrementally into a Parquet dataset folder.

    Example (a source's config)::

        incremental:
          public.orders: {cursor: updated_at, lookback: 300, on_schema_change: full_refresh}
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    cursor: str = Field(min_length=1, description="A column that grows with every insert and update "
                        "(updated_at, a sequence-fed id).")
    lookback: float = Field(0, ge=0, description="Re-read this far behind the last cursor (seconds for date and "
                            "time cursors, cursor units for numbers), for transactions that commit late.")
    on_schema_change: Literal["full_refresh", "evolve", "fail"] = Field(
        "full_refresh", description="When the table's columns changed since the last sync: export it whole again "
        "(default), add parts with the new columns, or fail naming the change.")
    part_bytes: int = Field(128 << 20, ge=1, description="A part file is closed once it holds about this many bytes.")
