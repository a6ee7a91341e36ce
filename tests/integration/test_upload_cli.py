"""``da-sources upload`` against real Azurite, as a new user would run it."""

from __future__ import annotations

import json
import os

import pytest
from azure.storage.blob import BlobServiceClient

from tests.harness import AzuriteServer
from tests.integration.test_cli_services import new_container
from tests.unit.test_cli import Cli, assert_nowhere

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
    assert "a blob of that name exists; give overwrite" in refused
    cli("upload", "az", "report.bin", "results/report.bin", "--overwrite")
    assert "does not support upload" in cli("upload", "docs", "report.bin", check=False).stderr
    generated = cli.cwd / "ws" / "t1" / "generated"
    generated.mkdir(parents=True)
    (generated / "out.csv").write_text("x\n1\n")
    record = json.loads(cli("upload", "az", "out.csv", "--thread", "t1", "--workspace", "ws", "--json").stdout)
    assert record["blob_name"] == "t1/out.csv" and record["metadata"]["da_thread"] == "t1"
    assert json.loads((cli.cwd / "ws" / "t1" / ".lineage" / "published.jsonl").read_text()) == record
    assert "invalid thread id" in cli("upload", "az", "out.csv", "--thread", "../x", check=False).stderr
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        container_client = service.get_container_client(container)
        assert container_client.download_blob("results/report.bin").readall() == body
        assert container_client.download_blob("t1/out.csv").readall() == b"x\n1\n"
    assert_nowhere(azurite_server.account_key, cli, cli.sources_file, cli.secrets_file)
