"""The Dagster layer over the real services: Azure Blob (Azurite) and PostgreSQL.

Runs execute in-process against a persistent instance; sources are configured as in a sources
file, with their secrets as ``{env: NAME}`` references.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from dagster import AssetKey, DagsterInstance, Definitions, asset, build_sensor_context
from psycopg import sql

from connectors.base import DataSourceConfig
from connectors.landing.lineage import find_provenance
from da_pipelines.definitions import build_definitions
from tests.harness import AZURITE_KEY, AzuriteServer, PostgresServer
from tests.helpers.dagster import materialized, sync
from tests.helpers.postgresql import admin


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield instance


def landed_count(result: Any, key: str) -> int:
    return int(materialized(result)[key].metadata["items_landed"].value)


def tick(defs: Definitions, slug: str, instance: DagsterInstance, cursor: str | None) -> tuple[list[str], str]:
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                   resources=dict(defs.resources or {}))
    data = defs.resolve_sensor_def(f"{slug}_sensor").evaluate_tick(context)
    items = sorted(i["identifier"] for r in data.run_requests
                   for i in r.run_config["ops"][f"{slug}_sync_items"]["config"]["items"])
    return items, data.cursor


def all_event_text(instance: DagsterInstance) -> str:
    """Every event of every run, as text (to search for secrets)."""
    runs = instance.get_runs()
    assert runs
    return json.dumps([str(entry) for run in runs for entry in instance.all_logs(run.run_id)])


# --- Azure Blob ---------------------------------------------------------------------


def test_azure_source_syncs_with_lineage_and_its_sensor_sees_new_and_changed_blobs(
        azurite_server: AzuriteServer, instance: DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    container = f"dg{uuid.uuid4().hex[:16]}"
    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    client = service.create_container(container)
    client.upload_blob("sales.csv", b"region,amount\nnorth,10\n")
    client.upload_blob("2024/orders.csv", b"id\n1\n")
    monkeypatch.setenv("DA_TEST_AZURE_CS", azurite_server.connection_string)
    source = DataSourceConfig(id="az-src", type="azure_blob", name="Azure", config={
        "connection_string": {"env": "DA_TEST_AZURE_CS"}, "container_name": container})
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))

    requested, cursor = tick(defs, "az_src", instance, None)
    assert requested == ["2024/orders.csv", "sales.csv"]
    result = sync(defs, "az_src", instance)
    assert list(materialized(result)) == ["az_src/files"] and landed_count(result, "az_src/files") == 2
    records = {r["identifier"]: r for r in find_provenance(tmp_path / "ws" / "az-src")}
    assert records["sales.csv"]["run_id"] == result.run_id and records["sales.csv"]["source_type"] == "azure_blob"
    assert (tmp_path / "ws" / "az-src" / "2024" / "orders.csv").read_bytes() == b"id\n1\n"

    assert tick(defs, "az_src", instance, cursor)[0] == []
    client.upload_blob("sales.csv", b"region,amount\nnorth,11\n", overwrite=True)
    client.upload_blob("new.csv", b"n\n")
    requested, cursor = tick(defs, "az_src", instance, cursor)
    assert requested == ["new.csv", "sales.csv"]
    again = sync(defs, "az_src", instance)
    assert landed_count(again, "az_src/files") == 2
    assert materialized(again)["az_src/files"].metadata["items_unchanged"].value == 1
    assert tick(defs, "az_src", instance, cursor)[0] == []
    assert AZURITE_KEY not in all_event_text(instance)


# --- PostgreSQL ---------------------------------------------------------------------


def test_postgres_source_lands_tables_with_table_metadata_and_its_sensor_sees_changes(
        postgres_server: PostgresServer, instance: DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    schema = f"dg_{uuid.uuid4().hex[:10]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (id int primary key, name text)").format(
            sql.Identifier(schema, "people")))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'a'), (2, 'b')").format(sql.Identifier(schema, "people")))
        conn.execute(sql.SQL("CREATE TABLE {} (sku text, qty int)").format(sql.Identifier(schema, "stock")))
    monkeypatch.setenv("DA_TEST_PG_PASSWORD", postgres_server.password)
    source = DataSourceConfig(id="PG-src", type="postgresql", name="PG", config={
        "host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname,
        "user": postgres_server.user, "password": {"env": "DA_TEST_PG_PASSWORD"}, "schemas": [schema]})
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))
    people_key, stock_key = AssetKey(["pg_src", schema, "people"]), AssetKey(["pg_src", schema, "stock"])
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    assert specs[people_key].metadata["dagster/table_name"] == f"{schema}.people"  # before any sync
    assert [c.name for c in specs[people_key].metadata["dagster/column_schema"].columns] == ["id", "name"]

    # a user's own asset downstream of one table, in the same code location
    @asset(deps=[people_key])
    def people_report() -> None: ...

    with_user = Definitions.merge(defs, Definitions(assets=[people_report]))
    assert with_user.resolve_asset_graph().get(AssetKey("people_report")).parent_keys == {people_key}

    requested, cursor = tick(defs, "pg_src", instance, None)
    assert requested == [f"{schema}.people", f"{schema}.stock"]
    one = defs.resolve_job_def("pg_src_sync").execute_in_process(instance=instance, asset_selection=[people_key])
    assert one.success and list(materialized(one)) == [people_key.to_user_string()]  # Materialize on one table
    result = sync(defs, "pg_src", instance)
    people = materialized(result)[people_key.to_user_string()]
    assert people.metadata["dagster/row_count"].value == 2
    assert [c.name for c in people.metadata["dagster/column_schema"].value.columns] == ["id", "name"]
    assert people.metadata["dagster/table_name"].value == f"{schema}.people"
    assert postgres_server.password not in people.metadata["dagster/uri"].value
    assert people.metadata["items_unchanged"].value == 1 and landed_count(result, stock_key.to_user_string()) == 1
    assert (tmp_path / "ws" / "PG-src" / f"{schema}.people.csv").exists()

    assert tick(defs, "pg_src", instance, cursor)[0] == []
    with admin(postgres_server) as conn:  # closing the session publishes its statistics
        conn.execute(sql.SQL("INSERT INTO {} VALUES (3, 'c')").format(sql.Identifier(schema, "people")))
    deadline, requested = time.monotonic() + 20, []
    while not requested and time.monotonic() < deadline:
        requested, cursor = tick(defs, "pg_src", instance, cursor)
        time.sleep(0.5 if not requested else 0)
    assert requested == [f"{schema}.people"]
    again = sync(defs, "pg_src", instance)
    assert landed_count(again, people_key.to_user_string()) == 1
    assert materialized(again)[people_key.to_user_string()].metadata["dagster/row_count"].value == 3
    assert landed_count(again, stock_key.to_user_string()) == 0
    assert postgres_server.password not in all_event_text(instance)
