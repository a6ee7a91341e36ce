"""The thin client (clients/python) against the API served over a real socket."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from azure.storage.blob import BlobServiceClient
from da_sources_client import DataSourcesClient, DataSourcesError

from connectors.api import create_app
from tests.api.conftest import Api, local_source
from tests.harness import AzuriteServer, free_port


@pytest.fixture
def client(api: Api) -> Iterator[DataSourcesClient]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api.settings), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    key = api.manage["Authorization"].removeprefix("Bearer ")
    yield DataSourcesClient(f"http://127.0.0.1:{port}", key)
    server.should_exit = True
    thread.join()


def test_the_client_lists_sources_and_items(api: Api, client: DataSourcesClient, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    assert [s["id"] for s in client.list_sources()] == ["docs"]
    assert {e["path"] for e in client.list_items("docs")} == {"2024/", "a.csv", "b.parquet", "notes.txt"}
    assert {e["path"] for e in client.list_items("docs", "2024/")} == {"2024/q1.csv", "2024/q2.csv"}
    assert "key" not in repr(client).lower()


def test_the_client_attaches_and_says_why_it_failed(api: Api, client: DataSourcesClient, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    (api.settings.workspace_base / "thread-c").mkdir(parents=True)
    attachment = client.attach("thread-c", [{"source_id": "docs", "glob": "2024/*.csv"}])
    assert [f.name for f in attachment.files] == ["q1.csv", "q2.csv"]
    assert attachment.manifest.splitlines()[1].startswith("- q1.csv: 2024/q1.csv from source docs")
    with pytest.raises(DataSourcesError) as caught:
        client.attach("thread-c", [{"source_id": "docs", "path": "missing.csv"}])
    assert caught.value.status == 404 and "missing.csv" in caught.value.detail
    with pytest.raises(DataSourcesError) as caught:
        DataSourcesClient(client._http.base_url, "dsk_wrong").list_sources()
    assert caught.value.status == 401 and caught.value.http_status == 502


def test_the_client_uploads_a_generated_file(api: Api, client: DataSourcesClient, azurite_server: AzuriteServer,
                                             data_root: Path) -> None:
    container = f"cli{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        service.create_container(container)
    api.call("POST", "/v1/data-sources", expect=201, json={"id": "lake", "type": "azure_blob", "name": "Lake",
             "config": {"container_name": container, "connection_string": azurite_server.connection_string}})
    generated = api.settings.workspace_base / "thread-u" / "generated"
    generated.mkdir(parents=True)
    (generated / "chart.png").write_bytes(b"\x89PNG" + os.urandom(100))
    [record] = client.upload("lake", "thread-u", ["chart.png"])
    assert record["blob_name"] == "thread-u/chart.png"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        assert service.get_blob_client(container, "thread-u/chart.png").download_blob().readall() == \
            (generated / "chart.png").read_bytes()


def test_an_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(DataSourcesError) as caught:
        DataSourcesClient(f"http://127.0.0.1:{free_port()}", "dsk_x", timeout=5).list_sources()
    assert caught.value.status == 0 and "cannot reach" in str(caught.value)
