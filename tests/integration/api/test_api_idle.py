"""The API's pooled connections close after an idle time; a removed thread folder cancels its attach.

Against the harness's real PostgreSQL, with the API built three ways: ``create_app`` (in process),
the router included in a plain FastAPI app (as DeepAnalyze's ``create_app`` does), and
``da-sources serve`` as a user runs it. A closed pool is seen where it matters: its sessions are
gone from ``pg_stat_activity``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from connectors.api import router
from connectors.api.api_keys import KeyStore
from connectors.api.app_state import ApiState
from tests.api.conftest import Api, start_api, use_own_secret_store
from tests.harness import PostgresServer, free_port, stop_process_group
from tests.helpers.api import pg_sessions, pg_source
from tests.helpers.cli import CONSOLE_SCRIPT, Cli

pytestmark = pytest.mark.integration

Tables = tuple[str, str, str]
LOOPBACK_POLICY = "hosts: [127.0.0.1]\nports: any\n"  # the operator lets the API reach the harness's server


def wait_for(condition: Callable[[], bool], seconds: float = 15) -> float:
    """Poll ``condition`` until it holds; how long that took (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    use_own_secret_store(tmp_path, monkeypatch)
    yield from start_api(tmp_path, idle_seconds=0.5, cache_seconds=0)


def state_of(api: Api) -> ApiState:
    state = api.client.app.state.da_sources  # type: ignore[attr-defined]
    assert isinstance(state, ApiState)
    return state


def test_idle_pooled_connections_close_and_the_next_request_reconnects(
    api: Api, postgres_server: PostgresServer, pg_tables: Tables  # noqa: F811
) -> None:
    role, password, schema = pg_tables
    api.call("POST", "/v1/data-sources", expect=201,
             json=pg_source(postgres_server, role, password, schema, pool_min_size=2))
    api.call("GET", "/v1/data-sources/pg/browse", expect=200)
    wait_for(lambda: pg_sessions(postgres_server, role) >= 2)
    assert state_of(api).pool.pooled() == ["pg"]
    wait_for(lambda: pg_sessions(postgres_server, role) == 0)
    assert state_of(api).pool.pooled() == []
    items = api.call("GET", "/v1/data-sources/pg/browse", expect=200).json()["data"]
    assert [i["path"] for i in items] == [f"{schema}.customers", f"{schema}.orders"]
    wait_for(lambda: pg_sessions(postgres_server, role) >= 2)


def test_a_request_longer_than_the_idle_time_keeps_its_connections_others_close(
    api: Api, postgres_server: PostgresServer, pg_tables: Tables  # noqa: F811
) -> None:
    role, password, schema = pg_tables
    for source_id in ("pg", "pg2"):
        api.call("POST", "/v1/data-sources", expect=201,
                 json={**pg_source(postgres_server, role, password, schema), "id": source_id})
    api.call("GET", "/v1/data-sources/pg2/browse", expect=200)
    slow = {"references": [{"source_id": "pg", "query": "select pg_sleep(3) as slept", "name": "slow"}],
            "create": True}
    with ThreadPoolExecutor(1) as pool:
        attach = pool.submit(api.call, "POST", "/v1/threads/t1/data", json=slow)
        wait_for(lambda: state_of(api).pool.pooled() == ["pg"])  # pg2 idle and closed, pg held by the attach
        response = attach.result(timeout=30)
    assert response.status_code == 200, response.text
    assert [f["name"] for f in response.json()["data"]] == ["slow.csv"]
    wait_for(lambda: state_of(api).pool.pooled() == [])


def test_removing_a_thread_folder_cancels_its_attach_then_the_pool_closes(
    api: Api, postgres_server: PostgresServer, pg_tables: Tables  # noqa: F811
) -> None:
    role, password, schema = pg_tables
    api.call("POST", "/v1/data-sources", expect=201, json=pg_source(postgres_server, role, password, schema))
    folder = api.settings.workspace_base / "t2"
    slow = {"references": [{"source_id": "pg", "table": f"{schema}.customers"},
                           {"source_id": "pg", "query": "select pg_sleep(60) as slept", "name": "slow"}],
            "create": True}
    staging = api.settings.thread_state_dir / "threads" / "t2" / "staging"  # our records: never in the folder
    with ThreadPoolExecutor(1) as pool:
        attach = pool.submit(api.call, "POST", "/v1/threads/t2/data", json=slow)
        wait_for(lambda: staging.exists() and any(staging.iterdir()))
        wait_for(lambda: _running_queries(postgres_server, role) == 1)
        shutil.rmtree(folder)  # DeepAnalyze's cleanup of an expired thread
        removed = time.monotonic()
        response = attach.result(timeout=30)
    assert time.monotonic() - removed < 20  # not the 60 s query
    assert response.status_code == 409 and "thread 't2' ended while its data was being attached" in response.text
    assert list(api.settings.workspace_base.iterdir()) == [] and not staging.parent.exists()
    wait_for(lambda: _running_queries(postgres_server, role) == 0, 10)  # the query was cancelled
    wait_for(lambda: pg_sessions(postgres_server, role) == 0)


def _running_queries(server: PostgresServer, role: str) -> int:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active' "
                           "AND query LIKE %s", [role, "%pg_sleep%"]).fetchone()
    return int(row[0]) if row else 0


def test_an_app_that_includes_the_router_closes_idle_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer,
    pg_tables: Tables,  # noqa: F811
) -> None:
    role, password, schema = pg_tables
    use_own_secret_store(tmp_path, monkeypatch)
    monkeypatch.setenv("DA_SOURCES_FILE", str(tmp_path / "sources.yaml"))
    monkeypatch.setenv("DA_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("DA_API_IDLE_SECONDS", "1")
    monkeypatch.setenv("DA_API_CACHE_SECONDS", "1")  # the second listing asks the source again
    (tmp_path / "api-policy.yaml").write_text(LOOPBACK_POLICY)  # the operator's, beside the sources file
    _, key = KeyStore(tmp_path / "api-keys.json").create("admin")
    headers = {"Authorization": f"Bearer {key}"}
    app = FastAPI()  # DeepAnalyze's create_app(), in short
    app.include_router(router)
    with TestClient(app) as client:
        created = client.post("/v1/data-sources", headers=headers,
                              json=pg_source(postgres_server, role, password, schema, pool_min_size=2))
        assert created.status_code == 201, created.text
        assert client.get("/v1/data-sources/pg/browse", headers=headers).status_code == 200
        wait_for(lambda: pg_sessions(postgres_server, role) >= 2)
        assert wait_for(lambda: pg_sessions(postgres_server, role) == 0) > 0.5
        assert client.get("/v1/data-sources/pg/browse", headers=headers).status_code == 200
        wait_for(lambda: pg_sessions(postgres_server, role) >= 2)
    wait_for(lambda: pg_sessions(postgres_server, role) == 0, 5)  # and the shutdown closed them


@pytest.mark.slow
def test_da_sources_serve_closes_idle_connections(
    cli: Cli, postgres_server: PostgresServer, pg_tables: Tables  # noqa: F811
) -> None:
    role, password, schema = pg_tables
    key = cli("api-keys", "create", "admin").stdout.split()[0]
    Path(cli.env["DA_SOURCES_FILE"]).with_name("api-policy.yaml").write_text(LOOPBACK_POLICY)
    port = free_port()
    server = subprocess.Popen([str(CONSOLE_SCRIPT), "serve", "--port", str(port)], cwd=cli.cwd,
                              env={**cli.env, "DA_API_IDLE_SECONDS": "1"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                          timeout=30) as client:
            wait_for(lambda: _healthy(client), 30)
            created = client.post("/v1/data-sources", json=pg_source(postgres_server, role, password, schema,
                                                                      pool_min_size=2))
            assert created.status_code == 201, created.text
            assert client.get("/v1/data-sources/pg/browse").status_code == 200
            wait_for(lambda: pg_sessions(postgres_server, role) >= 2)
            wait_for(lambda: pg_sessions(postgres_server, role) == 0)
    finally:
        stop_process_group(server)
        out, err = server.communicate(timeout=10)
    assert password not in out.decode() + err.decode()


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False

