"""AzureBlobConnector.upload against real Azurite: staged blocks, one commit, no silent overwrite."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from connectors.azure_blob.upload import BLOCK, BlobExistsError
from connectors.errors import ConfigurationError, OutOfScopeError
from tests.harness import AzuriteServer
from tests.helpers.azure import connector_for, new_container, read_back, upload

pytestmark = pytest.mark.integration


def test_upload_reads_back_byte_identical_with_metadata(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "report.csv"
    local.write_bytes(b"region,total\nnorth,10\n")
    done = upload(connector_for(azurite_server, container, monkeypatch), local, "results/report.csv",
                  metadata={"da_thread": "thread-1"})
    data, properties = read_back(azurite_server, container, "results/report.csv")
    assert data == local.read_bytes()
    assert properties["metadata"] == {"da_thread": "thread-1", "sha256": hashlib.sha256(data).hexdigest()}
    assert properties["md5"] == hashlib.md5(data).digest()  # noqa: S324
    assert properties["type"] == "text/csv" and "BLOCKBLOB" in properties["blob_type"].upper()
    assert done.size == len(data) and done.sha256 == hashlib.sha256(data).hexdigest()
    assert done.uri.endswith(f"/{container}/results/report.csv") and done.etag


def test_large_file_goes_in_parallel_blocks_and_empty_file_works(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(3 * BLOCK + 12345))
    upload(connector_for(azurite_server, container, monkeypatch), local, "big.bin")
    assert read_back(azurite_server, container, "big.bin")[0] == local.read_bytes()
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        blocks = service.get_blob_client(container, "big.bin").get_block_list("committed")[0]
    assert [b.size for b in blocks] == [BLOCK, BLOCK, BLOCK, 12345]
    (tmp_path / "empty").write_bytes(b"")
    upload(connector_for(azurite_server, container, monkeypatch), tmp_path / "empty", "empty")
    assert read_back(azurite_server, container, "empty")[0] == b""
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        assert service.get_blob_client(container, "empty").get_block_list("all") == ([], [])


def test_an_existing_name_is_refused_unless_overwrite(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = new_container(azurite_server)
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "b").write_bytes(b"second")
    upload(connector_for(azurite_server, container, monkeypatch), tmp_path / "a", "x.txt")
    with pytest.raises(BlobExistsError, match="a blob of that name exists; give --overwrite"):
        upload(connector_for(azurite_server, container, monkeypatch), tmp_path / "b", "x.txt")
    assert read_back(azurite_server, container, "x.txt")[0] == b"first"
    upload(connector_for(azurite_server, container, monkeypatch), tmp_path / "b", "x.txt", overwrite=True)
    assert read_back(azurite_server, container, "x.txt")[0] == b"second"


def test_names_outside_the_scope_and_bad_metadata_are_refused_before_any_request(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = new_container(azurite_server)
    (tmp_path / "a").write_bytes(b"a")
    scoped = connector_for(azurite_server, container, monkeypatch, prefix="results/")
    with pytest.raises(OutOfScopeError):
        upload(scoped, tmp_path / "a", "other/a")
    with pytest.raises(Exception, match="'..' segment"):
        upload(scoped, tmp_path / "a", "results/../other/a")
    with pytest.raises(ConfigurationError, match="metadata name"):
        upload(scoped, tmp_path / "a", "results/a", metadata={"bad-name": "x"})
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        assert list(service.get_container_client(container).list_blobs()) == []
