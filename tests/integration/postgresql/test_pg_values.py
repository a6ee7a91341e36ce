"""CSV reads back typed by default; PostgreSQL's text forms are an option; money in Parquet."""

from __future__ import annotations

import decimal
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, create_reader, drop_reader, pg_connector

pytestmark = pytest.mark.integration

DDL = """CREATE TABLE {t} (id int, flag bool, tags text[], nums int[], flags bool[], blob bytea, price money,
 prices money[], amount numeric(12,2), ratio float8, at timestamptz, doc jsonb, note text, dom {d})"""
ROWS = """INSERT INTO {t} VALUES
 (1, true, '{{a,"b,c",NULL}}', '{{1,2}}', '{{t,f}}', '\\x00ff10', 12.34, '{{1.5,2}}', 10.50, 1.5,
  '2024-01-02 03:04:05+00', '{{"k": [1]}}', 'plain', false),
 (2, false, '{{}}', NULL, NULL, '', -0.01, NULL, NULL, 'NaN', NULL, NULL, 'multi
line, "quoted"', NULL),
 (3, NULL, NULL, '{{NULL}}', '{{NULL}}', NULL, NULL, '{{}}', -1, '-Infinity', NULL, 'null', '', true)"""


@pytest.fixture
def table(postgres_server: PostgresServer) -> Iterator[str]:
    schema = "values_" + __import__("uuid").uuid4().hex[:8]
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE DOMAIN {} AS bool").format(sql.Identifier(schema, "yes")))
        names = {"t": sql.Identifier(schema, "mixed"), "d": sql.Identifier(schema, "yes")}
        conn.execute(sql.SQL(DDL).format(**names))
        conn.execute(sql.SQL(ROWS).format(**names))
    yield schema
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def fetch(server: PostgresServer, schema: str, tmp_path: Path, **config: Any) -> Path:
    async def body() -> str:
        async with pg_connector(server, [schema], **config) as pg:
            return await pg.fetch_data(f"{schema}.mixed", str(tmp_path))

    return Path(run(body()))


def test_default_csv_reads_back_typed_with_pyarrow(postgres_server: PostgresServer, table: str, tmp_path: Path) -> None:
    path = fetch(postgres_server, table, tmp_path)
    parsed = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    types = {field.name: field.type for field in parsed.schema}
    assert types["flag"] == pa.bool_() and types["dom"] == pa.bool_()
    assert types["price"] == pa.float64() and types["amount"] == pa.float64() and types["ratio"] == pa.float64()
    assert pa.types.is_timestamp(types["at"])
    rows = parsed.to_pylist()
    assert [r["flag"] for r in rows] == [True, False, None] and [r["dom"] for r in rows] == [False, None, True]
    assert [r["price"] for r in rows] == [12.34, -0.01, None]
    assert json.loads(rows[0]["tags"]) == ["a", "b,c", None] and json.loads(rows[1]["tags"]) == []
    assert json.loads(rows[0]["nums"]) == [1, 2] and json.loads(rows[2]["nums"]) == [None]
    assert json.loads(rows[0]["flags"]) == [True, False] and json.loads(rows[0]["prices"]) == [1.5, 2]
    assert bytes.fromhex(rows[0]["blob"]) == b"\x00\xff\x10" and rows[1]["blob"] in (None, "")
    assert json.loads(rows[0]["doc"]) == {"k": [1]} and rows[1]["note"] == 'multi\nline, "quoted"'
    text = path.read_text()
    assert text.splitlines()[0] == "id,flag,tags,nums,flags,blob,price,prices,amount,ratio,at,doc,note,dom"
    assert ",t," not in text and "$" not in text and "\\x" not in text


def test_postgresql_text_forms_are_an_option(postgres_server: PostgresServer, table: str, tmp_path: Path) -> None:
    path = fetch(postgres_server, table, tmp_path, csv_values="postgresql")
    first = path.read_text().splitlines()[1]
    assert first.startswith('1,t,"{a,""b,c"",NULL}","{1,2}","{t,f}",\\x00ff10,$12.34,')
    assert "f" == first.rsplit(",", 1)[1]


def test_fetch_query_csv_gets_the_same_forms(postgres_server: PostgresServer, table: str, tmp_path: Path) -> None:
    reader = create_reader(postgres_server, table)

    async def body() -> str:
        async with pg_connector(postgres_server, [table], **reader) as pg:
            query = sql.SQL("SELECT id, flag, price, blob, id FROM {} ORDER BY id").format(
                sql.Identifier(table, "mixed")).as_string()
            return Path(await pg.fetch_query(query, str(tmp_path), "q")).read_text()

    try:
        assert run(body()) == "id,flag,price,blob,id\n1,true,12.34,00ff10,1\n2,false,-0.01,\"\",2\n3,,,,3\n"
    finally:
        drop_reader(postgres_server, reader)


def test_parquet_lands_money_as_an_exact_decimal(postgres_server: PostgresServer, table: str, tmp_path: Path) -> None:
    path = fetch(postgres_server, table, tmp_path, format="parquet")
    parquet = pq.read_table(path)
    assert parquet.schema.field("price").type == pa.decimal128(19, 2)
    assert parquet.column("price").to_pylist() == [decimal.Decimal("12.34"), decimal.Decimal("-0.01"), None]
    assert parquet.schema.field("flag").type == pa.bool_() and parquet.column("blob")[0].as_py() == b"\x00\xff\x10"


def test_csv_of_a_table_without_special_columns_stays_the_servers_own_copy(
    postgres_server: PostgresServer, table: str, tmp_path: Path
) -> None:
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 1 AS a, 'x'::text AS b").format(sql.Identifier(table, "p")))

    async def body() -> dict[str, Any]:
        async with pg_connector(postgres_server, [table]) as pg:
            from connectors import read_provenance

            return read_provenance(await pg.fetch_data(f"{table}.p", str(tmp_path)))

    record = run(body())
    assert record["sql"] == f'COPY "{table}"."p" TO STDOUT (FORMAT csv, HEADER)'
