"""How a Parquet export encodes its columns: the choices that keep the write cheap, values unchanged.

Against the real PostgreSQL, in one file and as a dataset folder of parts: a column whose values repeat
is dictionary-encoded, a column of distinct values (a key, a hash, a timestamp) is written plain (a
dictionary of every value cost as much CPU as the rest of the write); long texts get no min/max
statistics; a wide table's row groups hold more than 8 MiB, so each column chunk is not a few kB.
The values read back are the table's, exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from connectors.postgresql.export import ROW_GROUP_BYTES
from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, pg_connector

pytestmark = pytest.mark.integration

ROWS = 30_000
WIDE_COLUMNS = 600
WIDE_ROWS = 5_000


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"enc_{uuid.uuid4().hex[:8]}"
    wide = ", ".join(f"(g * {k})::int8 AS w{k:03d}" for k in range(WIDE_COLUMNS))
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(
            "CREATE SCHEMA {0};"
            "CREATE TABLE {0}.events AS SELECT g::int8 AS id, md5(g::text) AS hash, "
            " timestamptz '2026-01-01 00:00:00+00' + g * interval '1 s' AS at, "
            " (ARRAY['new', 'paid', 'sent'])[1 + g % 3] AS status, (g % 7)::int4 AS shop, "
            " ((g % 50) / 4.0)::numeric(6,2) AS price "
            "FROM generate_series(1, {1}) g;"
        ).format(sql.Identifier(name), sql.Literal(ROWS)))
        conn.execute(sql.SQL("CREATE TABLE {}.wide AS SELECT {} FROM generate_series(1, {}) g").format(
            sql.Identifier(name), sql.SQL(wide), sql.Literal(WIDE_ROWS)))  # type: ignore[arg-type]
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def export(server: PostgresServer, schema: str, table: str, workspace: Path, **config: object) -> Path:
    async def go() -> str:
        async with pg_connector(server, [schema], format="parquet", **config) as pg:
            return await pg.fetch_data(f"{schema}.{table}", str(workspace))
    return Path(run(go()))


def files_of(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]


@pytest.mark.parametrize("part_bytes", [1 << 16, 1 << 30], ids=["parts", "one file"])
def test_repeating_columns_get_a_dictionary_and_distinct_ones_are_written_plain(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, part_bytes: int
) -> None:
    landed = export(postgres_server, schema, "events", tmp_path, part_bytes=part_bytes)
    files = files_of(landed)
    assert (len(files) > 1) == (part_bytes < 1 << 20)  # the two paths: a dataset folder, one file
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        names = metadata.schema.names
        group = metadata.row_group(0)
        dictionary = {name for index, name in enumerate(names)
                      if any("DICTIONARY" in encoding for encoding in group.column(index).encodings)}
        assert dictionary == {"status", "shop", "price"}, path
        with_statistics = {name for index, name in enumerate(names) if group.column(index).is_stats_set}
        assert "hash" not in with_statistics and "status" not in with_statistics  # texts: no min/max
        assert {"id", "at", "shop", "price"} <= with_statistics
    table = ds.dataset([str(f) for f in files], format="parquet").to_table().sort_by("id")
    assert table.num_rows == ROWS and table.column("id").to_pylist() == list(range(1, ROWS + 1))
    assert table.schema.field("price").type == pa.decimal128(6, 2)
    assert table.schema.field("shop").type == pa.int32()
    row = table.slice(9, 1).to_pylist()[0]
    assert row["status"] == "paid" and row["shop"] == 3 and str(row["price"]) == "2.50"
    assert row["hash"] == "d3d9446802a44259755d38e6d163e820"  # md5('10')


def test_a_wide_tables_row_groups_hold_more_than_8_mib(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    landed = export(postgres_server, schema, "wide", tmp_path)
    metadata = pq.ParquetFile(landed).metadata
    row_bytes = 8 * WIDE_COLUMNS  # int8 columns without nulls, in memory
    first = metadata.row_group(0).num_rows
    assert first * row_bytes > 1.5 * ROW_GROUP_BYTES  # at least 32 KiB per column, not 8 MiB for all
    assert metadata.num_rows == WIDE_ROWS and metadata.num_columns == WIDE_COLUMNS
    table = pq.read_table(landed).sort_by("w001")
    assert table.column("w007").to_pylist()[:3] == [7, 14, 21]
