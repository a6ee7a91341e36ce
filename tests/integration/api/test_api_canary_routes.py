"""No value of a secret or referenced field in any answer, error, log line or audit line.

Sources whose user, password and container come by reference (the operator's) or write-only (the API's),
pointed at the real services so every route fails in its own way, and a canary in each value.

Row 56 of docs/RELIABILITY.md (the fault matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, start_api, use_own_secret_store
from tests.harness import AzuriteServer, PostgresServer

pytestmark = pytest.mark.integration
ITEM = "public.t"


def every_route(api: Api, source_id: str) -> None:
    base = f"/v1/data-sources/{source_id}"
    for method, url, body in [
        ("GET", "/v1/data-sources", None), ("GET", base, None), ("POST", f"{base}/test", None),
        ("GET", f"{base}/browse", None), ("GET", f"{base}/metadata?item={ITEM}", None),
        ("GET", f"{base}/schema?item={ITEM}", None), ("GET", f"{base}/relationships", None),
        ("GET", f"{base}/preview?item={ITEM}", None), ("GET", f"{base}/stats?item={ITEM}", None),
        ("POST", f"{base}/fetch", {"items": [ITEM], "workspace": "w"}), ("GET", f"{base}/jobs", None),
        ("POST", "/v1/threads/t1/data", {"references": [{"source_id": source_id, "path": ITEM}]}),
        ("POST", f"{base}/upload", {"thread_id": "t1", "files": ["x.csv"]}),
        ("PATCH", base, {"name": "renamed"}),
    ]:
        response = api.call(method, url, json=body)
        assert response.status_code < 500 or response.status_code in (502, 504), (url, response.text)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    use_own_secret_store(tmp_path, monkeypatch)
    yield from start_api(tmp_path)


def test_referenced_and_write_only_values_never_show_through_any_route(
        api: Api, postgres_server: PostgresServer, azurite_server: AzuriteServer, canary: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DA_USER", f"{canary}u")
    monkeypatch.setenv("DA_PASSWORD", f"{canary}p")
    monkeypatch.setenv("DA_CONTAINER", f"c{canary}")
    monkeypatch.setenv("DA_AZURE", azurite_server.connection_string)
    server = {"host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname}
    api.operator_add({"id": "op", "type": "postgresql", "name": "op",
                      "config": {**server, "user": {"env": "DA_USER"}, "password": {"env": "DA_PASSWORD"}}})
    api.operator_add({"id": "az", "type": "azure_blob", "name": "az", "config": {
        "connection_string": {"env": "DA_AZURE"}, "container_name": {"env": "DA_CONTAINER"}}})
    api.call("POST", "/v1/data-sources", expect=201, json={"id": "wo", "type": "postgresql", "name": "wo",
             "config": {**server, "user": postgres_server.user, "password": f"{canary}w"}})
    for source_id in ("op", "az", "wo"):
        every_route(api, source_id)
        api.call("DELETE", f"/v1/data-sources/{source_id}", expect=200)
    api.assert_nowhere(canary)
    assert canary not in caplog.text
