"""ADLS Gen2 directory placeholders are never items: listing, sync, the sensor's listing, attach, fetch.

A hierarchical-namespace account lists each directory through the Blob API as a
zero-byte blob with metadata ``hdi_isfolder=true``. Azurite has no hierarchical
namespace, so the test writes such blobs itself, with that metadata, beside a
zero-byte name ending in '/' (what "create folder" makes on flat stores).

docs/RELIABILITY.md row 45.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from connectors import DataFetchError, DataSourceConfig
from connectors.azure_blob import AzureBlobConnector
from connectors.syncing.source_sync import SyncReport, sync_source
from connectors.threads.attach import attach_to_thread
from da_pipelines.resources import AzureBlobResource
from da_pipelines.sensors import _list_items
from tests.conformance import files_under, run
from tests.harness import AzuriteServer

pytestmark = pytest.mark.integration

FILES = {"a/b/c.csv": b"x,y\n1,2\n", "a/top.csv": b"t\n"}


@pytest.fixture
def adls_container(azurite_server: AzuriteServer) -> str:
    name = f"adls{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        container = service.create_container(name)
        for folder in ("a", "a/b"):  # what an HNS account shows for its directories
            container.upload_blob(folder, b"", metadata={"hdi_isfolder": "true"})
        container.upload_blob("flat/", b"")
        for blob, data in FILES.items():
            container.upload_blob(blob, data)
    return name


def connector(server: AzuriteServer, container: str) -> AzureBlobConnector:
    return AzureBlobConnector(DataSourceConfig(id="adls", type="azure_blob", name="ADLS", config={
        "connection_string": server.connection_string, "container_name": container}))


def test_placeholders_are_not_listed(azurite_server: AzuriteServer, adls_container: str) -> None:
    async def body() -> list[str]:
        async with connector(azurite_server, adls_container) as source:
            return sorted(i.path for i in await source.list_items())

    assert run(body()) == sorted(FILES)


def test_the_sensor_listing_sees_no_placeholder(azurite_server: AzuriteServer, adls_container: str) -> None:
    resource = AzureBlobResource(source_id="adls", source_name="ADLS", container_name=adls_container,
                                 connection_string=azurite_server.connection_string)
    assert sorted(i.path for i in run(_list_items(resource))) == sorted(FILES)


def test_sync_lands_the_files_beside_their_folders(azurite_server: AzuriteServer, adls_container: str,
                                                   tmp_path: Path) -> None:
    report = SyncReport()

    async def body() -> None:  # sync_source connects the connector itself
        async for _record in sync_source(connector(azurite_server, adls_container), tmp_path, report=report):
            pass

    run(body())
    assert not report.failed and not report.skipped
    assert {p.relative_to(tmp_path).as_posix() for p in files_under(tmp_path)
            if ".lineage" not in p.parts} == set(FILES)
    assert (tmp_path / "a" / "b" / "c.csv").read_bytes() == FILES["a/b/c.csv"]


def test_attach_by_glob_skips_and_by_name_refuses_a_placeholder(azurite_server: AzuriteServer, adls_container: str,
                                                                 tmp_path: Path) -> None:
    async def body() -> list[str]:
        async with connector(azurite_server, adls_container) as source:
            async def connector_for(_source_id: str) -> AzureBlobConnector:
                return source

            attached = await attach_to_thread(connector_for, tmp_path / "threads", "thread-1",
                                              [{"source_id": "adls", "glob": "a/*"}], create=True,
                                              state_dir=tmp_path / "state")
            with pytest.raises(DataFetchError, match="folder"):
                await source.fetch_data("a/b", str(tmp_path / "direct"))
            return sorted(f.name for f in attached.files)

    (tmp_path / "threads").mkdir()
    assert run(body()) == ["c.csv", "top.csv"]
    assert not (tmp_path / "direct" / "a" / "b").exists()
