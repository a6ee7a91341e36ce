"""In Dagster: a plain PostgreSQL table big enough to land as a Parquet dataset folder is one item.

A real PostgreSQL table over the source's ``part_bytes``, the code location's ``N_sync`` job run in
process: its asset materializes the folder once (row count and columns from the dataset's record),
the integrity check passes, a second run exports nothing, and a damaged part fails the check and is
repaired by the next sync.

docs/RELIABILITY.md row 67.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, Definitions
from psycopg import sql

from connectors.base import DataSourceConfig
from da_pipelines.definitions import build_definitions
from tests.harness import PostgresServer
from tests.helpers.dagster import materialized
from tests.helpers.postgresql import admin

pytestmark = pytest.mark.integration

ROWS = 20_000


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield instance


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"dgp_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(
            "CREATE SCHEMA {0};"
            "CREATE TABLE {0}.orders (id int PRIMARY KEY, total numeric(12,2), note text);"
            "INSERT INTO {0}.orders SELECT g, g * 1.5, md5(g::text) || md5((-g)::text) FROM generate_series(1, {1}) g"
        ).format(sql.Identifier(name), sql.Literal(ROWS)))
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def definitions(server: PostgresServer, schema: str, workspace: Path) -> Definitions:
    source = DataSourceConfig(id="PG-parts", type="postgresql", name="PG", config={
        "host": server.host, "port": server.port, "dbname": server.dbname, "user": server.user,
        "password": {"env": "DA_TEST_PG_PASSWORD"}, "schemas": [schema], "format": "parquet",
        "part_bytes": 1 << 16})
    return build_definitions(sources=[source], workspace=str(workspace))


def run(defs: Definitions, instance: DagsterInstance) -> Any:
    return defs.resolve_job_def("pg_parts_sync").execute_in_process(instance=instance, raise_on_error=False)


def facts(event: Any) -> dict[str, Any]:
    return {k: v.value for k, v in event.metadata.items()}


def test_a_table_landed_as_a_dataset_folder_is_one_checked_item_in_dagster(
        postgres_server: PostgresServer, schema: str, instance: DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_TEST_PG_PASSWORD", postgres_server.password)
    defs = definitions(postgres_server, schema, tmp_path / "ws")
    key = AssetKey(["pg_parts", schema, "orders"]).to_user_string()
    folder = tmp_path / "ws" / "PG-parts" / f"{schema}.orders"
    first = run(defs, instance)
    assert first.success
    landed = facts(materialized(first)[key])
    assert folder.is_dir() and len(list(folder.iterdir())) >= 3
    assert landed["dagster/row_count"] == ROWS and landed["items_landed"] == 1
    assert [c.name for c in landed["dagster/column_schema"].columns] == ["id", "total", "note"]
    (check,) = first.get_asset_check_evaluations()
    assert check.passed
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    second = run(defs, instance)
    assert second.success and facts(materialized(second)[key])["items_unchanged"] == 1
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing exported again
    part = sorted(folder.iterdir())[0]
    part.write_bytes(b"x" * part.stat().st_size)
    damaged = run(defs, instance)
    assert damaged.success and facts(materialized(damaged)[key])["items_repaired"] == 1
    (check,) = damaged.get_asset_check_evaluations()
    assert check.passed  # checked after the repair, within the same run
