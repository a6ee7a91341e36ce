"""PostgreSQL types -> Arrow types, for landing query results as Parquet.

Why it works this way: ``docs/design/postgresql.md``.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

# The package's public surface is its connector; these are the names other packages and the docs use.
__all__ = ["csv_select"]

Converter = Callable[[pa.Array], pa.Array]

_SCALARS: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
# element types whose JSON form (array_to_json) is the value itself
_JSON_ELEMENTS: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
}
INTERVAL = pa.struct([("months", pa.int32()), ("days", pa.int32()), ("microseconds", pa.int64())])
_NUMERIC_HEADER = 4  # VARHDRSZ, added to a numeric typmod


@dataclass(frozen=True)
class PgColumnType:
    """A result column's type as the catalog describes it.

    Attributes:
        name: the column name.
        display: ``format_type`` text, e.g. ``numeric(12,2)``; what lineage records show.
        base: ``typname`` after resolving a domain, e.g. ``numeric``, ``_int4``.
        kind: ``typtype`` of the base: ``b`` base, ``e`` enum, ``c`` composite...
        element: for arrays, the element's ``typname``.
        typmod: the type modifier (precision and scale for numeric), -1 if none.
    """

    name: str
    display: str
    base: str
    kind: str
    element: str | None
    typmod: int


@dataclass(frozen=True)
class ColumnPlan:
    """How one column travels: SQL expression -> CSV text -> Arrow type."""

    name: str
    select: sql.Composable
    read_type: pa.DataType
    arrow_type: pa.DataType
    convert: Converter | None = None


def _numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``numeric`` typmod, None when unconstrained."""
    if typmod < _NUMERIC_HEADER:
        return None
    packed = typmod - _NUMERIC_HEADER
    scale = ((packed & 0x7FF) ^ 1024) - 1024  # 11-bit signed since PostgreSQL 15
    return (packed >> 16) & 0xFFFF, scale


def csv_select(column: PgColumnType, ident: sql.Identifier) -> sql.Composable | None:
    """The expression giving ``column`` its analysis CSV form.

    Args:
        column: The column's resolved type.
        ident: The column as read in the SELECT.

    Returns:
        The SQL expression, or None when PostgreSQL's own text is already that form.
    """
    if column.element == "money":
        return sql.SQL("pg_catalog.array_to_json({}::pg_catalog.numeric[])::text").format(ident)
    if column.element is not None:
        return _array_plan(column, ident).select
    if column.base == "bool":
        return sql.SQL("CASE WHEN {0} THEN 'true' WHEN NOT {0} THEN 'false' END").format(ident)
    if column.base == "bytea":
        return sql.SQL("pg_catalog.encode({}, 'hex')").format(ident)
    if column.base == "money":
        return sql.SQL("{}::pg_catalog.numeric").format(ident)
    return None


def plan_column(column: PgColumnType, ident: sql.Identifier, *, money_scale: int = 2) -> ColumnPlan:
    """The plan that lands ``column``, read through ``ident``, faithfully (see the module table).

    ``money_scale`` is the number of digits after the point of ``money`` in the
    session that reads it (``scale('0'::money::numeric)``).
    """
    if column.kind == "e":
        return ColumnPlan(column.name, ident, pa.string(), pa.dictionary(pa.int32(), pa.string()), _to_dictionary)
    if column.element is not None:
        return _array_plan(column, ident)
    if column.base in _SCALARS:
        arrow = _SCALARS[column.base]
        return ColumnPlan(column.name, ident, arrow, arrow)
    if column.base == "numeric":
        return _numeric_plan(column, ident)
    if column.base == "money":  # int8 of minor units: 19 digits in all
        exact = pa.decimal128(19, money_scale)
        return ColumnPlan(column.name, sql.SQL("{}::pg_catalog.numeric").format(ident), exact, exact)
    if column.base == "interval":
        return ColumnPlan(column.name, _interval_parts(ident), pa.string(), INTERVAL, _to_interval)
    if column.base == "bytea":
        return ColumnPlan(column.name, ident, pa.string(), pa.binary(), _to_binary)
    return ColumnPlan(column.name, ident, pa.string(), pa.string())


def _numeric_plan(column: PgColumnType, ident: sql.Identifier) -> ColumnPlan:
    shape = _numeric_precision_scale(column.typmod)
    if shape is None or not 0 <= shape[1] <= shape[0]:
        return ColumnPlan(column.name, ident, pa.string(), pa.string())
    precision, scale = shape
    if precision <= 38:
        return ColumnPlan(column.name, ident, pa.decimal128(precision, scale), pa.decimal128(precision, scale))
    wide = pa.decimal256(precision, scale)  # pyarrow's CSV reader cannot parse decimal256: cast the text
    return ColumnPlan(column.name, ident, pa.string(), wide, lambda array: array.cast(wide))


def _array_plan(column: PgColumnType, ident: sql.Identifier) -> ColumnPlan:
    element = _JSON_ELEMENTS.get(column.element or "")
    if element is None:
        # every type has a text form, and text[] has a JSON form
        select = sql.SQL("array_to_json({}::text[])::text").format(ident)
        element = pa.string()
    else:
        select = sql.SQL("array_to_json({})::text").format(ident)
    arrow = pa.list_(element)
    return ColumnPlan(column.name, select, pa.string(), arrow, _json_lists(arrow))


def _interval_parts(ident: sql.Identifier) -> sql.Composable:
    # months, days and microseconds: the three fields PostgreSQL stores, exactly
    return sql.SQL(
        "((extract(year from {0}) * 12 + extract(month from {0}))::int8 || ' ' || "
        "extract(day from {0})::int8 || ' ' || "
        "((extract(hour from {0}) * 3600 + extract(minute from {0}) * 60) * 1000000"
        " + extract(microseconds from {0}))::int8)"
    ).format(ident)


def _to_interval(array: pa.Array) -> pa.Array:
    values: list[dict[str, int] | None] = []
    for text in array.to_pylist():
        if text is None:
            values.append(None)
        else:
            months, days, micros = (int(part) for part in text.split(" "))
            values.append({"months": months, "days": days, "microseconds": micros})
    return pa.array(values, type=INTERVAL)


def _to_binary(array: pa.Array) -> pa.Array:
    """``'\\x0a0b...'`` texts (bytea_output=hex) to bytes, all values decoded at once.

    One vectorized pass instead of a Python object per value: a 64 MiB value
    costs its hex text and its bytes, not several Python copies.
    """
    stripped = pc.utf8_slice_codeunits(array, 2)  # drop the '\\x'
    if stripped.offset != 0 or len(stripped) == 0:
        return pa.array([None if v is None else bytes.fromhex(v) for v in stripped.to_pylist()], type=pa.binary())
    validity, offsets_buffer, data_buffer = stripped.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(stripped) + 1, [None, offsets_buffer])
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    data = binascii.unhexlify(memoryview(data_buffer)[start:end]) if end > start else b""
    halves = pc.divide(pc.subtract(offsets, start), 2).cast(pa.int32())  # hex texts have even lengths
    return pa.Array.from_buffers(pa.binary(), len(stripped), [validity, halves.buffers()[1], pa.py_buffer(data)],
                                 null_count=stripped.null_count)


def _to_dictionary(array: pa.Array) -> pa.Array:
    encoded = array.dictionary_encode()
    return encoded.cast(pa.dictionary(pa.int32(), pa.string()))


def _json_lists(arrow: pa.DataType) -> Converter:
    def convert(array: pa.Array) -> pa.Array:
        values = [None if v is None else json.loads(v) for v in array.to_pylist()]
        return pa.array(values, type=arrow)

    return convert


def arrow_schema(plans: list[ColumnPlan]) -> pa.Schema:
    """The Parquet file's schema; a repeated column name (``SELECT a, a``) gets ``_2``, ``_3``...

    Parquet allows repeated names, but most readers (pyarrow datasets, pandas)
    refuse such files.
    """
    seen: set[str] = set()
    fields = []
    for plan in plans:
        name, suffix = plan.name, 1
        while name in seen:
            suffix += 1
            name = f"{plan.name}_{suffix}"
        seen.add(name)
        fields.append(pa.field(name, plan.arrow_type))
    return pa.schema(fields)


def to_final_batch(batch: pa.RecordBatch, plans: list[ColumnPlan], schema: pa.Schema) -> pa.RecordBatch:
    """A parsed CSV batch with every column converted to its final Arrow type."""
    columns = []
    for index, plan in enumerate(plans):
        column = batch.column(index)
        columns.append(plan.convert(column) if plan.convert else column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def final_batches(plans: list[ColumnPlan], schema: pa.Schema) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """:func:`to_final_batch` for ``plans``; a batch whose columns all keep their read type is only renamed
    (no Python object per column: a 900-column table spent a tenth of its export there)."""
    if any(plan.convert is not None or plan.read_type != plan.arrow_type for plan in plans):
        return lambda batch: to_final_batch(batch, plans, schema)
    names = schema.names
    return lambda batch: batch.rename_columns(names)
