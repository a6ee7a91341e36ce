"""``da-sources fetch --all`` of a PostgreSQL table landed as a Parquet dataset folder: one item, re-synced.

The first sync lands the folder of parts; a second sync verifies every part and lands nothing; a damaged
part is repaired; ``lineage`` shows the folder's record. docs/RELIABILITY.md row 67.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pyarrow.dataset as ds
import pytest

from tests.harness import PostgresServer
from tests.helpers.cli import Cli, assert_nowhere

pytestmark = pytest.mark.integration

ROWS = 20_000


@pytest.fixture
def big_table(postgres_server: PostgresServer) -> Iterator[tuple[str, str, str]]:
    """(schema, role, password): a schema with a ~2 MB table ``orders`` the role may read."""
    schema, role = f"clip_{uuid.uuid4().hex[:8]}", f"clip_{uuid.uuid4().hex[:10]}"
    password = "CANARY" + secrets.token_hex(16)
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE SCHEMA {schema}; GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"CREATE TABLE {schema}.orders (id int PRIMARY KEY, total numeric(12,2), note text)")
        conn.execute(f"INSERT INTO {schema}.orders SELECT g, g * 1.5, md5(g::text) || md5((-g)::text) "
                     f"FROM generate_series(1, {ROWS}) g")
        conn.execute(f"GRANT SELECT ON {schema}.orders TO {role}")
    yield schema, role, password
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE; DROP ROLE {role}")


def test_fetch_all_lands_a_dataset_folder_once_and_repairs_a_damaged_part(
        cli: Cli, postgres_server: PostgresServer, big_table: tuple[str, str, str]) -> None:
    schema, role, password = big_table
    cli("add", "postgresql", "pg", "--host", postgres_server.host, "--port", str(postgres_server.port),
        "--dbname", postgres_server.dbname, "--user", role, "--password-prompt", "--schemas", schema,
        "--format", "parquet", "--part-bytes", "65536", stdin=password + "\n")
    folder = cli.cwd / "ws" / "pg" / f"{schema}.orders"
    first = json.loads(cli("fetch", "pg", "--all", "--workspace", "ws", "--json").stdout)
    assert [(r["status"], r["path"]) for r in first] == [("landed", str(folder))]
    assert ds.dataset(str(folder), format="parquet").count_rows() == ROWS and len(list(folder.iterdir())) >= 3
    again = json.loads(cli("fetch", "pg", "--all", "--workspace", "ws", "--json").stdout)
    assert [(r["status"], r["identifier"]) for r in again] == [("unchanged", f"{schema}.orders")]
    part = sorted(folder.iterdir())[-1]
    part.write_bytes(b"\0" * part.stat().st_size)
    repaired = json.loads(cli("fetch", "pg", "--all", "--workspace", "ws", "--json").stdout)
    assert [r["status"] for r in repaired] == ["repaired"]
    record = json.loads(cli("lineage", str(folder), "--json").stdout)
    assert record["format"] == "parquet dataset" and record["row_count"] == ROWS
    assert len(record["parts"]) == len(list(folder.iterdir()))
    assert_nowhere(password, cli, cli.sources_file, *(cli.cwd / "ws").rglob("*.json"))
