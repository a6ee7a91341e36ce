"""In Dagster: a table dataset lands the part its source's ``table_options`` say, described.

A real PostgreSQL table, the code location's ``N_sync`` job run in process: the materialization's row
count, options and profile follow the sliced file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from psycopg import sql

from connectors.base import DataSourceConfig
from connectors.landing.lineage import read_provenance
from da_pipelines.definitions import build_definitions
from tests.harness import PostgresServer
from tests.helpers.dagster import materialized, sync
from tests.helpers.postgresql import admin

pytestmark = pytest.mark.integration


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield instance


def test_a_table_dataset_lands_its_configured_part_with_a_profile(
        postgres_server: PostgresServer, instance: DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    schema = f"dgs_{uuid.uuid4().hex[:10]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (id int primary key, name text, secret text)").format(
            sql.Identifier(schema, "people")))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'p' || g, 'pin' || g FROM generate_series(1, 50) g").format(
            sql.Identifier(schema, "people")))
    monkeypatch.setenv("DA_TEST_PG_PASSWORD", postgres_server.password)
    source = DataSourceConfig(id="PG-sized", type="postgresql", name="PG", config={
        "host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname,
        "user": postgres_server.user, "password": {"env": "DA_TEST_PG_PASSWORD"}, "schemas": [schema],
        "format": "parquet", "allow_privileged_queries": True, "sensitive_columns": ["secret"],
        "table_options": {f"{schema}.people": {"where": "id > %s", "params": [40], "columns": ["id", "secret"]}}})
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))
    key = AssetKey(["pg_sized", schema, "people"]).to_user_string()
    people = materialized(sync(defs, "pg_sized", instance))[key]
    assert people.metadata["dagster/row_count"].value == 10
    assert people.metadata["options"].value["where"] == "id > %s"
    profile = people.metadata["profile"].value
    assert [c["name"] for c in profile["columns"]] == ["id", "secret"] and profile["columns"][0]["min"] == 41
    assert "pin4" not in json.dumps(profile)  # the sensitive column shows no value
    record = read_provenance(tmp_path / "ws" / "PG-sized" / f"{schema}.people.parquet")
    assert "id > 40" in record["sql"] and record["row_count"] == 10
