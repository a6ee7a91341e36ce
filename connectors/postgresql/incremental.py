"""Incremental table syncs by a cursor column: which rows a re-sync reads, schema drift, the dataset record.

A re-sync reads the rows whose cursor is above the last sync's highest cursor minus ``lookback``
(for transactions that committed late with an earlier cursor value), **without** the rows already
landed in that look-back window: their (primary key, cursor) pairs, read from the landed parts, are
excluded on the server. A row updated since (same key, a higher cursor) lands again as a new row
version; the latest version per primary key is the current row
(``docs/connectors/postgresql.md``, "Incremental tables").

**Deletes are not seen**: a deleted row leaves no cursor behind. Replace the dataset with a full
sync (``full=True``, ``da-sources sync-table --full``) to drop them, periodically or when it matters.

Why a cursor column and not ``xmin``: ``xmin`` is a 32-bit transaction id that wraps around (and is
frozen by VACUUM), so "above the last xmin" is not an order across wraparound, and it is not exposed
for views; a cursor column the application maintains is explicit and indexable. A table without
such a column is synced whole (``fetch``), or gets a trigger-maintained ``updated_at``.
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc
from psycopg import sql

from connectors.errors import ConfigurationError, DataFetchError
from connectors.postgresql.catalog import Column

# The package's public surface is its connector; these are the names other packages and the docs use.
__all__ = ["SchemaChangedError"]

TIME_BASES = ("timestamp", "timestamptz", "date")
ORDERED_BASES = ("int2", "int4", "int8", "numeric", "float4", "float8", *TIME_BASES)


class SchemaChangedError(DataFetchError):
    """The table's columns changed since the last sync and the source says ``on_schema_change: fail``."""


def cursor_column(columns: list[Column], name: str) -> Column:
    """The cursor column, which must exist and be of an ordered type."""
    found = next((c for c in columns if c.name == name), None)
    if found is None:
        raise ConfigurationError(f"incremental: no cursor column {name!r}")
    if found.resolved.base not in ORDERED_BASES:
        raise ConfigurationError(f"incremental: the cursor {name!r} is {found.type}; it must be a number, "
                                 "a date or a timestamp")
    return found


def schema_diff(before: list[dict[str, Any]] | None, now: list[Column]) -> dict[str, Any]:
    """``{added, removed, retyped}`` between the last sync's columns and the table's; empty when none."""
    if before is None:
        return {}
    old = {str(c["name"]): str(c["type"]) for c in before}
    new = {c.name: c.type for c in now}
    diff = {"added": [n for n in new if n not in old], "removed": [n for n in old if n not in new],
            "retyped": [{"name": n, "from": old[n], "to": new[n]} for n in new if n in old and old[n] != new[n]]}
    return {k: v for k, v in diff.items() if v}


def lower_bound(cursor: Column, last: str, lookback: float) -> sql.Composable:
    """``CAST(last AS type) - lookback``, in the cursor's units."""
    last_value = sql.SQL("CAST({} AS {})").format(sql.Literal(last), sql.SQL(cursor.type))
    if not lookback:
        return last_value
    if cursor.resolved.base in TIME_BASES:
        return sql.SQL("{} - pg_catalog.make_interval(secs => {})").format(last_value, sql.Literal(lookback))
    return sql.SQL("{} - {}").format(last_value, sql.Literal(lookback))


def landed_window(folder: Any, cursor: str, key: list[str], lower: Any) -> dict[str, list[str]]:
    """The (key..., cursor) values of landed rows with cursor >= ``lower``, as texts per column."""
    import pyarrow.dataset as ds  # here: it imports pandas (0.3-0.5 s), which an export does not need

    dataset = ds.dataset(str(folder), format="parquet")
    columns = list(dict.fromkeys([*key, cursor]))  # the cursor may be the key
    table = dataset.to_table(columns=columns, filter=pc.field(cursor) >= lower)
    return {name: [_text(v) for v in table.column(name).to_pylist()] for name in columns}


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def increment_condition(cursor: Column, lower: sql.Composable, key: list[Column],
                        window: dict[str, list[str]]) -> sql.Composable:
    """``cursor >= lower AND (key, cursor) NOT IN (the landed window)``: what is new since the last sync."""
    condition = sql.SQL("{} >= {}").format(sql.Identifier("da_row", cursor.name), lower)
    if not window.get(cursor.name):
        return condition
    columns = [*key, *([] if cursor.name in {c.name for c in key} else [cursor])]  # the cursor may be the key
    arrays = [sql.SQL("CAST({} AS {}[])").format(sql.Literal(window[c.name]), sql.SQL(c.type)) for c in columns]
    # unnest of several arrays is FROM-clause syntax (ROWS FROM), not a qualified function; search_path is pinned
    return sql.SQL("{} AND ({}) NOT IN (SELECT * FROM unnest({}))").format(
        condition, sql.SQL(", ").join(sql.Identifier("da_row", c.name) for c in columns), sql.SQL(", ").join(arrays))
