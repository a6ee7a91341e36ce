"""What a new user met with PostgreSQL: partitioned tables, job
byte totals, query parameters, a multi-statement query."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.api.conftest import Api, start_api, use_own_secret_store
from tests.harness import PostgresServer
from tests.helpers.api import wait_job
from tests.helpers.cli import Cli

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(postgres_server: PostgresServer) -> str:
    """A schema with a partitioned table (two partitions) and a plain table."""
    name = f"s_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"CREATE TABLE {name}.events (at int, what text) PARTITION BY RANGE (at)")
        conn.execute(f"CREATE TABLE {name}.events_a PARTITION OF {name}.events FOR VALUES FROM (0) TO (100)")
        conn.execute(f"CREATE TABLE {name}.events_b PARTITION OF {name}.events FOR VALUES FROM (100) TO (200)")
        conn.execute(f"INSERT INTO {name}.events SELECT g, repeat('x', 50) FROM generate_series(0, 199) g")
        conn.execute(f"CREATE TABLE {name}.plain (id int, v text)")
        conn.execute(f"INSERT INTO {name}.plain SELECT g, 'v' || g FROM generate_series(1, 500) g")
    return name


def _pg(server: PostgresServer, schema: str, **config: object) -> dict[str, object]:
    return {"id": "pg", "type": "postgresql", "name": "PG", "config": {
        "host": server.host, "port": server.port, "dbname": server.dbname, "user": server.user,
        "password": server.password, "schemas": [schema], **config}}


def test_a_partitioned_table_lands_once_by_default_and_job_totals_are_counted_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer, schema: str) -> None:
    use_own_secret_store(tmp_path, monkeypatch)
    api: Api
    for api in start_api(tmp_path):
        api.call("POST", "/v1/data-sources", json=_pg(postgres_server, schema), expect=201)
        listed = [i["path"] for i in api.call("GET", "/v1/data-sources/pg/browse", expect=200).json()["data"]]
        assert listed == [f"{schema}.events", f"{schema}.plain"]
        job = api.call("POST", "/v1/data-sources/pg/fetch", expect=202,
                       json={"items": listed, "workspace": "t1"}).json()
        done = wait_job(api, "pg", job["id"])
        assert done["status"] == "succeeded"
        progress = done["progress"]
        assert progress["bytes_total"] == progress["bytes_done"] == sum(f["size"] for f in done["files"])
        api.call("PATCH", "/v1/data-sources/pg", json={"config": {"partitions": True}}, expect=200)
        children = [i["path"] for i in api.call("GET", "/v1/data-sources/pg/browse", expect=200).json()["data"]]
        assert children == [f"{schema}.events", f"{schema}.events_a", f"{schema}.events_b", f"{schema}.plain"]


def test_query_takes_params_and_says_when_there_is_more_than_one_statement(
        cli: Cli, postgres_server: PostgresServer, schema: str) -> None:
    env = {"NEWCOMER_PG_DSN": postgres_server.dsn}
    cli("add", "postgresql", "pg", "--dsn-env", "NEWCOMER_PG_DSN", "--set", "allow_privileged_queries=true", env=env)
    landed = cli("query", "pg", f"SELECT id FROM {schema}.plain WHERE id <= %(top)s::int ORDER BY id",
                 "--name", "top", "--param", "top=3", "--workspace", "ws", "--json", env=env).stdout
    assert Path(json.loads(landed)["path"]).read_text().splitlines() == ["id", "1", "2", "3"]
    positional = cli("query", "pg", f"SELECT v FROM {schema}.plain WHERE id = %s::int", "--name", "one",
                     "--param", "2", "--workspace", "ws", env=env).stdout.strip()
    assert Path(positional).read_text().splitlines() == ["v", "v2"]
    two = cli("query", "pg", "SELECT 1; SELECT 2", "--name", "two", "--workspace", "ws", check=False, env=env)
    assert "more than one statement" in two.stderr and "prepared statement" not in two.stderr
