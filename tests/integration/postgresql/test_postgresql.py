"""PostgreSQLConnector against the harness's real PostgreSQL: the conformance suite and the contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from connectors import read_provenance
from connectors.postgresql.catalog import format_identifier, parse_identifier
from tests.conformance import ConnectorConformance, SourceUnderTest, run
from tests.harness import PostgresServer
from tests.helpers.postgresql import (
    ODD_TABLE,
    TABLES,
    admin,
    create_reader,
    create_schema,
    drop_reader,
    drop_schema,
    pg_connector,
)

pytestmark = pytest.mark.integration


def replace_rows(server: PostgresServer, identifier: str, n: int) -> None:
    """Version ``n`` of ``people``: 1 + n % 7 rows, in one transaction (a reader sees the old or the new)."""
    assert parse_identifier(identifier)[1] == "people"
    table = sql.Identifier(*parse_identifier(identifier))
    with admin(server) as conn, conn.transaction():
        # changes one at a time (readers are not blocked): racing DELETE + INSERT would collide on the key
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
        conn.execute(sql.SQL("DELETE FROM {}").format(table))
        conn.execute(sql.SQL("INSERT INTO {} (id, name) SELECT g, %s FROM generate_series(1, %s) g").format(table),
                     (f"version {n}", 1 + n % 7))


def landed_csv(identifier: str) -> str:
    schema, table = parse_identifier(identifier)
    return f"{schema}.{table}.csv"


class TestPostgreSQLConformance(ConnectorConformance):
    @pytest.fixture
    def source(self, postgres_server: PostgresServer) -> Iterator[SourceUnderTest]:
        schema = create_schema(postgres_server, TABLES)
        items = {format_identifier(schema, table): expected for table, (_, _, expected) in TABLES.items()}
        items[format_identifier(schema, "people_view")] = b'id,name\n1,alice\n2,"b,""o""b"\n'
        yield SourceUnderTest(
            make_connector=lambda: pg_connector(postgres_server, [schema]),
            items=items,
            missing=f"{schema}.no_such_table",
            source_type="postgresql",
            landed_name=landed_csv,
            modified_at_known=False,
            secrets=[postgres_server.password],
            exact_size=False,  # PostgreSQL knows the table's size on disk, not its CSV's
            change=lambda identifier, n: replace_rows(postgres_server, identifier, n),
            unsafe_names=[
                f'{schema}."../../etc/passwd"',
                f'{schema}."a/../../x"',
                '"/etc".x',
                f'"C:\\x".{schema}',
                f'{schema}."a\\..\\..\\x"',
                f'{schema}."a\x00b"',
                f'{schema}."a\nb"',
                f'".~da-x".{schema}',
                f'"{"s" * 130}"."{"t" * 130}"',
                f"{schema}.a//b",
            ],
        )
        drop_schema(postgres_server, schema)


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = create_schema(postgres_server, TABLES)
    yield name
    drop_schema(postgres_server, name)


@pytest.fixture
def reader(postgres_server: PostgresServer, schema: str) -> Iterator[dict[str, str]]:
    """``user``/``password`` of a least-privilege role that may read ``schema``."""
    role = create_reader(postgres_server, schema)
    yield role
    drop_reader(postgres_server, role)


def test_identifiers_round_trip_through_listing(postgres_server: PostgresServer, schema: str) -> None:
    async def body() -> list[str]:
        async with pg_connector(postgres_server, [schema]) as pg:
            return [item.path for item in await pg.list_items()]

    paths = run(body())
    assert format_identifier(schema, ODD_TABLE) in paths
    for path in paths:
        assert format_identifier(*parse_identifier(path)) == path
    assert parse_identifier(f'{schema}."{ODD_TABLE.replace(chr(34), chr(34) * 2)}"') == (schema, ODD_TABLE)


def test_metadata_has_kind_columns_primary_key_and_exact_count(
    postgres_server: PostgresServer, schema: str
) -> None:
    async def body() -> dict[str, Any]:
        async with pg_connector(postgres_server, [schema]) as pg:
            return await pg.get_metadata(f"{schema}.people", exact_count=True)

    metadata = run(body())
    assert metadata["kind"] == "table" and metadata["primary_key"] == ["id"]
    assert metadata["row_count"] == 4
    assert metadata["columns"][2] == {"name": "amount", "type": "numeric(12,2)", "nullable": True}
    assert metadata["columns"][0]["nullable"] is False


def test_lineage_has_rows_columns_sql_and_snapshot(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    async def body() -> str:
        async with pg_connector(postgres_server, [schema]) as pg:
            return await pg.fetch_data(f"{schema}.people", str(tmp_path))

    record = read_provenance(run(body()))
    assert record["row_count"] == 4
    assert record["columns"][3] == {"name": "seen", "type": "timestamp with time zone"}
    assert record["sql"].startswith("COPY ") and record["snapshot"]
    assert record["source_uri"].startswith(f"postgresql://{postgres_server.host}:{postgres_server.port}/")
    assert postgres_server.password not in str(record)


# --- types and queries ----------------------------------------------------------

ALL_TYPES = """(i2 int2, i4 int4, i8 int8, f4 real, f8 float8, b bool, n numeric(12,2),
 nbig numeric(50,10), nu numeric, d date, t time, ts timestamp, tz timestamptz, iv interval, u uuid,
 j json, jb jsonb, ai int[], at text[], an numeric[], ba bytea, e {mood}, dm {money2}, tx text)"""
ALL_VALUES = """(1, 2, 3, 1.5, 'NaN', true, 123.45, 12345678901234567890.0123456789, 'NaN', '2024-02-29',
 '12:34:56.789', '2024-01-01 00:00:00.000001', '2024-01-01 12:00:00+05', '1 year 2 mons 3 days 04:05:06.789',
 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"a":1}', '{"b":[1,2]}', '{1,NULL,3}', '{"x,y",NULL,""}', '{1.5,2}',
 '\\x00ff10', 'happy', 9.99, E'he said "hi"\\nnew'),
 (NULL, NULL, NULL, NULL, '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-1 day -00:00:01',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '')"""


def test_parquet_keeps_types_values_and_nulls(postgres_server: PostgresServer, schema: str, tmp_path: Path) -> None:
    import datetime
    import decimal
    import math

    import pyarrow as pa
    import pyarrow.parquet as pq

    mood, money2 = sql.Identifier(schema, "mood"), sql.Identifier(schema, "money2")
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE TYPE {} AS ENUM ('sad', 'happy')").format(mood))
        conn.execute(sql.SQL("CREATE DOMAIN {} AS numeric(10,2)").format(money2))
        ddl = sql.SQL(ALL_TYPES).format(mood=mood, money2=money2)
        conn.execute(sql.SQL("CREATE TABLE {} ").format(sql.Identifier(schema, "alltypes")) + ddl)  # type: ignore[operator]
        conn.execute(sql.SQL("INSERT INTO {} VALUES ").format(sql.Identifier(schema, "alltypes"))  # type: ignore[operator]
                     + sql.SQL(ALL_VALUES))

    async def body() -> str:
        async with pg_connector(postgres_server, [schema], format="parquet") as pg:
            return await pg.fetch_data(f"{schema}.alltypes", str(tmp_path))

    path = run(body())
    assert path.endswith(f"{schema}.alltypes.parquet")
    table = pq.read_table(path)
    types = {field.name: field.type for field in table.schema}
    assert types["n"] == pa.decimal128(12, 2) and types["nbig"] == pa.decimal256(50, 10)
    assert types["nu"] == pa.string() and types["dm"] == pa.decimal128(10, 2)
    assert types["tz"] == pa.timestamp("us", tz="UTC") and types["ts"] == pa.timestamp("us")
    assert types["ai"] == pa.list_(pa.int32()) and types["ba"] == pa.binary()
    assert pa.types.is_dictionary(types["e"])
    first, second = table.to_pylist()
    assert first["i8"] == 3 and math.isnan(first["f8"]) and first["b"] is True
    assert first["nbig"] == decimal.Decimal("12345678901234567890.0123456789") and first["nu"] == "NaN"
    assert first["tz"] == datetime.datetime(2024, 1, 1, 7, 0, tzinfo=datetime.UTC)
    assert first["ts"] == datetime.datetime(2024, 1, 1, 0, 0, 0, 1)
    assert first["t"] == datetime.time(12, 34, 56, 789000) and first["d"] == datetime.date(2024, 2, 29)
    assert first["iv"] == {"months": 14, "days": 3, "microseconds": 14706789000}
    assert first["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert first["jb"] == '{"b": [1, 2]}' and first["ai"] == [1, None, 3] and first["at"] == ["x,y", None, ""]
    assert first["an"] == ["1.5", "2"] and first["ba"] == b"\x00\xff\x10" and first["e"] == "happy"
    assert first["tx"] == 'he said "hi"\nnew'
    assert second["f8"] == -math.inf and second["tx"] == "" and second["iv"]["microseconds"] == -1_000_000
    assert all(second[name] is None for name in ("i2", "n", "nbig", "tz", "u", "jb", "ai", "ba", "e", "dm"))
    assert read_provenance(path)["row_count"] == 2


def test_fetch_query_binds_parameters_and_lands_by_name(
    postgres_server: PostgresServer, schema: str, reader: dict[str, str], tmp_path: Path
) -> None:
    async def body() -> str:
        async with pg_connector(postgres_server, [schema], **reader) as pg:
            query = sql.SQL("SELECT id, name, id FROM {} WHERE name = %s ORDER BY id;").format(
                sql.Identifier(schema, "people")).as_string()
            return await pg.fetch_query(query, str(tmp_path), "reports/alice", params=["alice"])

    path = Path(run(body()))
    assert path == tmp_path / "reports" / "alice.csv"
    assert path.read_bytes() == b"id,name,id\n1,alice,1\n"
    record = read_provenance(path)
    assert record["row_count"] == 1 and record["columns"][1] == {"name": "name", "type": "text"}
    assert record["source_version"].startswith("snapshot:")


def test_two_streams_over_one_snapshot_give_the_same_bytes_as_one(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.postgresql.connector as module

    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT g AS id, md5(g::text) AS label, now() AS at "
                             "FROM generate_series(1, 50000) g").format(sql.Identifier(schema, "wide")))
    monkeypatch.setattr(module, "PARALLEL_MIN_BYTES", 0)

    async def fetch(pool_max_size: int, workspace: Path) -> str:
        async with pg_connector(postgres_server, [schema], pool_max_size=pool_max_size) as pg:
            return await pg.fetch_data(f"{schema}.wide", str(workspace))

    one = Path(run(fetch(1, tmp_path / "one")))
    two = Path(run(fetch(4, tmp_path / "two")))
    assert read_provenance(one)["streams"] == 1 and read_provenance(two)["streams"] == 2
    assert two.read_bytes() == one.read_bytes()
    assert read_provenance(two)["row_count"] == 50000 == read_provenance(one)["row_count"]
    assert read_provenance(two)["sha256"] == read_provenance(one)["sha256"]


def test_parquet_of_many_rows_streams_in_row_groups(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT g AS id, CASE WHEN g % 1000 = 0 THEN E'a\\nb,\"c\"' "
                             "ELSE md5(g::text) END AS label FROM generate_series(1, 300000) g")
                     .format(sql.Identifier(schema, "many")))

    async def body() -> str:
        async with pg_connector(postgres_server, [schema], format="parquet") as pg:
            return await pg.fetch_data(f"{schema}.many", str(tmp_path))

    path = run(body())
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_rows == 300000 and parquet.metadata.num_row_groups > 1
    table = parquet.read()
    assert pc.sum(table["id"]).as_py() == 300000 * 300001 // 2
    assert table["label"][999].as_py() == 'a\nb,"c"' and table["label"][0].as_py() == "c4ca4238a0b923820dcc509a6f75849b"
    assert read_provenance(path)["row_count"] == 300000
