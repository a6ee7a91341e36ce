"""A landed dataset's profile: rows, and per column its types, nulls, min/max, distinct count, examples.

It goes into the lineage record and the thread manifest so a model can write correct code without
opening the file, computed in bounded memory; sensitive columns show no values. What each field
means and how it is estimated: ``docs/design/profiling.md``.

Example:
    >>> profiler = Profiler(schema, source_types={"id": "integer"}, sensitive={"email"})
    >>> for batch in batches:
    ...     profiler.add(batch)
    >>> profiler.result()["columns"][0]["nulls"]
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import fnmatch
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SAMPLE_VALUES = 65536  # per column: the distinct estimate's sample
SAMPLE_PER_BATCH = 4096
# values sampled over all columns: a wide table's columns share it (900 columns: 4,660 each), or its sample
# would hold the whole of a table of fewer than SAMPLE_VALUES rows (800 MiB for 60,000 rows x 900 columns)
SAMPLE_BUDGET = 1 << 22
EXAMPLES = 2
MAX_TEXT = 60
MAX_PROFILED_ROW_BYTES = 8 << 20  # CSV blocks of files of unknown rows: a longer row is not profiled
# 0..SAMPLE_PER_BATCH-1, made once: pa.array(range(n)) per column and batch cost more than the rest of the
# profile (a Python int per index: 2.7 of 4.9 CPU s for a 900-column table). Not numpy: the api extra has none.
_INDICES = pa.array(range(SAMPLE_PER_BATCH), type=pa.int32())


def is_sensitive(name: str, qualified: str, patterns: Iterable[str]) -> bool:
    """Whether column ``name`` (``qualified``: ``schema.table.name``) matches a sensitive pattern.

    Args:
        name: The column's name.
        qualified: ``schema.table.name``, for patterns that name one table's column.
        patterns: ``fnmatch`` patterns, matched without regard to case.

    Returns:
        True when the column's values must not be shown (no min, max or examples).
    """
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) or fnmatch.fnmatchcase(qualified.lower(), p.lower())
               for p in patterns)


def _orderable(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
                or pa.types.is_temporal(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _jsonable(value: Any) -> Any:
    """A JSON-safe, short form of one value."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal | datetime.date | datetime.time | datetime.timedelta):
        return str(value)
    if isinstance(value, bytes):
        value = value.hex()
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class _ColumnProfile:
    def __init__(self, field: pa.Field, source_type: str | None, sensitive: bool, limit: int = SAMPLE_VALUES) -> None:
        self.field, self.source_type, self.sensitive = field, source_type, sensitive
        self.limit = limit  # values sampled for the distinct estimate
        self.kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        self.nulls = 0
        self.low: Any = None
        self.high: Any = None
        self.sample: list[pa.Array] = []
        self.sampled = 0
        self.examples: list[Any] = []

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        self.nulls += column.null_count
        if not self.sensitive and _orderable(self.kind) and column.null_count < len(column):
            bounds = pc.min_max(column)
            low, high = _bounded(bounds["min"].as_py()), _bounded(bounds["max"].as_py())
            self.low = low if self.low is None or (low is not None and low < self.low) else self.low
            self.high = high if self.high is None or (high is not None and high > self.high) else self.high
        if self.sampled < self.limit and _hashable(self.kind):
            head = column.slice(0, min(SAMPLE_PER_BATCH, self.limit - self.sampled)).drop_null()
            # a copy: a slice would keep the whole batch's buffers alive for as long as the profile
            taken = pc.take(head, _INDICES.slice(0, len(head)))
            self.sample.append(taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken)
            self.sampled += len(head)
        if not self.sensitive and len(self.examples) < EXAMPLES:
            self._take_examples(column)

    def _take_examples(self, column: pa.Array) -> None:
        for value in column.slice(0, 64).drop_null().to_pylist():
            shown = _jsonable(value)
            if shown not in self.examples:
                self.examples.append(shown)
            if len(self.examples) >= EXAMPLES:
                return

    def result(self, rows: int) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.field.name, "source_type": self.source_type,
                                     "file_type": str(self.field.type), "nulls": self.nulls}
        if _orderable(self.kind) and not self.sensitive:
            described.update(min=_jsonable(self.low), max=_jsonable(self.high))
        described["distinct"] = self._distinct(rows - self.nulls)
        if self.sensitive:
            described["sensitive"] = True
        else:
            described["examples"] = self.examples
        return described

    def _distinct(self, total: int) -> int | None:
        if not self.sample:
            return 0 if total == 0 and _hashable(self.kind) else None
        counts = pc.value_counts(pa.concat_arrays(self.sample))
        n, d = self.sampled, len(counts)
        if n == 0 or n >= total:
            return d
        once = int(pc.sum(pc.equal(counts.field("counts"), 1)).as_py() or 0)
        estimate = n * d / (n - once + once * n / total)  # Duj1: D = n d / (n - f1 + f1 n / N)
        return max(d, min(total, round(estimate)))


def _bounded(value: Any) -> Any:
    """Texts kept for min/max are cut (what is shown is cut anyway): a long value is not held whole."""
    if isinstance(value, str | bytes) and len(value) > 4 * MAX_TEXT:
        return value[: 4 * MAX_TEXT]
    return value


def _hashable(kind: pa.DataType) -> bool:
    return not pa.types.is_nested(kind)


class Profiler:
    """Accumulates a profile over record batches of one schema."""

    def __init__(self, schema: pa.Schema, source_types: Mapping[str, str] | None = None,
                 sensitive: Iterable[str] = ()) -> None:
        hidden = set(sensitive)
        types = source_types or {}
        limit = max(SAMPLE_PER_BATCH, min(SAMPLE_VALUES, SAMPLE_BUDGET // max(len(schema), 1)))
        self._columns = [_ColumnProfile(f, types.get(f.name), f.name in hidden, limit) for f in schema]
        self.rows = 0

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Count one batch into the profile.

        Args:
            batch: Rows of the profiler's schema: a record batch, or a table of several (a Parquet row
                group: a few calls per column for the whole group, which is what a wide table needs).
        """
        self.rows += batch.num_rows
        for profile, column in zip(self._columns, batch.columns, strict=True):
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            profile.add(column)

    def result(self) -> dict[str, Any]:
        """The profile of every batch added so far.

        Returns:
            ``rows`` and, per column, its types, nulls, min/max, distinct estimate and examples.
        """
        return {"rows": self.rows, "columns": [c.result(self.rows) for c in self._columns]}


def profile_parquet(fd: int, block_size: int = 0, source_types: Mapping[str, str] | None = None,
                    sensitive: Iterable[str] = ()) -> dict[str, Any]:
    """The profile of the Parquet file open at ``fd`` (read from its start; ``fd`` stays open).

    Args:
        fd: The open file.
        block_size: Unused; taken so that a caller passes Parquet and CSV profilers the same arguments.
        source_types: Per column, the type at the source (``numeric(10,2)``), shown beside the file's.
        sensitive: Columns whose values are not shown.

    Returns:
        The profile, as :meth:`Profiler.result` gives it.
    """
    with os.fdopen(os.dup(fd), "rb") as file:
        file.seek(0)
        parquet = pq.ParquetFile(file)
        profiler = Profiler(parquet.schema_arrow, source_types, sensitive)
        for batch in parquet.iter_batches(batch_size=65536):
            profiler.add(batch)
        return profiler.result()


def profile_csv(fd: int, block_size: int, names: list[str], types: Mapping[str, pa.DataType] | None = None,
                source_types: Mapping[str, str] | None = None, sensitive: Iterable[str] = ()) -> dict[str, Any]:
    """The profile of the CSV (with a header row) open at ``fd``, read once as it streams.

    ``block_size`` must exceed twice the largest row. ``types`` are the Arrow types to parse columns
    as (others are strings); when the text does not parse as them, it is profiled again as strings.

    Args:
        fd: The open file (read from its start; it stays open).
        block_size: Bytes parsed at a time.
        names: The column names, in order (the header row is skipped).
        types: Per column, the Arrow type to parse it as; None parses every column as text.
        source_types: Per column, the type at the source, shown beside the file's.
        sensitive: Columns whose values are not shown.

    Returns:
        The profile, as :meth:`Profiler.result` gives it.
    """
    with contextlib.suppress(pa.ArrowInvalid):
        return _profile_csv(fd, block_size, names, types or {}, source_types, sensitive)
    return _profile_csv(fd, block_size, names, {}, source_types, sensitive)


def _profile_csv(fd: int, block_size: int, names: list[str], types: Mapping[str, pa.DataType],
                 source_types: Mapping[str, str] | None, sensitive: Iterable[str]) -> dict[str, Any]:
    positional = [f"c{index}" for index in range(len(names))]
    read = pacsv.ReadOptions(column_names=positional, skip_rows=1, block_size=block_size)
    convert = pacsv.ConvertOptions(
        column_types={p: types.get(n, pa.string()) for p, n in zip(positional, names, strict=True)},
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    schema = pa.schema([pa.field(n, types.get(n, pa.string())) for n in names])
    profiler = Profiler(schema, source_types, sensitive)
    with os.fdopen(os.dup(fd), "rb") as file:
        file.seek(0)
        reader = pacsv.open_csv(file, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            profiler.add(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return profiler.result()


def profile_file(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The profile of a landed CSV or Parquet file (by suffix; CSV types inferred), None for other formats.

    A file that cannot be profiled (malformed, a row over :data:`MAX_PROFILED_ROW_BYTES`) gives a profile
    that says so, never an error: the data lands either way.

    Args:
        path: The landed file.

    Returns:
        The profile; ``{"skipped": reason}`` when it could not be made; None for other formats.
    """
    name = os.fspath(path).lower()
    if not name.endswith((".csv", ".parquet", ".pq")):
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if name.endswith(".csv"):
            return _inferred_csv(fd)
        return profile_parquet(fd)
    except (pa.ArrowException, ValueError, OSError) as exc:  # the type only: a parse error may quote a value
        return {"skipped": f"not profiled ({type(exc).__name__})"}
    finally:
        os.close(fd)


def _inferred_csv(fd: int) -> dict[str, Any]:
    """A CSV of unknown types: read as pyarrow infers them from the first block, else all as text."""
    with os.fdopen(os.dup(fd), "rb") as file:
        reader = pacsv.open_csv(file, read_options=pacsv.ReadOptions(block_size=MAX_PROFILED_ROW_BYTES),
                                parse_options=pacsv.ParseOptions(newlines_in_values=True))
        schema = reader.schema
    names = schema.names
    types = {f.name: f.type for f in schema if not pa.types.is_null(f.type)}
    return profile_csv(fd, MAX_PROFILED_ROW_BYTES, names, types)
