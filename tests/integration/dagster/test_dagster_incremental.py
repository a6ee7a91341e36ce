"""In Dagster: a table named in its source's ``incremental`` syncs by its cursor.

A real PostgreSQL table, the code location's ``N_sync`` job run in process: the first run exports the
table as a dataset folder; the next adds only new rows (a late commit inside the look-back too); the
materialization's data version follows the cursor; a column added mid-way shows as schema drift (and
fails the run under ``on_schema_change: fail``); run config ``full_refresh: true`` replaces the folder.

docs/RELIABILITY.md row 61.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, Definitions
from psycopg import sql

from connectors.base import DataSourceConfig
from connectors.landing.lineage import read_provenance
from da_pipelines.definitions import build_definitions
from tests.harness import PostgresServer
from tests.helpers.dagster import DAGSTER, env_for, execute, finish, materialized
from tests.helpers.postgresql import admin

pytestmark = pytest.mark.integration


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield instance


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"dgi_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(
            "CREATE SCHEMA {0};"
            "CREATE TABLE {0}.orders (id int PRIMARY KEY, total numeric(12,2), updated_at timestamptz);"
            "INSERT INTO {0}.orders SELECT g, g * 1.5, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'"
            " FROM generate_series(1, 1000) g").format(sql.Identifier(name)))
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def definitions(server: PostgresServer, schema: str, workspace: Path, policy: str) -> Definitions:
    source = DataSourceConfig(id="PG-inc", type="postgresql", name="PG", config={
        "host": server.host, "port": server.port, "dbname": server.dbname, "user": server.user,
        "password": {"env": "DA_TEST_PG_PASSWORD"}, "schemas": [schema], "format": "parquet",
        "incremental": {f"{schema}.orders": {"cursor": "updated_at", "lookback": 60, "part_bytes": 100_000,
                                             "on_schema_change": policy}}})
    return build_definitions(sources=[source], workspace=str(workspace))


def run(defs: Definitions, instance: DagsterInstance, config: dict[str, Any] | None = None) -> Any:
    job = defs.resolve_job_def("pg_inc_sync")
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  run_config={"ops": {"pg_inc_sync_items": {"config": config}}} if config else None)


def execute_sql(server: PostgresServer, statement: str, schema: str) -> None:
    with admin(server) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(schema)))  # type: ignore[arg-type]


def orders(result: Any, schema: str) -> Any:
    assert result.success
    return materialized(result)[AssetKey(["pg_inc", schema, "orders"]).to_user_string()]


def facts(event: Any) -> dict[str, Any]:
    return {k: v.value for k, v in event.metadata.items()}


def test_an_incremental_table_syncs_by_its_cursor_in_dagster(
        postgres_server: PostgresServer, schema: str, instance: DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_TEST_PG_PASSWORD", postgres_server.password)
    defs = definitions(postgres_server, schema, tmp_path / "ws", "evolve")
    folder = tmp_path / "ws" / "PG-inc" / f"{schema}.orders"
    first = orders(run(defs, instance), schema)
    assert folder.is_dir() and facts(first)["last_sync"] == "full" and facts(first)["dagster/row_count"] == 1000
    assert facts(first)["cursor_high_water_mark"].startswith("2026-01-01 00:16:40")
    assert first.tags["dagster/data_version"] == f"cursor={facts(first)['cursor_high_water_mark']};rows=1000"
    execute_sql(postgres_server, "INSERT INTO {0}.orders SELECT g, 1, timestamptz '2026-01-02 00:00:00+00' "
            "FROM generate_series(1001, 1010) g", schema)
    # committed late: its cursor is 30 s behind the last sync's high-water mark, inside the 60 s look-back
    execute_sql(postgres_server, "INSERT INTO {0}.orders VALUES (5000, 2, timestamptz '2026-01-01 00:16:10+00')",
                schema)
    second = facts(orders(run(defs, instance), schema))
    assert second["last_sync"] == "increment" and second["rows_added"] == 11 and second["dagster/row_count"] == 1011
    assert second["parts"] == first.metadata["parts"].value + 1 and second["schema_drift"] == {}
    table = ds.dataset(str(folder), format="parquet").to_table(columns=["id"]).column("id").to_pylist()
    assert sorted(table).count(5000) == 1 and len(table) == 1011
    execute_sql(postgres_server, "ALTER TABLE {0}.orders ADD COLUMN region text DEFAULT 'north';"
            "UPDATE {0}.orders SET updated_at = timestamptz '2026-02-01 00:00:00+00' WHERE id = 3", schema)
    drifted = facts(orders(run(defs, instance), schema))
    assert drifted["schema_drift"] == {"added": ["region"]} and drifted["on_schema_change"] == "evolve"
    assert drifted["last_sync"] == "increment" and drifted["rows_added"] == 1
    execute_sql(postgres_server, "INSERT INTO {0}.orders VALUES (6000, 3, timestamptz '2026-02-02 00:00:00+00')",
                schema)
    asked = {"items": [{"identifier": f"{schema}.orders", "version": ""}]}  # as the sensor asks for a table
    named = facts(orders(run(defs, instance, asked), schema))
    assert named["last_sync"] == "increment" and named["rows_added"] == 1 and named["schema_drift"] == {}
    execute_sql(postgres_server, "DELETE FROM {0}.orders WHERE id = 7", schema)
    refreshed = orders(run(defs, instance, {"full_refresh": True}), schema)
    assert facts(refreshed)["last_sync"] == "full" and facts(refreshed)["dagster/row_count"] == 1011
    ids = ds.dataset(str(folder), format="parquet").to_table(columns=["id"]).column("id").to_pylist()
    assert 7 not in ids and len(ids) == 1011  # the deleted row is gone, the dataset replaced whole
    assert read_provenance(folder)["run_id"] is not None  # the record names the Dagster run


def test_schema_drift_under_fail_fails_the_run_and_is_observed(
        postgres_server: PostgresServer, schema: str, instance: DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_TEST_PG_PASSWORD", postgres_server.password)
    defs = definitions(postgres_server, schema, tmp_path / "ws", "fail")
    orders(run(defs, instance), schema)
    execute_sql(postgres_server, "ALTER TABLE {0}.orders ADD COLUMN region text", schema)
    failed = run(defs, instance)
    assert not failed.success
    observed = [e.event_specific_data.asset_observation for e in failed.all_events
                if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    assert observed and observed[0].metadata["schema_drift_refused"].value is True
    assert '"added": ["region"]' in observed[0].metadata["error"].value
    assert read_provenance(tmp_path / "ws" / "PG-inc" / f"{schema}.orders")["row_count"] == 1000  # left as it was


def test_dagster_job_execute_syncs_increments_and_a_full_refresh_from_run_config(
        postgres_server: PostgresServer, schema: str, tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(json.dumps({"sources": [{"id": "pg", "type": "postgresql", "name": "PG", "config": {
        "host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname,
        "user": postgres_server.user, "password": {"env": "DA_TEST_PG"}, "schemas": [schema], "format": "parquet",
        "incremental": {f"{schema}.orders": {"cursor": "updated_at"}}}}]}))
    env = env_for(tmp_path, DA_SOURCES_FILE=str(sources), DA_TEST_PG=postgres_server.password)
    folder = tmp_path / "workspace" / "pg" / f"{schema}.orders"
    finish(execute("pg_sync", tmp_path, env))
    assert read_provenance(folder)["last_sync"] == "full" and read_provenance(folder)["row_count"] == 1000
    execute_sql(postgres_server, "INSERT INTO {0}.orders VALUES (2000, 1, timestamptz '2026-03-01 00:00:00+00');"
                "DELETE FROM {0}.orders WHERE id = 1", schema)
    output = finish(execute("pg_sync", tmp_path, env))
    record = read_provenance(folder)
    assert record["last_sync"] == "increment" and record["rows_synced"] == 1 and record["row_count"] == 1001
    assert "increment sync, 1 rows added" in output
    config = tmp_path / "full.yaml"
    config.write_text(json.dumps({"ops": {"pg_sync_items": {"config": {"full_refresh": True}}}}))
    process = subprocess.Popen([DAGSTER, "job", "execute", "-m", "da_pipelines", "-j", "pg_sync", "-c", str(config)],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finish(process)
    record = read_provenance(folder)
    assert record["last_sync"] == "full" and record["row_count"] == 1000  # the deleted row is gone
