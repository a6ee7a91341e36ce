"""``credential: default``: getting a token is a remote call too, bounded by connect_timeout + read_timeout.

The identity is the Azure CLI credential with a stand-in ``az`` that takes
longer than the bound to answer (as a hung identity endpoint would), in front
of the https Azurite of tests.integration.azure_blob.test_azure_identity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import REPO, AzuriteServer

pytestmark = pytest.mark.integration

AZ_SECONDS = 8  # how long the stand-in az takes; the bound below is 2 s

CHILD = """
import asyncio, json, sys, time
from connectors import DataSourceConfig, DataSourceError
from connectors.azure_blob import AzureBlobConnector

async def main():
    config = DataSourceConfig(id="entra", type="azure_blob", name="Entra", config={
        "account_url": sys.argv[1], "container_name": sys.argv[2], "credential": "default",
        "connect_timeout": 1, "read_timeout": 1, "retry_total": 0})
    out = {}
    async with AzureBlobConnector(config) as lake:
        for name, call in (("test", lake.test_connection), ("metadata", lambda: lake.get_metadata("report.csv"))):
            started = time.monotonic()
            try:
                await call()
                out[name] = ["ok", time.monotonic() - started]
            except DataSourceError as exc:
                out[name] = [type(exc).__name__, str(exc), time.monotonic() - started]
    print(json.dumps(out))

asyncio.run(main())
"""


def slow_az(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "az"
    script.write_text(f"#!/bin/sh\nexec sleep {AZ_SECONDS}\n")
    script.chmod(0o755)
    return folder


def test_a_token_that_does_not_come_gives_up_within_connect_plus_read_timeout(
    entra_azurite: tuple[AzuriteServer, str], certificate: tuple[Path, Path], tmp_path: Path  # noqa: F811
) -> None:
    server, container = entra_azurite
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update(SSL_CERT_FILE=str(certificate[0]), AZURE_TOKEN_CREDENTIALS="AzureCliCredential",
               PATH=f"{slow_az(tmp_path / 'bin')}:/usr/bin:/bin")
    result = subprocess.run([sys.executable, "-c", CHILD, server.blob_endpoint, container], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("test", "metadata"):
        kind, message, seconds = out[name]
        assert kind == "ConnectionError" and "no token within 2 s" in message, out
        assert seconds < 2 + 1.0, out  # not the az process's own timeout, nor the SDK's retries
