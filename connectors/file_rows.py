"""The first N rows, or a seeded sample, of a landed CSV or Parquet file (file references' limit and sample).

A table or query is cut by the server (:mod:`connectors.postgresql.slicing`); a file is fetched whole
(its bytes are what the source has: there is no server to ask) and then cut here, in place, before it
is published. Only CSV (``.csv``, ``.tsv`` is not CSV) and Parquet (``.parquet``, ``.pq``) are cut:
other formats have no row structure this can read without parsing the whole format (JSON, Excel),
or none at all, and are refused with that reason.

* ``limit``: the first N data rows (CSV: the header and N records, re-quoted minimally; Parquet: the
  first N rows, same schema).
* ``sample``: a fraction (``0 < x < 1``) or a row count; rows are picked by a generator seeded with
  ``seed`` over the row positions, so the same seed on the same file gives the same rows, in file order.

Memory: CSV is streamed record by record (two passes for a sample: count, then pick); Parquet is read
by row group.
"""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.errors import ConfigurationError

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def row_format(name: str) -> str | None:
    """``csv`` or ``parquet`` by the file name's suffix, None for formats that cannot be cut.

    Args:
        name: The file's name.

    Returns:
        ``"csv"``, ``"parquet"`` or None.
    """
    lowered = name.lower()
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    if lowered.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def check_cuttable(name: str) -> str:
    """The file's row format, or :class:`ConfigurationError` saying why it cannot be cut.

    Args:
        name: The file's name.

    Returns:
        ``"csv"`` or ``"parquet"``.

    Raises:
        ConfigurationError: Neither a CSV nor a Parquet file.
    """
    kind = row_format(name)
    if kind is None:
        suffix = Path(name).suffix or "(no extension)"
        raise ConfigurationError(f"limit and sample apply to CSV and Parquet files; {suffix} files are not cut "
                                 "into rows (their rows cannot be read without parsing the whole format)")
    return kind


def _picked(total: int, limit: int | None, sample: float | None, seed: int) -> list[int] | None:
    """Sorted row positions to keep (None: the first ``limit``)."""
    if sample is None:
        return None
    chooser = random.Random(seed)  # noqa: S311 - reproducible sampling, not security
    if sample < 1:
        positions = [i for i in range(total) if chooser.random() < sample]
    else:
        positions = sorted(chooser.sample(range(total), min(total, int(sample))))
    return positions[:limit] if limit is not None else positions


def cut_rows(path: str | os.PathLike[str], limit: int | None, sample: float | None, seed: int = 0) -> int:
    """Keep only the chosen rows of the CSV or Parquet file at ``path`` (replaced atomically).

    Args:
        path: The landed file.
        limit: At most this many rows (the first ones, or the first of the sample); None: no limit.
        sample: A fraction (below 1) or a number of rows, chosen by ``seed``; None keeps every row.
        seed: Same seed and same file, same rows.

    Returns:
        How many rows were kept.
    """
    target = Path(path)
    kind = check_cuttable(target.name)
    temporary = target.with_name(f".{target.name}.cut")
    try:
        kept = (_cut_csv if kind == "csv" else _cut_parquet)(target, temporary, limit, sample, seed)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return kept


def _records(file: io.TextIOWrapper) -> Any:
    return csv.reader(file, strict=True)


def _cut_csv(source: Path, target: Path, limit: int | None, sample: float | None, seed: int) -> int:
    positions = None
    if sample is not None:
        with source.open(newline="", encoding="utf-8", errors="surrogateescape") as file:
            total = max(0, sum(1 for _ in _records(file)) - 1)
        positions = set(_picked(total, limit, sample, seed) or [])
    kept = 0
    with source.open(newline="", encoding="utf-8", errors="surrogateescape") as file, \
            target.open("x", newline="", encoding="utf-8", errors="surrogateescape") as out:  # never via a link
        writer = csv.writer(out, lineterminator="\n")
        for index, record in enumerate(_records(file), start=-1):
            if index == -1:
                writer.writerow(record)  # the header
            elif (positions is None and (limit is None or index < limit)) or (positions and index in positions):
                writer.writerow(record)
                kept += 1
            elif positions is None:
                break
    return kept


def _cut_parquet(source: Path, target: Path, limit: int | None, sample: float | None, seed: int) -> int:
    parquet = pq.ParquetFile(source)
    positions = _picked(parquet.metadata.num_rows, limit, sample, seed)
    wanted = positions if positions is not None else list(range(min(limit or 0, parquet.metadata.num_rows)))
    kept, start, at = 0, 0, 0
    with target.open("xb") as out, pq.ParquetWriter(out, parquet.schema_arrow) as writer:  # never via a link
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            end = start + rows
            mine = []
            while at < len(wanted) and wanted[at] < end:
                mine.append(wanted[at] - start)
                at += 1
            if mine:
                writer.write_table(parquet.read_row_group(group).take(pa.array(mine, pa.int64())))
                kept += len(mine)
            start = end
            if at >= len(wanted):
                break
    return kept
