"""Discovery helpers without HTTP: tables' keys, previews and statistics in PostgreSQL; previews of files.

Table work runs in the connector's read-only snapshot transaction (its
``_read``), so it obeys the source's ``statement_timeout`` and can never write;
statistics are computed by the database (``count``, ``min``, ``max``, ``avg``),
never by pulling rows here. Files are previewed by landing them in a temporary
folder (within the item size limit) and reading the first rows with pyarrow.
"""

from __future__ import annotations

import math
import tempfile
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError
from connectors.postgresql import PostgreSQLConnector
from connectors.postgresql.catalog import format_identifier, parse_identifier

_FOREIGN_KEYS = """
SELECT con.conname::text, cn.nspname::text, cl.relname::text,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
       fn.nspname::text, fl.relname::text,
       array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint con
JOIN pg_class cl ON cl.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace
JOIN pg_class fl ON fl.oid = con.confrelid JOIN pg_namespace fn ON fn.oid = fl.relnamespace
WHERE con.contype = 'f' AND {condition}
ORDER BY 2, 3, 1
"""
_KEYS_OF_TABLE = sql.SQL(_FOREIGN_KEYS.replace("{condition}", "cn.nspname = %s AND cl.relname = %s"))  # noqa: S608
_KEYS_IN_SCHEMAS = sql.SQL(_FOREIGN_KEYS.replace("{condition}", "cn.nspname = ANY(%s)"))  # noqa: S608
NUMERIC_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision", "decimal")
_NAN_TYPES = ("numeric", "real", "double precision", "decimal")
FILE_FORMATS = {".csv": ",", ".tsv": "\t", ".parquet": "", ".pq": ""}


def is_table_source(connector: DataSourceConnector) -> bool:
    """Whether the connector's items are tables with schemas, keys and statistics (PostgreSQL).

    Args:
        connector: a source's connector.

    Returns:
        True for a PostgreSQL connector.
    """
    return isinstance(connector, PostgreSQLConnector)


def _pg(connector: DataSourceConnector) -> PostgreSQLConnector:
    if not isinstance(connector, PostgreSQLConnector):
        raise ConfigurationError("schemas, relationships and statistics exist for tables (postgresql sources) only")
    return connector


def _table(connector: DataSourceConnector, item: str) -> tuple[PostgreSQLConnector, str, str]:
    pg = _pg(connector)
    schema, table = parse_identifier(item)
    return pg, schema, table


def _foreign_key(row: tuple[Any, ...]) -> dict[str, Any]:
    name, schema, table, columns, ref_schema, ref_table, ref_columns = row
    return {"name": name, "table": format_identifier(schema, table), "columns": list(columns),
            "references_table": format_identifier(ref_schema, ref_table), "references_columns": list(ref_columns)}


async def foreign_keys(connector: DataSourceConnector, item: str | None) -> list[dict[str, Any]]:
    """Foreign keys, read from the catalog in the source's read-only transaction.

    Args:
        connector: a connected PostgreSQL connector.
        item: a table (``schema.table``); None: every table in the source's schemas.

    Returns:
        Per key: ``name``, ``table``, ``columns``, ``references_table``, ``references_columns``;
        sorted by schema, table and name.

    Raises:
        ConfigurationError: the connector is not PostgreSQL's, or ``item`` is not a table name.
    """
    if item is None:
        pg = _pg(connector)
        assert pg._settings is not None  # connected: the pool hands out only connected connectors
        query, params = _KEYS_IN_SCHEMAS, [list(pg._settings.schemas)]
    else:
        pg, schema, table = _table(connector, item)
        query, params = _KEYS_OF_TABLE, [schema, table]  # type: ignore[list-item]
    async with pg._read("foreign keys", item) as (conn, _, _):
        cursor = await conn.execute(query, params)
        return [_foreign_key(row) for row in await cursor.fetchall()]


class PreviewTooLargeError(ConfigurationError):
    """The rows asked for are over the preview's byte cap."""


async def preview_table(connector: DataSourceConnector, item: str, limit: int, max_bytes: int | None = None
                        ) -> tuple[list[str], list[list[Any]]]:
    """Column names and the first ``limit`` rows of table ``item``.

    With ``max_bytes``, the database first measures those rows as text (nothing
    is sent but the number), so no row over the cap is read into memory.

    Args:
        connector: a connected PostgreSQL connector.
        item: the table (``schema.table``).
        limit: rows at most.
        max_bytes: the rows' size as text at most; None: no byte cap.

    Returns:
        The column names, and the rows as JSON-safe values.

    Raises:
        PreviewTooLargeError: the rows are over ``max_bytes``.
        ConfigurationError: the connector is not PostgreSQL's, or ``item`` is not a table name.
    """
    pg, schema, table = _table(connector, item)
    statement = sql.SQL("SELECT * FROM {} LIMIT %s").format(sql.Identifier(schema, table))
    measure = sql.SQL("SELECT coalesce(sum(octet_length(t::text)), 0) FROM ({}) t").format(statement)
    async with pg._read("preview", item) as (conn, _, _):
        if max_bytes is not None:
            row = await (await conn.execute(measure, [limit])).fetchone()
            size = int(row[0]) if row else 0
            if size > max_bytes:
                raise PreviewTooLargeError(f"the first {limit} rows of {item!r} are {size} bytes, over the "
                                           f"preview cap of {max_bytes} bytes; ask for fewer rows")
        cursor = await conn.execute(statement, [limit])
        names = [column.name for column in cursor.description or []]
        return names, [[json_value(v) for v in row] for row in await cursor.fetchall()]


async def table_stats(connector: DataSourceConnector, item: str, columns: list[dict[str, Any]]
                      ) -> tuple[int, list[dict[str, Any]]]:
    """Row count and, per numeric column, count, NaN count, min, max and mean, in one query.

    Args:
        connector: a connected PostgreSQL connector.
        item: the table (``schema.table``).
        columns: its columns as its metadata lists them (``name``, ``type``); the numeric ones are measured.

    Returns:
        The row count, and per numeric column its statistics (min, max, mean None when there is no number).

    Raises:
        ConfigurationError: the connector is not PostgreSQL's, or ``item`` is not a table name.
    """
    pg, schema, table = _table(connector, item)
    numeric = [c for c in columns if str(c["type"]).startswith(NUMERIC_TYPES)]
    parts: list[sql.Composable] = [sql.SQL("count(*)")]
    for column in numeric:
        parts += _column_stats(sql.Identifier(column["name"]), str(column["type"]).startswith(_NAN_TYPES))
    statement = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(parts), sql.Identifier(schema, table))
    async with pg._read("statistics", item) as (conn, _, _):
        cursor = await conn.execute(statement)
        row = await cursor.fetchone()
    assert row is not None
    stats = [{"column": c["name"], "type": c["type"], "count": int(row[1 + 5 * i]), "nan_count": int(row[2 + 5 * i]),
              **{k: _finite(row[3 + 5 * i + j]) for j, k in enumerate(("min", "max", "mean"))}}
             for i, c in enumerate(numeric)]
    return int(row[0]), stats


def _column_stats(ident: sql.Identifier, takes_nan: bool) -> list[sql.Composable]:
    """count, NaN count, min, max, mean of one column; NaN (numeric, real, double) is left out of the last three.

    PostgreSQL sorts NaN above every number, so one NaN would make max and mean NaN (shown as null).
    """
    if not takes_nan:
        return [sql.SQL("count({})").format(ident), sql.SQL("0"), sql.SQL("min({})::float8").format(ident),
                sql.SQL("max({})::float8").format(ident), sql.SQL("avg({})::float8").format(ident)]
    number = sql.SQL("FILTER (WHERE {} <> 'NaN')").format(ident)
    return [sql.SQL("count({})").format(ident), sql.SQL("count(*) FILTER (WHERE {} = 'NaN')").format(ident),
            *(sql.SQL("({}({}) {})::float8").format(sql.SQL(f), ident, number) for f in ("min", "max", "avg"))]


def file_format(item: str) -> str | None:
    """The previewable format of a file item, from its suffix.

    Args:
        item: the item's name.

    Returns:
        ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` (lower case), or None when it cannot be previewed.
    """
    suffix = Path(item).suffix.lower()
    return suffix if suffix in FILE_FORMATS else None


async def preview_file(connector: DataSourceConnector, item: str, limit: int
                       ) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """Columns and the first rows of a CSV, TSV or Parquet item, landed in a temporary folder and read by pyarrow.

    Args:
        connector: a connected connector of files.
        item: the item's identifier.
        limit: rows at most.

    Returns:
        The columns (``name``, Arrow ``type``), and the rows as JSON-safe values.

    Raises:
        ConfigurationError: the item is not CSV, TSV or Parquet, or cannot be read as such.
    """
    suffix = file_format(item)
    if suffix is None:
        raise ConfigurationError(f"{item!r} is neither a table nor a CSV, TSV or Parquet file; no preview")
    with tempfile.TemporaryDirectory(prefix="da-preview-") as folder:
        path = await connector.fetch_data(item, folder)
        table = _first_rows(path, suffix, limit)
    columns = [{"name": field.name, "type": str(field.type)} for field in table.schema]
    rows = [[json_value(row[c["name"]]) for c in columns] for row in table.to_pylist()]
    return columns, rows


def _first_rows(path: str, suffix: str, limit: int) -> pa.Table:
    try:
        if FILE_FORMATS[suffix]:
            reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=FILE_FORMATS[suffix]))
            batches, count = [], 0
            for batch in reader:
                batches.append(batch)
                count += batch.num_rows
                if count >= limit:
                    break
            return pa.Table.from_batches(batches, reader.schema).slice(0, limit)
        parquet = pq.ParquetFile(path)
        batch = next(parquet.iter_batches(batch_size=max(limit, 1)), None)
        return pa.Table.from_batches([batch] if batch is not None else [], parquet.schema_arrow).slice(0, limit)
    except (pa.ArrowException, StopIteration) as exc:
        raise ConfigurationError(f"cannot read the file as {suffix[1:]}: {str(exc).splitlines()[0][:200]}") from None


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def json_value(value: Any) -> Any:
    """A JSON-safe form of a database or Arrow value.

    Args:
        value: any value a row or a metadata mapping holds.

    Returns:
        The value in JSON types: decimals as floats (NaN and infinities as text), dates and times
        in ISO form, bytes in hex, lists and mappings converted inside, anything else as its ``str``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else str(value)
    if isinstance(value, datetime | date | clock):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)
