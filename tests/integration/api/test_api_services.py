"""The HTTP API against the harness's real Azurite and PostgreSQL.

Every test follows canary secrets (an account key in a connection string, a
SAS signature, a PostgreSQL password) through every response, header and
audit line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from connectors.secrets.store import default_store
from tests.api.conftest import Api, start_api, use_own_secret_store
from tests.harness import AzuriteServer, PostgresServer
from tests.helpers.api import pg_sessions, pg_source, wait_job
from tests.helpers.azure import new_container

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    use_own_secret_store(tmp_path, monkeypatch)
    yield from start_api(tmp_path, max_jobs=32, max_jobs_per_source=32)


# --- Azure Blob Storage -------------------------------------------------------------


def test_azure_source_end_to_end_with_a_write_only_connection_string(api: Api, azurite_server: AzuriteServer) -> None:
    body = b"region,amount\n" + b"".join(b"north,%d\n" % i for i in range(50))
    container = new_container(azurite_server, {"sales/2024.csv": body, "sales/2025.csv": b"a\n1\n", "x.txt": b"x"})
    created = api.call("POST", "/v1/data-sources", expect=201, json={
        "id": "az", "type": "azure_blob", "name": "Azure",
        "config": {"container_name": container, "connection_string": azurite_server.connection_string}}).json()
    assert created["config"]["connection_string"] == {"secret": "az.connection_string"}
    assert api.call("POST", "/v1/data-sources/az/test", key="read", expect=200).json()["ok"] is True
    top = api.call("GET", "/v1/data-sources/az/browse", key="read", expect=200).json()
    assert [e["path"] for e in top["data"]] == ["sales/", "x.txt"]
    assert api.call("GET", "/v1/data-sources/az/metadata?item=x.txt", expect=200).json()["metadata"]["size"] == 1
    preview = api.call("GET", "/v1/data-sources/az/preview?item=sales/2024.csv", expect=200).json()
    assert preview["rows"][:2] == [["north", 0], ["north", 1]] and len(preview["rows"]) == 10
    job = api.call("POST", "/v1/data-sources/az/fetch", key="read", expect=202,
                   json={"glob": "sales/*", "workspace": "thread-a"}).json()
    done = wait_job(api, "az", job["id"])
    assert done["status"] == "succeeded" and sorted(f["identifier"] for f in done["files"]) == [
        "sales/2024.csv", "sales/2025.csv"]
    landed = api.settings.jobs_base / "thread-a" / "sales" / "2024.csv"
    assert landed.read_bytes() == body
    lineage = api.call("GET", "/v1/lineage?path=thread-a/sales/2024.csv", expect=200).json()["record"]
    assert lineage["sha256"] == hashlib.sha256(body).hexdigest() and lineage["source_type"] == "azure_blob"
    api.call("GET", "/v1/data-sources/az/metadata?item=missing.csv", expect=404)
    api.assert_nowhere(azurite_server.account_key)


def test_azure_wrong_key_is_a_502_with_its_cause_and_no_key(api: Api, azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server, {"a.txt": b"a"})
    wrong = base64.b64encode(secrets.token_bytes(64)).decode()  # a canary key: valid base64, not the account's
    connection = azurite_server.connection_string.replace(azurite_server.account_key, wrong)
    api.call("POST", "/v1/data-sources", expect=201, json={
        "id": "az", "type": "azure_blob", "name": "Azure",
        "config": {"container_name": container, "connection_string": connection}})
    failed = api.call("POST", "/v1/data-sources/az/test", expect=200).json()
    assert failed["ok"] is False and failed["error"]
    browse = api.call("GET", "/v1/data-sources/az/browse", expect=502).json()
    assert browse["detail"].startswith("the source failed")
    api.call("POST", "/v1/data-sources/az/fetch", json={"items": ["a.txt"], "workspace": "w"}, expect=502)
    api.assert_nowhere(wrong)
    assert wrong not in str(api.audit())


def test_twenty_concurrent_fetch_jobs_land_one_consistent_file(api: Api, azurite_server: AzuriteServer) -> None:
    body = secrets.token_bytes(3 << 20)
    container = new_container(azurite_server, {"big/data.bin": body, "small.csv": b"a\n1\n"})
    api.call("POST", "/v1/data-sources", expect=201, json={
        "id": "az", "type": "azure_blob", "name": "Azure",
        "config": {"container_name": container, "connection_string": azurite_server.connection_string}})

    def start(_: int) -> str:
        response = api.call("POST", "/v1/data-sources/az/fetch", key="read", expect=202,
                            json={"items": ["big/data.bin", "small.csv"], "workspace": "shared"})
        return str(response.json()["id"])

    with ThreadPoolExecutor(20) as pool:
        jobs = list(pool.map(start, range(20)))
    finished = [wait_job(api, "az", job, timeout=120) for job in jobs]
    assert [j["status"] for j in finished] == ["succeeded"] * 20
    folder = api.settings.jobs_base / "shared"
    assert (folder / "big" / "data.bin").read_bytes() == body
    records = sorted(p.relative_to(folder / ".lineage").as_posix() for p in (folder / ".lineage").rglob("*.json")
                     if not any(part.startswith(".") for part in p.relative_to(folder / ".lineage").parts))
    assert records == ["big/data.bin.json", "small.csv.json"]
    assert sorted(p.name for p in folder.iterdir()) == [".lineage", "big", "small.csv"]
    assert {f["sha256"] for j in finished for f in j["files"] if f["identifier"] == "big/data.bin"} == {
        hashlib.sha256(body).hexdigest()}


# --- PostgreSQL ---------------------------------------------------------------------


def test_postgresql_discovery_preview_stats_and_fetch(api: Api, postgres_server: PostgresServer,
                                                      pg_tables: tuple[str, str, str]) -> None:
    role, password, schema = pg_tables
    api.call("POST", "/v1/data-sources", json=pg_source(postgres_server, role, password, schema), expect=201)
    assert default_store().get("pg.password") == password
    items = api.call("GET", "/v1/data-sources/pg/browse", key="read", expect=200).json()["data"]
    assert [i["path"] for i in items] == [f"{schema}.customers", f"{schema}.orders"]
    table = api.call("GET", f"/v1/data-sources/pg/schema?item={schema}.orders", expect=200).json()
    assert [(c["name"], c["type"], c["nullable"]) for c in table["columns"]][:3] == [
        ("id", "bigint", False), ("customer_id", "integer", True), ("amount", "numeric(10,2)", True)]
    assert table["primary_key"] == ["id"]
    assert table["foreign_keys"] == [{"name": "orders_customer_id_fkey", "table": f"{schema}.orders",
                                      "columns": ["customer_id"], "references_table": f"{schema}.customers",
                                      "references_columns": ["id"]}]
    relations = api.call("GET", "/v1/data-sources/pg/relationships", expect=200).json()["data"]
    assert [(r["table"], r["references_table"]) for r in relations] == [(f"{schema}.orders", f"{schema}.customers")]
    preview = api.call("GET", f"/v1/data-sources/pg/preview?item={schema}.orders&limit=3", key="read",
                       expect=200).json()
    assert preview["rows"][0] == [1, 2, 1.5, None, "2026-01-01T00:00:00+00:00"]
    assert [c["name"] for c in preview["columns"]] == ["id", "customer_id", "amount", "note", "at"]
    assert len(api.call("GET", f"/v1/data-sources/pg/preview?item={schema}.orders", expect=200).json()["rows"]) == 10
    stats = api.call("GET", f"/v1/data-sources/pg/stats?item={schema}.orders", expect=200).json()
    by_column = {c["column"]: c for c in stats["columns"]}
    assert stats["row_count"] == 40 and set(by_column) == {"id", "customer_id", "amount"}
    assert (by_column["amount"]["min"], by_column["amount"]["max"], by_column["amount"]["mean"]) == (1.5, 60.0, 30.75)
    job = api.call("POST", "/v1/data-sources/pg/fetch", expect=202,
                   json={"items": [f"{schema}.customers"], "workspace": "t-pg"}).json()
    done = wait_job(api, "pg", job["id"])
    assert done["status"] == "succeeded" and done["files"][0]["lineage"]["row_count"] == 5
    assert (api.settings.jobs_base / "t-pg" / f"{schema}.customers.csv").read_text().startswith("id,name")
    api.call("GET", f"/v1/data-sources/pg/schema?item={schema}.nope", expect=404)
    api.call("GET", '/v1/data-sources/pg/preview?item=x"; DROP TABLE y; --', expect=404)
    api.assert_nowhere(password)


def test_postgresql_wrong_password_is_502_with_cause(api: Api, postgres_server: PostgresServer,
                                                     pg_tables: tuple[str, str, str]) -> None:
    role, _, schema = pg_tables
    wrong = "CANARY" + secrets.token_hex(16)
    api.call("POST", "/v1/data-sources", json=pg_source(postgres_server, role, wrong, schema), expect=201)
    failed = api.call("POST", "/v1/data-sources/pg/test", expect=200).json()
    assert failed["ok"] is False and "password authentication failed" in failed["error"]
    detail = api.call("GET", "/v1/data-sources/pg/browse", expect=502).json()["detail"]
    assert "password authentication failed" in detail
    api.assert_nowhere(wrong)


def test_a_silent_server_is_a_504(api: Api) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        api.call("POST", "/v1/data-sources", expect=201, json={"id": "pg", "type": "postgresql", "name": "x",
                 "config": {"host": "127.0.0.1", "port": port, "dbname": "d", "user": "u",
                            "password": "pw", "connect_timeout": 2}})
        started = time.monotonic()
        response = api.call("GET", "/v1/data-sources/pg/browse", expect=504).json()
        assert time.monotonic() - started < 15 and response["detail"]


def test_azure_forged_sas_never_shows_its_signature(api: Api, azurite_server: AzuriteServer) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    container = new_container(azurite_server, {"a.csv": b"a\n1\n"})
    valid = generate_container_sas(azurite_server.account_name, container, account_key=azurite_server.account_key,
                                   permission=ContainerSasPermissions(read=True, list=True),
                                   expiry=datetime.now(UTC) + timedelta(hours=1))
    signature = "CANARY" + secrets.token_hex(16)
    forged = "&".join(p if not p.startswith("sig=") else f"sig={signature}" for p in valid.split("&"))
    api.call("POST", "/v1/data-sources", expect=201, json={"id": "az", "type": "azure_blob", "name": "Azure",
             "config": {"container_name": container, "account_url": azurite_server.blob_endpoint,
                        "sas_token": forged}})
    assert api.call("POST", "/v1/data-sources/az/test", expect=200).json()["ok"] is False
    api.call("GET", "/v1/data-sources/az/browse", expect=502)
    api.call("GET", "/v1/data-sources/az/preview?item=a.csv", expect=502)
    api.call("POST", "/v1/data-sources/az/fetch", json={"items": ["a.csv"], "workspace": "w"}, expect=502)
    api.call("PATCH", "/v1/data-sources/az", json={"config": {"sas_token": valid}}, expect=200)  # rotation
    assert [e["path"] for e in api.call("GET", "/v1/data-sources/az/browse", expect=200).json()["data"]] == ["a.csv"]
    api.assert_nowhere(signature)
    api.assert_nowhere(valid.split("sig=")[1].split("&")[0])


def test_delete_closes_the_pooled_connections(api: Api, postgres_server: PostgresServer,
                                              pg_tables: tuple[str, str, str]) -> None:
    role, password, schema = pg_tables
    api.call("POST", "/v1/data-sources", expect=201,
             json=pg_source(postgres_server, role, password, schema, pool_min_size=2))
    api.call("GET", "/v1/data-sources/pg/browse", expect=200)
    deadline = time.monotonic() + 10
    while pg_sessions(postgres_server, role) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_sessions(postgres_server, role) >= 2
    api.call("DELETE", "/v1/data-sources/pg", expect=200)
    deadline = time.monotonic() + 10
    while pg_sessions(postgres_server, role) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_sessions(postgres_server, role) == 0
    assert default_store().get("pg.password") is None


def test_postgresql_write_only_dsn_never_shows(api: Api, postgres_server: PostgresServer,
                                               pg_tables: tuple[str, str, str]) -> None:
    role, password, schema = pg_tables
    dsn = f"postgresql://{role}:{password}@{postgres_server.host}:{postgres_server.port}/{postgres_server.dbname}"
    created = api.call("POST", "/v1/data-sources", expect=201, json={"id": "pg", "type": "postgresql", "name": "x",
                       "config": {"dsn": dsn, "schemas": [schema]}}).json()
    assert created["config"]["dsn"] == {"secret": "pg.dsn"}
    assert api.call("POST", "/v1/data-sources/pg/test", expect=200).json()["ok"] is True
    api.call("GET", f"/v1/data-sources/pg/preview?item={schema}.customers", expect=200)
    api.call("PATCH", "/v1/data-sources/pg", json={"config": {"dsn": dsn.replace(f":{postgres_server.port}/", ":1/")}},
             expect=200)
    assert api.call("POST", "/v1/data-sources/pg/test", expect=200).json()["ok"] is False
    api.call("GET", "/v1/data-sources/pg/browse", expect=502)
    api.call("GET", f"/v1/data-sources/pg/{'x' * 5000}", expect=404)
    api.assert_nowhere(password)
