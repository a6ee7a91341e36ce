"""A local file that changes while it uploads (docs/RELIABILITY.md row 28): refused, nothing committed.

The file is changed by a hook on the upload's own read (after its first block), or by a real
writer thread; the blob service is the harness's real Azurite.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from connectors.azure_blob import upload as upload_module
from connectors.azure_blob.upload import BlobUpload, FileChangedError
from tests.api.conftest import start_api, use_own_secret_store
from tests.harness import AzuriteServer
from tests.helpers.azure import connector_for, new_container, read_back, upload

pytestmark = pytest.mark.integration

SMALL_BLOCK = 64 * 1024
SIZE = 16 * SMALL_BLOCK + 100  # 17 blocks


def _append(path: Path) -> None:
    with path.open("ab") as file:
        file.write(b"more rows\n")


def _rewrite_same_size(path: Path) -> None:
    with path.open("r+b") as file:
        file.seek(SIZE - 10)
        file.write(b"X" * 10)


def _rewrite_keeping_mtime(path: Path) -> None:
    # a tool that restores the modification time (rsync -t, cp -p): only the change time tells
    info = path.stat()
    _rewrite_same_size(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _truncate(path: Path) -> None:
    os.truncate(path, SMALL_BLOCK + 1)


def change_after_first_read(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """The upload's first read of the file (a block) runs ``change`` right after it."""
    original = BlobUpload._read
    done = threading.Event()

    def read(self: BlobUpload, offset: int, length: int) -> bytes:
        data = original(self, offset, length)
        if not done.is_set():
            done.set()
            change()
        return data

    monkeypatch.setattr(BlobUpload, "_read", read)


def assert_absent(server: AzuriteServer, container: str, name: str) -> None:
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        with pytest.raises(ResourceNotFoundError):
            service.get_blob_client(container, name).get_blob_properties()


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_module, "BLOCK", SMALL_BLOCK)


@pytest.mark.parametrize("change", [_append, _rewrite_same_size, _rewrite_keeping_mtime, _truncate])
def test_a_file_changed_mid_upload_is_refused_and_nothing_is_committed(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blocks: None,
    change: Callable[[Path], None],
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "report.csv"
    local.write_bytes(os.urandom(SIZE))
    connector = connector_for(azurite_server, container, monkeypatch)
    change_after_first_read(monkeypatch, lambda: change(local))
    with pytest.raises(FileChangedError, match="changed while it was being uploaded.*nothing was committed") as info:
        upload(connector, local, "results/report.csv")
    assert info.value.retryable and info.value.source_id == "lake"
    assert_absent(azurite_server, container, "results/report.csv")


def test_an_overwrite_of_a_changing_file_leaves_the_old_blob(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "report.csv"
    local.write_bytes(b"the published version\n")
    upload(connector_for(azurite_server, container, monkeypatch), local, "report.csv")
    local.write_bytes(os.urandom(SIZE))
    change_after_first_read(monkeypatch, lambda: _append(local))
    with pytest.raises(FileChangedError):
        upload(connector_for(azurite_server, container, monkeypatch), local, "report.csv", overwrite=True)
    assert read_back(azurite_server, container, "report.csv")[0] == b"the published version\n"


def test_a_writer_still_at_work_is_caught(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "growing.csv"
    local.write_bytes(os.urandom(4 * SIZE))
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            _append(local)
            time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with pytest.raises(FileChangedError):
            upload(connector_for(azurite_server, container, monkeypatch, max_concurrency=1), local, "growing.csv")
    finally:
        stop.set()
        thread.join()
    assert_absent(azurite_server, container, "growing.csv")


def test_a_file_that_holds_still_uploads_in_small_blocks(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "still.bin"
    local.write_bytes(os.urandom(SIZE))
    done = upload(connector_for(azurite_server, container, monkeypatch), local, "still.bin")
    assert read_back(azurite_server, container, "still.bin")[0] == local.read_bytes()
    assert done.container == container and done.size == SIZE


def test_the_upload_route_answers_409_and_records_nothing(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    use_own_secret_store(tmp_path, monkeypatch)
    container = new_container(azurite_server)
    for api in start_api(tmp_path):
        api.call("POST", "/v1/data-sources", expect=201, json={
            "id": "lake", "type": "azure_blob", "name": "Lake",
            "config": {"container_name": container, "connection_string": azurite_server.connection_string}})
        chart = api.settings.workspace_base / "t1" / "generated" / "chart.png"
        chart.parent.mkdir(parents=True)
        chart.write_bytes(os.urandom(SIZE))
        change_after_first_read(monkeypatch, partial(_append, chart))
        detail = api.call("POST", "/v1/data-sources/lake/upload", expect=409,
                          json={"thread_id": "t1", "files": ["chart.png"]}).json()["detail"]
        assert "changed while it was being uploaded" in detail
    assert_absent(azurite_server, container, "t1/chart.png")
    assert not (tmp_path / "workspace" / "t1" / ".lineage" / "published.jsonl").exists()
