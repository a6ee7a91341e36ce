"""Values over pyarrow's CSV block size export, with memory bounded by a multiple of the row.

The documented bounds (README, PostgreSQL): peak memory above the process's
baseline is at most about 2.5x the largest row for CSV and 7x for Parquet, the
row measured as its CSV text (bytea counts twice: it travels as hex). The
bound asserted here is that plus 64 MiB of slack for allocator noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from psycopg import sql

from tests.conformance import run
from tests.harness import REPO, PostgresServer
from tests.helpers.postgresql import admin, pg_connector

pytestmark = pytest.mark.integration

MIB = 1 << 20
SIZES = [3, 9, 33]  # MiB: over the 2 MiB block, over the 8 MiB batch, over several of both


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"large_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        table = sql.Identifier(name, "big")
        conn.execute(sql.SQL("CREATE TABLE {} (id int, note text, blob bytea)").format(table))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER note SET STORAGE EXTERNAL, ALTER blob SET STORAGE EXTERNAL")
                     .format(table))
        for index, size in enumerate(SIZES):  # stored uncompressed (EXTERNAL): quick to make, full size to read
            conn.execute(sql.SQL(
                "INSERT INTO {} SELECT %s, md5(%s) || repeat(E'0123456789abcdef\\n\"x,y\"', %s), "
                "sha256(%s::bytea) || decode(repeat('00ff', %s), 'hex')"
            ).format(table), [index, str(index), size * MIB // 24, str(index), size * MIB // 2])
        conn.execute(sql.SQL("INSERT INTO {} VALUES (99, 'small', '\\x01')").format(table))
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def digests(server: PostgresServer, schema: str) -> dict[int, tuple[str, str]]:
    with admin(server) as conn:
        rows = conn.execute(sql.SQL("SELECT id, md5(note), md5(blob) FROM {} ORDER BY id")
                            .format(sql.Identifier(schema, "big"))).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_values_of_many_mib_land_exactly_in_parquet_and_csv(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    async def body(fmt: str) -> str:
        async with pg_connector(postgres_server, [schema], format=fmt) as pg:
            return await pg.fetch_data(f"{schema}.big", str(tmp_path / fmt))

    expected = digests(postgres_server, schema)
    table = pq.read_table(run(body("parquet")))
    landed = {row["id"]: (hashlib.md5(row["note"].encode()).hexdigest(),  # noqa: S324 - a checksum
                          hashlib.md5(row["blob"]).hexdigest()) for row in table.to_pylist()}  # noqa: S324
    assert landed == expected
    csv_path = Path(run(body("csv")))
    assert csv_path.stat().st_size > sum(SIZES) * MIB * 2  # note + blob as hex
    assert csv_path.read_bytes().startswith(b"id,note,blob\n0,\"")


MEASURE = """
import asyncio, json, re, sys
from connectors import DataSourceConfig
from connectors.postgresql import PostgreSQLConnector
config, identifier, workspace = json.loads(sys.argv[1])
def status(key):  # /proc, not getrusage: ru_maxrss carries the forking parent's peak across exec
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
async def main():
    async with PostgreSQLConnector(DataSourceConfig(**config)) as pg:
        await pg.list_items()  # imports and connections warm: the baseline is the working process
        with open("/proc/self/clear_refs", "w") as reset:
            reset.write("5")  # the peak (VmHWM) starts again from the current RSS
        base = status("VmRSS")
        await pg.fetch_data(identifier, workspace)
        print(json.dumps([base, status("VmHWM")]))
asyncio.run(main())
"""


@pytest.mark.parametrize("fmt, multiple", [("csv", 2.5), ("parquet", 7.0)])
def test_peak_memory_of_a_64_mib_row_is_a_bounded_multiple_of_it(
    postgres_server: PostgresServer, tmp_path: Path, fmt: str, multiple: float
) -> None:
    schema = f"peak_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        one = sql.Identifier(schema, "one")
        conn.execute(sql.SQL("CREATE TABLE {} (id int, note text)").format(one))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER note SET STORAGE EXTERNAL").format(one))
        conn.execute(sql.SQL("INSERT INTO {} SELECT 1, repeat('0123456789abcdef', %s)").format(one), [4 * MIB])
    config = {"id": "pg-peak", "type": "postgresql", "name": "PG",
              "config": {"host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname,
                         "user": postgres_server.user, "password": {"env": "DA_TEST_PG_PASSWORD"},
                         "schemas": [schema], "format": fmt}}
    try:
        done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([config, f"{schema}.one", str(tmp_path)])],
                              cwd=REPO, env={**os.environ, "DA_TEST_PG_PASSWORD": postgres_server.password},
                              capture_output=True, text=True, timeout=120, check=True)
    finally:
        with admin(postgres_server) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    base, peak = json.loads(done.stdout)
    row = 64 * MIB
    print(f"{fmt}: peak {(peak - base) / MIB:.0f} MiB above the baseline for a 64 MiB row "
          f"({(peak - base) / row:.1f}x)")
    assert peak - base <= multiple * row + 64 * MIB
