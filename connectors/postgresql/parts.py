"""Parquet dataset folders: a table as a folder of bounded parts, replaced whole or grown by increments.

Two writers share this layout: an incremental table's syncs (``sync_table``) and the plain export of a
table at least the source's ``part_bytes`` big (``fetch_data`` in Parquet), so an incremental table's
full sync and a plain export look the same (the plain one's record has no cursor).

Layout, under the source's workspace::

    <schema>.<table>/part-00000.parquet, part-00001.parquet, ...   the dataset (pyarrow, pandas, DuckDB,
                                                                    Polars read the folder as one table)
    .lineage/<schema>.<table>/part-0000N.parquet.json              one record per part
    .lineage/<schema>.<table>.json                                 the dataset's record: its parts (rows,
                                                                    size, sha256; cursor ranges), the total
                                                                    rows, the columns, the last schema change

A part is closed once it holds ``part_bytes`` or more, in whole row groups of at most
``min(8 MiB, part_bytes)`` (in memory; up to 32 MiB for a table of over 256 columns:
``export.row_group_bytes``), so a part passes its bound by at most two row groups.
Parts are written into a hidden staging folder beside the dataset, fsynced, then:

* a **full** export replaces the dataset folder in one step (``renameat2(RENAME_EXCHANGE)``: a reader
  sees the old folder or the new one, never a mix), and the old one is removed;
* an **increment** moves its parts into the folder one by one (each a rename, numbered after the last).

The records follow the files. Memory is that of one Parquet export (batches of ~8 MiB).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.checked_fetch import prune_landed
from connectors.errors import SizeLimitError
from connectors.landing.lineage import build_record, read_record, write_provenance
from connectors.landing.names import LINEAGE_DIR
from connectors.postgresql.columns import ColumnPlan, arrow_schema
from connectors.postgresql.export import (
    CopyOutStream,
    dictionary_columns,
    parsed_batches,
    row_group_bytes,
    statistics_columns,
)

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

PART_NAME = "part-{:05d}.parquet"
STAGING = ".{}.parts-{}"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@dataclass
class WrittenPart:
    name: str
    rows: int
    size: int
    sha256: str = ""


class _HashedFile:
    """A part's file for ``ParquetWriter``: its bytes go to disk and into its sha256 as they are written
    (not read back afterwards: that was a serial tail of ~0.3 s per 10M rows, with the server idle)."""

    closed = False

    def __init__(self, path: Path) -> None:
        self._file = open(path, "xb")  # noqa: SIM115 - closed in close(); never through a link
        self.digest = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return int(self._file.write(data))

    def tell(self) -> int:
        return int(self._file.tell())

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return int(self._file.fileno())

    def close(self) -> None:
        self._file.close()
        self.closed = True


def write_parts(pgconn: Any, statement: bytes, plans: list[ColumnPlan], folder: Path, part_bytes: int,
                cancelled: threading.Event, first: int = 0,
                on_batch: Callable[[pa.Table], None] | None = None,
                byte_cap: int | None = None) -> list[WrittenPart]:
    """Run the COPY ``statement`` and write its rows as Parquet parts ``first``, ``first + 1``... in ``folder``.

    ``on_batch`` gets each row group as written (a profile is computed from them, without reading the parts
    again).
    ``byte_cap``: :class:`SizeLimitError` once the parts hold more (checked per row group; the caller
    removes the folder).
    """
    schema = arrow_schema(plans)
    stream = CopyOutStream(pgconn, statement, cancelled)
    stream.start()
    parts: list[WrittenPart] = []
    writer: pq.ParquetWriter | None = None
    file: _HashedFile | None = None
    pending: list[pa.RecordBatch] = []
    pending_bytes = 0

    def close() -> None:
        nonlocal writer, file
        if writer is not None and file is not None:
            writer.close()
            file.flush()
            os.fsync(file.fileno())
            parts[-1].size = file.tell()
            parts[-1].sha256 = file.digest.hexdigest()
            file.close()
            writer = file = None

    group_bytes = min(row_group_bytes(len(plans)), part_bytes)
    statistics = statistics_columns(schema)

    def flush(force: bool) -> None:
        nonlocal writer, file, pending, pending_bytes
        if not pending or (not force and pending_bytes < group_bytes):
            return
        table = pa.Table.from_batches(pending, schema)
        if writer is None:  # a part's first row group tells which of its columns repeat values
            name = PART_NAME.format(first + len(parts))
            file = _HashedFile(folder / name)
            writer = pq.ParquetWriter(file, schema, write_statistics=statistics,
                                      use_dictionary=dictionary_columns(table))
            parts.append(WrittenPart(name, 0, 0))
        writer.write_table(table)
        if on_batch is not None:
            on_batch(table)
        parts[-1].rows += table.num_rows
        pending, pending_bytes = [], 0
        assert file is not None
        if byte_cap is not None and sum(p.size for p in parts[:-1]) + file.tell() > byte_cap:
            raise SizeLimitError(f"the export passed the limit of {byte_cap} bytes")
        if file.tell() >= part_bytes:
            close()

    try:
        # closed on a failure here too: its reader thread ends before the caller touches the connection
        with contextlib.closing(parsed_batches(stream, plans, schema)) as batches:
            for batch, size in batches:
                step = max(1, batch.num_rows * group_bytes // max(size, 1))
                for start in range(0, batch.num_rows, step):  # row groups, and so parts, stay near their bound
                    piece = batch.slice(start, step)
                    pending.append(piece)
                    pending_bytes += size * piece.num_rows // max(batch.num_rows, 1)
                    flush(force=False)
        flush(force=True)
    finally:
        close()
    if not parts:  # no rows: an empty part keeps the schema readable
        with open(folder / PART_NAME.format(first), "xb") as empty:
            pq.write_table(schema.empty_table(), empty)
            parts.append(WrittenPart(PART_NAME.format(first), 0, empty.tell()))
    for part in parts:
        part.sha256 = part.sha256 or _sha256(folder / part.name)  # the empty part: read back
    return parts


def new_staging(workspace: Path, name: str, token: str) -> Path:
    """A new, empty staging folder for dataset ``name`` next to its folder."""
    staging = workspace / STAGING.format(name, token)
    staging.mkdir(parents=True)
    return staging


def exchange(staging: Path, final: Path) -> Path | None:
    """Put ``staging`` at ``final`` in one step; the old folder (now at ``staging``'s name), or None."""
    if not final.exists():
        os.rename(staging, final)
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.renameat2(_AT_FDCWD, os.fsencode(staging), _AT_FDCWD, os.fsencode(final), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(final))
    return staging


def move_parts(staging: Path, final: Path, parts: list[WrittenPart]) -> None:
    """Move the new ``parts`` from ``staging`` into ``final``, then remove ``staging``."""
    final.mkdir(exist_ok=True)
    for part in parts:
        os.rename(staging / part.name, final / part.name)
    shutil.rmtree(staging, ignore_errors=True)


def remove_folder(folder: Path | None) -> None:
    """Remove ``folder`` and what it holds, if any (None: nothing to remove)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def write_records(workspace: Path, name: str, parts: list[WrittenPart], provenance: dict[str, Any],
                  source_id: str, identifier: str, replaced: bool) -> None:
    """Each new part's record; on a full replacement, the old parts' records go."""
    if replaced:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(workspace / LINEAGE_DIR / name)  # the old parts' records
    for part in parts:
        relative = f"{name}/{part.name}"
        record = build_record({**provenance, "row_count": part.rows, "part_of": name}, source_id=source_id,
                              identifier=identifier, local_path=str(workspace / relative), size=part.size,
                              sha256=part.sha256 or _sha256(workspace / relative))
        write_provenance(workspace, relative, record)


def parts_digest(written: list[WrittenPart]) -> str:
    """The dataset's sha256: of its parts' names, rows, sizes and sha256s (so of every byte, by proxy)."""
    listed = [{"name": p.name, "rows": p.rows, "size": p.size, "sha256": p.sha256} for p in written]
    return hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()


def remove_plain_dataset(workspace: Path, name: str, source_id: str, identifier: str) -> None:
    """Remove the dataset folder ``name`` a plain export of ``identifier`` landed (not an incremental one)."""
    record = read_record(workspace, name)
    if record is not None and "cursor" not in record:
        prune_landed(workspace, name, source_id, identifier)


def dataset_record(workspace: Path, name: str) -> dict[str, Any] | None:
    """The dataset folder's own lineage record, or None before its first sync."""
    return read_record(workspace, name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
