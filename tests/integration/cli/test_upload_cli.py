"""``da-sources upload`` against real Azurite, as a new user would run it."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from azure.storage.blob import BlobServiceClient

from tests.harness import AzuriteServer
from tests.helpers.azure import new_container
from tests.helpers.cli import Cli, assert_nowhere

pytestmark = pytest.mark.integration


def test_upload_a_file_and_a_thread_file(cli: Cli, azurite_server: AzuriteServer) -> None:  # noqa: F811
    container = new_container(azurite_server, {"inputs/a.csv": b"a\n1\n"})
    cli("secrets", "set", "az-conn", stdin=azurite_server.connection_string + "\n")
    cli("add", "azure_blob", "az", "--container-name", container, "--connection-string-secret", "az-conn")
    cli("add", "local_file", "docs", "--name", "Docs", "--root", str(cli.cwd))
    body = os.urandom(9 * 1024 * 1024 + 7)  # two blocks
    (cli.cwd / "report.bin").write_bytes(body)
    line = cli("upload", "az", "report.bin", "results/report.bin").stdout
    assert line.startswith("uploaded report.bin -> http") and f"{len(body)} bytes" in line
    refused = cli("upload", "az", "report.bin", "results/report.bin", check=False).stderr
    assert "a blob of that name exists; give --overwrite" in refused
    cli("upload", "az", "report.bin", "results/report.bin", "--overwrite")
    assert "does not support upload" in cli("upload", "docs", "report.bin", check=False).stderr
    generated = cli.cwd / "ws" / "t1" / "generated"
    generated.mkdir(parents=True)
    (generated / "out.csv").write_text("x\n1\n")
    record = json.loads(cli("upload", "az", "out.csv", "--thread", "t1", "--workspace", "ws", "--json").stdout)
    assert record["blob_name"] == "t1/out.csv" and record["metadata"]["da_thread"] == "t1"
    log = cli.sources_file.with_name("da-sources-state") / "threads" / "t1" / "published.jsonl"  # not in ws/t1
    assert json.loads(log.read_text()) == record and sorted(os.listdir(cli.cwd / "ws" / "t1")) == ["generated"]
    assert "invalid thread id" in cli("upload", "az", "out.csv", "--thread", "../x", check=False).stderr
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        container_client = service.get_container_client(container)
        assert container_client.download_blob("results/report.bin").readall() == body
        assert container_client.download_blob("t1/out.csv").readall() == b"x\n1\n"
    assert_nowhere(azurite_server.account_key, cli, cli.sources_file, cli.secrets_file)


def test_a_plain_upload_is_recorded_beside_the_sources_file(cli: Cli, azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server, {})
    cli("secrets", "set", "az-conn", stdin=azurite_server.connection_string + "\n")
    cli("add", "azure_blob", "az", "--container-name", container, "--connection-string-secret", "az-conn")
    elsewhere = cli.cwd.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "summary.csv").write_bytes(b"x,y\n1,2\n")
    printed = json.loads(cli("upload", "az", "../elsewhere/summary.csv", "out/summary.csv", "--json").stdout)
    cli("upload", "az", "../elsewhere/summary.csv", "out/summary.csv", check=False)  # refused: no record
    cli("upload", "az", str(elsewhere / "summary.csv"), "--overwrite")  # default blob name: the file's
    log = cli.sources_file.with_name("published.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0] == printed and len(records) == 2
    assert printed["local_path"] == str(elsewhere / "summary.csv") and printed["source_id"] == "az"
    assert printed["container"] == container and printed["blob_name"] == "out/summary.csv"
    assert printed["uri"].endswith(f"/{container}/out/summary.csv") and printed["etag"]
    assert printed["size"] == 8 and printed["sha256"] == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    assert printed["content_md5"] == base64.b64encode(hashlib.md5(b"x,y\n1,2\n").digest()).decode()  # noqa: S324
    assert printed["published_at"].endswith("Z") and printed["overwrite"] is False
    assert records[1]["blob_name"] == "summary.csv" and records[1]["overwrite"] is True
    assert os.stat(log).st_mode & 0o777 == 0o600
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        properties = service.get_blob_client(container, "out/summary.csv").get_blob_properties()
    assert properties.etag == printed["etag"]
    assert_nowhere(azurite_server.account_key, cli, log)


def test_an_upload_whose_record_cannot_be_written_says_where_the_blob_went(
    cli: Cli, azurite_server: AzuriteServer
) -> None:
    container = new_container(azurite_server, {})
    cli("secrets", "set", "az-conn", stdin=azurite_server.connection_string + "\n")
    cli("add", "azure_blob", "az", "--container-name", container, "--connection-string-secret", "az-conn")
    cli.sources_file.with_name("published.jsonl").mkdir()  # not a file: the append fails
    (cli.cwd / "a.txt").write_text("a")
    error = cli("upload", "az", "a.txt", check=False).stderr
    assert f"uploaded to {azurite_server.blob_endpoint}/{container}/a.txt, but its record could not be written" in error
