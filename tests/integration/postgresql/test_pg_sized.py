"""Sized table and query reads (columns, where, limit, sample) and size budgets.

Against the real PostgreSQL, as a least-privilege reader: the lineage keeps the options and the exact
SQL; a sample is reproducible by its seed; a where that writes or reads outside its table is refused;
a read over the budget is refused having read at most the budget (a tripwire view fails the read if
anything reads past its 5,000th row).

docs/RELIABILITY.md rows 46-48.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from psycopg import sql

from connectors import DataFetchError, DataSourceError, NotFoundError
from connectors.landing.lineage import read_provenance
from connectors.postgresql import BudgetExceededError, PostgreSQLConnector, RowBudget
from connectors.postgresql import connector as connector_module
from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, create_reader, drop_reader, pg_connector

pytestmark = pytest.mark.integration

ROWS = 1000
TRIP_AFTER = 5000  # the tripwire view fails when a read goes past this row


@pytest.fixture
def schemas(postgres_server: PostgresServer) -> Iterator[tuple[str, str]]:
    """``(in scope, out of scope)``: orders and a tripwire view; a secret table elsewhere."""
    scope, other = f"sized_{uuid.uuid4().hex[:8]}", f"secret_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        for name in (scope, other):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL(
            "CREATE TABLE {0}.orders (id int PRIMARY KEY, status text, total numeric(10,2), note text);"
            "INSERT INTO {0}.orders SELECT g, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END,"
            " g * 1.25, 'n' || g FROM generate_series(1, {1}) g;"
            "CREATE SEQUENCE {0}.counter;"
            "CREATE FUNCTION {0}.trip(g int8) RETURNS int8 VOLATILE LANGUAGE plpgsql AS $$"
            " BEGIN IF g > {2} THEN RAISE EXCEPTION 'read past the tripwire'; END IF; RETURN g; END $$;"
            "CREATE VIEW {0}.huge AS SELECT {0}.trip(g) AS id FROM generate_series(1, 10000000) g;"
            "CREATE TABLE {3}.keys (k text); INSERT INTO {3}.keys VALUES ('s3cr3t');"
            "ANALYZE {0}.orders").format(sql.Identifier(scope), sql.Literal(ROWS), sql.Literal(TRIP_AFTER),
                                         sql.Identifier(other)))
    yield scope, other
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE; DROP SCHEMA {} CASCADE").format(
            sql.Identifier(scope), sql.Identifier(other)))


@pytest.fixture
def pg(postgres_server: PostgresServer, schemas: tuple[str, str]) -> Iterator[PostgreSQLConnector]:
    scope, other = schemas
    reader = create_reader(postgres_server, scope, other)  # it may read the secret: the where still may not
    yield pg_connector(postgres_server, [scope], user=reader["user"], password=reader["password"])
    drop_reader(postgres_server, reader)


def rows_of(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(Path(path).read_text())))


async def table(pg: PostgreSQLConnector, identifier: str, workspace: Path, **options: Any) -> str:
    async with pg:
        return await pg.fetch_table(identifier, str(workspace), options)


def test_columns_where_params_limit_land_the_first_rows_by_key_and_the_record_keeps_them(
    pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path
) -> None:
    path = run(table(pg, f"{schemas[0]}.orders", tmp_path, columns=["total", "id"], where="status = %s",
                     params=["paid' OR true --"], limit=5))
    assert rows_of(path) == []  # the value was bound, not pasted: no row has that status
    path = run(table(pg, f"{schemas[0]}.orders", tmp_path, columns=["total", "id"], where="status = %s",
                     params=["paid"], limit=5))
    assert rows_of(path) == [{"total": f"{g * 1.25:.2f}", "id": str(g)} for g in (3, 6, 9, 12, 15)]
    record = read_provenance(path)
    assert record["options"] == {"columns": ["total", "id"], "where": "status = %s", "params": ["paid"],
                                 "limit": 5, "seed": 0}
    assert "status = 'paid'" in record["sql"] and "LIMIT 5" in record["sql"]
    assert [c["name"] for c in record["columns"]] == ["total", "id"] and record["row_count"] == 5


def test_parquet_slice_keeps_decimal_types(
    postgres_server: PostgresServer, schemas: tuple[str, str], tmp_path: Path
) -> None:
    reader = create_reader(postgres_server, schemas[0])
    try:
        pg = pg_connector(postgres_server, [schemas[0]], format="parquet", **reader)
        path = run(table(pg, f"{schemas[0]}.orders", tmp_path, columns=["id", "total"], limit=3))
    finally:
        drop_reader(postgres_server, reader)
    landed = pq.read_table(path)
    assert str(landed.schema.field("total").type) == "decimal128(10, 2)" and landed.num_rows == 3


def test_a_sample_is_the_same_for_the_same_seed_and_data(
    pg: PostgreSQLConnector, postgres_server: PostgresServer, schemas: tuple[str, str], tmp_path: Path
) -> None:
    orders = f"{schemas[0]}.orders"

    def ids(folder: str, **options: Any) -> list[str]:
        return [r["id"] for r in rows_of(run(table(pg, orders, tmp_path / folder, **options)))]

    fraction = ids("a", sample=0.1, seed=7)
    assert 40 < len(fraction) < 180 and fraction == ids("b", sample=0.1, seed=7)
    assert fraction != ids("c", sample=0.1, seed=8)
    counted = ids("d", sample=50, seed=3)
    assert len(counted) == 50 and len(set(counted)) == 50
    with admin(postgres_server) as conn:  # same data, another physical order
        conn.execute(sql.SQL("CLUSTER {} USING {}").format(
            sql.Identifier(schemas[0], "orders"), sql.Identifier("orders_pkey")))
        conn.execute(sql.SQL("UPDATE {} SET note = note").format(sql.Identifier(schemas[0], "orders")))
    assert sorted(ids("e", sample=50, seed=3)) == sorted(counted)
    assert sorted(ids("f", sample=0.1, seed=7)) == sorted(fraction)


@pytest.mark.parametrize("where", [
    "id IN (SELECT 1 FROM {other}.keys)",
    "true) UNION ALL SELECT 1, k, 1, k FROM {other}.keys WHERE (true",
    "EXISTS (SELECT FROM {other}.keys)",
    "id = 1; DELETE FROM {scope}.orders",
    "pg_catalog.nextval('{scope}.counter') > 0",
])
def test_a_where_that_writes_or_reads_outside_its_table_is_refused(
    pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path, where: str, canary: str
) -> None:
    scope, other = schemas
    with pytest.raises(DataSourceError) as caught:
        run(table(pg, f"{scope}.orders", tmp_path, where=where.format(scope=scope, other=other)))
    assert "s3cr3t" not in str(caught.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_unknown_column_is_not_found(pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no column 'nope'"):
        run(table(pg, f"{schemas[0]}.orders", tmp_path, columns=["id", "nope"]))


def test_a_read_over_the_row_budget_is_refused_having_read_at_most_the_budget(
    pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path
) -> None:
    huge = f"{schemas[0]}.huge"

    async def attempt(budget: RowBudget, **options: Any) -> str:
        async with pg:
            return await pg.fetch_table(huge, str(tmp_path), options, budget=budget)

    with pytest.raises(BudgetExceededError) as caught:  # a read of the view's 10M rows would trip at 5,001
        run(attempt(RowBudget(max_rows=1000)))
    message = str(caught.value)
    assert "1001 rows, over the thread's budget of 1000 rows" in message
    assert "limit, sample, columns, where" in message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(rows_of(run(attempt(RowBudget(max_rows=1000), limit=1000)))) == 1000


def test_a_read_over_the_byte_budget_is_refused(
    pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path
) -> None:
    async def attempt() -> str:
        async with pg:
            return await pg.fetch_table(f"{schemas[0]}.orders", str(tmp_path), None,
                                        budget=RowBudget(max_bytes=1000))

    with pytest.raises(BudgetExceededError, match="over the thread's budget of 1000 bytes"):
        run(attempt())


def test_a_query_can_be_sliced_and_sampled(pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path) -> None:
    async def attempt() -> str:
        async with pg:
            return await pg.fetch_query(f"SELECT id, status FROM {schemas[0]}.orders", str(tmp_path), "q",
                                        options={"where": "status = %(s)s", "params": {"s": "open"},
                                                 "sample": 10, "seed": 1})

    rows = rows_of(run(attempt()))
    assert len(rows) == 10 and {r["status"] for r in rows} == {"open"}


def test_bad_options_say_which_field(pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="sample"):
        run(table(pg, f"{schemas[0]}.orders", tmp_path, sample=2.5))
    with pytest.raises(DataFetchError):
        run(table(pg, f"{schemas[0]}.orders", tmp_path, where="no_such_column = 1"))


# --- every landed table is described -------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_the_record_carries_a_profile_without_sensitive_values(
    postgres_server: PostgresServer, schemas: tuple[str, str], tmp_path: Path, file_format: str
) -> None:
    reader = create_reader(postgres_server, schemas[0])
    try:
        pg = pg_connector(postgres_server, [schemas[0]], format=file_format, sensitive_columns=["*.orders.note"],
                          **reader)
        path = run(table(pg, f"{schemas[0]}.orders", tmp_path))
    finally:
        drop_reader(postgres_server, reader)
    record = read_provenance(path)
    profile = record["profile"]
    assert profile["rows"] == ROWS == record["row_count"]
    by_name = {c["name"]: c for c in profile["columns"]}
    assert list(by_name) == ["id", "status", "total", "note"]
    assert by_name["id"]["source_type"] == "integer" and (by_name["id"]["min"], by_name["id"]["max"]) == (1, ROWS)
    assert by_name["total"]["source_type"] == "numeric(10,2)" and by_name["total"]["file_type"] == "decimal128(10, 2)"
    assert (by_name["total"]["min"], by_name["total"]["max"]) == ("1.25", "1250.00")
    assert by_name["status"]["distinct"] == 2 and by_name["status"]["nulls"] == 0
    assert set(by_name["status"]["examples"]) <= {"paid", "open"} and by_name["status"]["examples"]
    assert by_name["id"]["distinct"] == ROWS
    note = by_name["note"]
    assert note["sensitive"] is True and "examples" not in note and "min" not in note
    assert '"n1' not in json.dumps(record)  # no value of the sensitive column anywhere in the record


def test_a_count_sample_of_a_large_table_reads_some_blocks_only(
    pg: PostgreSQLConnector, postgres_server: PostgresServer, schemas: tuple[str, str], tmp_path: Path
) -> None:
    with admin(postgres_server) as conn:  # ~1,700 blocks
        conn.execute(sql.SQL(
            "CREATE TABLE {0}.big (id int PRIMARY KEY, note text);"
            "INSERT INTO {0}.big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;"
            "ANALYZE {0}.big; GRANT SELECT ON {0}.big TO PUBLIC").format(sql.Identifier(schemas[0])))
    big = f"{schemas[0]}.big"
    first = run(table(pg, big, tmp_path / "a", sample=100, seed=4))
    ids = [r["id"] for r in rows_of(first)]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert ids == [r["id"] for r in rows_of(run(table(pg, big, tmp_path / "b", sample=100, seed=4)))]
    record = read_provenance(first)
    assert "TABLESAMPLE SYSTEM" in record["sql"] and record["sample_blocks_percent"] < 1
    select = record["sql"].removeprefix("COPY (").rsplit(") TO STDOUT", 1)[0]
    with admin(postgres_server) as conn:
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {select}").fetchone()[0][0]  # type: ignore[index]
        pages = conn.execute(sql.SQL("SELECT relpages FROM pg_class WHERE oid = {}::regclass").format(
            sql.Literal(big))).fetchone()[0]  # type: ignore[index]
    assert "Sample Scan" in json.dumps(plan["Plan"])
    read = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages > 1000 and read < pages / 10  # the server read a few blocks, not the table
    view = run(table(pg, f"{schemas[0]}.orders", tmp_path / "c", sample=10, seed=4))  # small: read whole
    assert "TABLESAMPLE" not in read_provenance(view)["sql"] and len(rows_of(view)) == 10


@pytest.mark.parametrize("streams", [1, 2])
def test_a_csv_is_profiled_while_it_is_written_not_read_again(
    pg: PostgreSQLConnector, schemas: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    streams: int
) -> None:
    def read_again(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the landed CSV was read again to profile it")

    monkeypatch.setattr(connector_module, "profile_csv", read_again)
    if streams == 2:  # two COPY streams by block ranges, as a large table is exported
        monkeypatch.setattr(connector_module, "PARALLEL_MIN_BYTES", 0)
    path = run(fetch(pg, f"{schemas[0]}.orders", tmp_path))
    record = read_provenance(path)
    assert record["streams"] == streams and record["row_count"] == ROWS
    by_name = {c["name"]: c for c in record["profile"]["columns"]}
    assert record["profile"]["rows"] == ROWS and (by_name["id"]["min"], by_name["id"]["max"]) == (1, ROWS)
    assert by_name["total"]["file_type"] == "decimal128(10, 2)" and by_name["total"]["max"] == "1250.00"
    assert by_name["status"]["distinct"] == 2 and by_name["id"]["distinct"] == ROWS


async def fetch(pg: PostgreSQLConnector, identifier: str, workspace: Path) -> str:
    async with pg:
        return await pg.fetch_data(identifier, str(workspace))
