"""``credential: default`` (azure-identity's DefaultAzureCredential) end to end, with real Entra ID-shaped tokens.

Azurite serves https with a throwaway certificate and ``--oauth basic`` (it
checks a token's audience, issuer and lifetime, not its signature). The
identity comes from the Azure CLI credential, with a stand-in ``az`` on PATH
that prints a token, as ``az account get-access-token`` would. Each case runs
in a child process so that the certificate is trusted through SSL_CERT_FILE,
as a user would do it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connectors import read_provenance
from tests.harness import REPO, AzuriteServer
from tests.helpers.azure import ENTRA_REPORT

pytestmark = pytest.mark.integration

CANARY = "CANARY-entra-7d1f0c"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"

CHILD = """
import asyncio, json, sys
from connectors import DataSourceConfig, DataSourceError
from connectors.azure_blob import AzureBlobConnector

async def main():
    config = DataSourceConfig(id="entra", type="azure_blob", name="Entra", config={
        "account_url": sys.argv[1], "container_name": sys.argv[2], "credential": "default"})
    out = {}
    async with AzureBlobConnector(config) as lake:
        try:  # test_connection raises the cause rather than returning False
            out["connected"] = await lake.test_connection()
        except DataSourceError as exc:
            out["connected"] = [type(exc).__name__, str(exc)]
        try:
            out["items"] = [item.path for item in await lake.list_items()]
            out["path"] = await lake.fetch_data("report.csv", sys.argv[3])
            out["size"] = (await lake.get_metadata("report.csv"))["size"]
        except DataSourceError as exc:
            out["error"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))

asyncio.run(main())
"""


def entra_token(audience: str = "https://storage.azure.com", lifetime: int = 3600) -> str:
    """A JWT shaped like Entra ID's, carrying the canary (its signature is not checked by Azurite)."""
    now = int(time.time())
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT}/", "nbf": now - 60, "iat": now - 60,
              "exp": now + lifetime, "tid": TENANT, "oid": "0c5d9c7e-0000-4000-8000-000000000001",
              "appid": "test-app", "canary": CANARY}

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part(CANARY)}"


def fake_az(folder: Path, token: str) -> Path:
    """A folder holding an ``az`` that answers ``az account get-access-token`` with ``token``."""
    folder.mkdir(parents=True, exist_ok=True)
    answer = folder / "token.json"
    answer.write_text(json.dumps({"accessToken": token, "expires_on": int(time.time()) + 3600,
                                  "expiresOn": "2099-01-01 00:00:00.000000", "tokenType": "Bearer",
                                  "tenant": TENANT, "subscription": "00000000-0000-0000-0000-000000000000"}))
    script = folder / "az"
    script.write_text(f"#!/bin/sh\ncat '{answer}'\n")
    script.chmod(0o755)
    return folder


def run_child(server: AzuriteServer, container: str, workspace: Path, certificate: Path,
              az_folder: Path | None) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update(SSL_CERT_FILE=str(certificate), AZURE_TOKEN_CREDENTIALS="AzureCliCredential")
    # without the stand-in, PATH has no az at all (the machine's own, if any, is left out)
    env["PATH"] = f"{az_folder}:/usr/bin:/bin" if az_folder else "/usr/bin:/bin"
    if Path("/usr/bin/az").exists() and az_folder is None:
        pytest.fail("this test needs a machine without /usr/bin/az")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", CHILD, server.blob_endpoint, container, str(workspace)],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    output["seconds"] = time.monotonic() - started
    return output, result.stdout + result.stderr


def test_default_credential_lists_fetches_and_reads_properties_with_an_entra_token(
    entra_azurite: tuple[AzuriteServer, str], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    server, container = entra_azurite
    token = entra_token()
    out, text = run_child(server, container, tmp_path / "ws", certificate[0], fake_az(tmp_path / "bin", token))
    assert "error" not in out, out
    assert out["connected"] is True and out["items"] == ["report.csv"] and out["size"] == len(ENTRA_REPORT)
    assert Path(out["path"]).read_bytes() == ENTRA_REPORT
    record = read_provenance(out["path"])
    assert record["source_uri"] == f"{server.blob_endpoint}/entra/report.csv"
    stored = json.dumps(record) + text
    assert token not in stored and CANARY not in stored


def test_a_token_for_another_audience_is_an_authentication_error_without_the_token(
    entra_azurite: tuple[AzuriteServer, str], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    server, container = entra_azurite
    token = entra_token(audience="https://vault.azure.net")
    out, text = run_child(server, container, tmp_path / "ws", certificate[0], fake_az(tmp_path / "bin", token))
    assert out["connected"][0] == out["error"][0] == "AuthenticationError"
    assert token not in text and CANARY not in text
    assert not (tmp_path / "ws").exists()


def test_no_identity_at_all_is_a_fast_clear_authentication_error(
    entra_azurite: tuple[AzuriteServer, str], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    server, container = entra_azurite
    out, _ = run_child(server, container, tmp_path / "ws", certificate[0], None)
    assert out["connected"][0] == "AuthenticationError" and "az login" in out["connected"][1]
    assert out["error"][0] == "AuthenticationError" and "az login" in out["error"][1]
    assert out["seconds"] < 30  # not the SDK's retry budget (over a minute) spent on a missing identity
