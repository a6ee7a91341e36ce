"""Incremental syncs by a cursor into a Parquet dataset folder of bounded parts.

Against the real PostgreSQL: a late commit inside the look-back window is picked up once; rows are
not landed twice; a full sync replaces the folder; deletes are only seen by a full sync; a column
added mid-history is handled per on_schema_change; the folder reads as one table with pyarrow and
DuckDB, decimals as decimals.

docs/RELIABILITY.md rows 49-51, 59-60.
"""

from __future__ import annotations

import decimal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from connectors.landing.lineage import read_provenance
from connectors.postgresql import PostgreSQLConnector
from connectors.postgresql.incremental import SchemaChangedError
from connectors.postgresql.sync_guard import SyncBusyError
from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, create_reader, drop_reader, pg_connector

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"inc_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(
            "CREATE SCHEMA {0};"
            "CREATE TABLE {0}.orders (id int PRIMARY KEY, total numeric(12,2), note text, updated_at timestamptz);"
            "INSERT INTO {0}.orders SELECT g, g * 1.5, md5(g::text) || md5((-g)::text) || md5((7 * g)::text), "
            " timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 20000) g"
        ).format(sql.Identifier(name)))
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def connector(server: PostgresServer, schema: str, reader: dict[str, str], **spec: Any) -> PostgreSQLConnector:
    settings = {"cursor": "updated_at", "lookback": 60, "part_bytes": 200_000, **spec}
    return pg_connector(server, [schema], incremental={f"{schema}.orders": settings}, **reader)


@pytest.fixture
def reader(postgres_server: PostgresServer, schema: str) -> Iterator[dict[str, str]]:
    role = create_reader(postgres_server, schema)
    yield role
    drop_reader(postgres_server, role)


def sync(pg: PostgreSQLConnector, schema: str, workspace: Path, full: bool = False) -> Path:
    async def go() -> str:
        async with pg:
            return await pg.sync_table(f"{schema}.orders", str(workspace), full=full)
    return Path(run(go()))


def execute(server: PostgresServer, statement: str, schema: str) -> None:
    with admin(server) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(schema)))  # type: ignore[arg-type]


def ids(folder: Path) -> list[int]:
    return sorted(ds.dataset(str(folder), format="parquet").to_table(columns=["id"]).column("id").to_pylist())


def test_a_first_sync_lands_bounded_parts_readable_as_one_exactly_typed_table(
    postgres_server: PostgresServer, schema: str, reader: dict[str, str], tmp_path: Path
) -> None:
    folder = sync(connector(postgres_server, schema, reader), schema, tmp_path)
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) > 3 and all(f.startswith("part-") and f.endswith(".parquet") for f in files)
    assert all((folder / f).stat().st_size < 3 * 200_000 for f in files)  # the bound, plus under two row groups
    table = pq.read_table(folder)
    assert table.num_rows == 20000 and str(table.schema.field("total").type) == "decimal128(12, 2)"
    total = duckdb.connect().execute(
        f"SELECT sum(total), count(*), typeof(any_value(total)) FROM read_parquet('{folder}/*.parquet')").fetchall()
    assert total == [(decimal.Decimal("300015000.00"), 20000, "DECIMAL(12,2)")]
    record = read_provenance(folder)
    assert record["row_count"] == 20000 and [p["name"] for p in record["parts"]] == files
    assert record["cursor_max"].startswith("2026-01-01 05:33:20")
    for name in files:
        assert read_provenance(folder / name)["row_count"] == pq.read_metadata(folder / name).num_rows


def test_a_re_sync_lands_only_changes_and_a_late_commit_once(
    postgres_server: PostgresServer, schema: str, reader: dict[str, str], tmp_path: Path
) -> None:
    pg = connector(postgres_server, schema, reader)
    folder = sync(pg, schema, tmp_path)
    before = len(list(folder.iterdir()))
    execute(postgres_server, "UPDATE {0}.orders SET note = 'changed', updated_at = "
            "timestamptz '2026-01-02 00:00:00+00' WHERE id <= 10", schema)
    # a transaction that committed late: its cursor is 30 s behind the last sync's highest cursor
    execute(postgres_server, "INSERT INTO {0}.orders VALUES (20001, 1, 'late', "
            "timestamptz '2026-01-01 05:32:50+00')", schema)
    sync(pg, schema, tmp_path)
    record = read_provenance(folder)
    assert record["last_sync"] == "increment" and record["rows_synced"] == 11
    assert len(list(folder.iterdir())) == before + 1 and record["row_count"] == 20011
    again = sync(pg, schema, tmp_path)  # nothing new: no part added, nothing counted twice
    assert read_provenance(again)["rows_synced"] == 0 and read_provenance(again)["row_count"] == 20011
    assert len(list(folder.iterdir())) == before + 1
    assert ids(folder).count(20001) == 1 and ids(folder).count(5) == 2  # a new version of row 5
    execute(postgres_server, "DELETE FROM {0}.orders WHERE id = 7", schema)
    sync(pg, schema, tmp_path)
    assert 7 in ids(folder)  # deletes are not seen by a cursor...
    sync(pg, schema, tmp_path, full=True)
    assert 7 not in ids(folder) and len(ids(folder)) == 20000  # ...a full sync replaces the dataset
    assert read_provenance(folder)["last_sync"] == "full"


@pytest.mark.parametrize("policy", ["full_refresh", "evolve", "fail"])
def test_a_column_added_mid_history_follows_on_schema_change(
    postgres_server: PostgresServer, schema: str, reader: dict[str, str], tmp_path: Path, policy: str
) -> None:
    pg = connector(postgres_server, schema, reader, on_schema_change=policy)
    folder = sync(pg, schema, tmp_path)
    execute(postgres_server, "ALTER TABLE {0}.orders ADD COLUMN region text DEFAULT 'north';"
            "UPDATE {0}.orders SET updated_at = timestamptz '2026-02-01 00:00:00+00' WHERE id = 3", schema)
    if policy == "fail":
        with pytest.raises(SchemaChangedError, match='"added": \\["region"\\]'):
            sync(pg, schema, tmp_path)
        assert read_provenance(folder)["row_count"] == 20000  # the dataset is left as it was
        return
    sync(pg, schema, tmp_path)
    record = read_provenance(folder)
    assert record["schema_changes"][-1]["added"] == ["region"]
    dataset = ds.dataset(str(folder), format="parquet", schema=pq.read_schema(sorted(folder.iterdir())[-1]))
    table = dataset.to_table()
    if policy == "full_refresh":
        assert record["last_sync"] == "full" and table.num_rows == 20000
        assert set(table.column("region").to_pylist()) == {"north"}
    else:
        assert record["last_sync"] == "increment" and table.num_rows == 20001
        assert table.column("region").null_count == 20000  # older parts have no such column


def test_a_crashed_syncs_staging_is_swept_at_the_next_sync_and_nothing_else(
    postgres_server: PostgresServer, schema: str, reader: dict[str, str], tmp_path: Path
) -> None:
    pg = connector(postgres_server, schema, reader)
    sync(pg, schema, tmp_path)
    leftover = tmp_path / f".{schema}.orders.parts-0123456789ab"  # what a killed sync leaves
    leftover.mkdir()
    (leftover / "part-00009.parquet").write_bytes(b"half a part")
    other = tmp_path / f".{schema}.orders2.parts-0123456789ab"  # another dataset's staging
    other.mkdir()
    odd = tmp_path / f".{schema}.orders.parts-mine"  # not a staging name
    odd.mkdir()
    outside = tmp_path.parent / f"outside-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (tmp_path / f".{schema}.orders.parts-ba9876543210").symlink_to(outside, target_is_directory=True)
    sync(pg, schema, tmp_path)
    assert not leftover.exists()
    assert other.is_dir() and odd.is_dir() and (outside / "keep.txt").read_text() == "keep"
    assert read_provenance(tmp_path / f"{schema}.orders")["row_count"] == 20000


def test_a_second_concurrent_sync_of_the_same_table_is_refused_clearly(
    postgres_server: PostgresServer, schema: str, reader: dict[str, str], tmp_path: Path
) -> None:
    sync(connector(postgres_server, schema, reader), schema, tmp_path)
    execute(postgres_server, "INSERT INTO {0}.orders SELECT g, 1, 'new', timestamptz '2026-01-03 00:00:00+00' "
            "FROM generate_series(30001, 30010) g", schema)
    holder = psycopg.connect(postgres_server.dsn, connect_timeout=10)  # blocks the first sync mid-way
    holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, "orders")))
    first: dict[str, Any] = {}

    def first_sync() -> None:
        try:
            first["folder"] = sync(connector(postgres_server, schema, reader), schema, tmp_path)
        except BaseException as exc:  # reported below
            first["error"] = exc

    thread = threading.Thread(target=first_sync)
    thread.start()
    try:
        wait_for_a_lock_wait(postgres_server, reader["user"])
        with pytest.raises(SyncBusyError, match="another sync of this dataset is running") as refused:
            sync(connector(postgres_server, schema, reader), schema, tmp_path)
        assert refused.value.retryable
    finally:
        holder.rollback()
        holder.close()
        thread.join()
    assert "error" not in first, first.get("error")
    assert sorted(ids(tmp_path / f"{schema}.orders"))[-10:] == list(range(30001, 30011))
    assert read_provenance(tmp_path / f"{schema}.orders")["row_count"] == 20010


def wait_for_a_lock_wait(server: PostgresServer, user: str) -> None:
    """Until a session of ``user`` waits on a lock (the first sync, inside its read)."""
    for _ in range(600):
        with admin(server) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = "
                               "'Lock'", [user]).fetchone()
        if row and row[0]:
            return
        time.sleep(0.05)
    raise AssertionError("the first sync never reached the locked table")
