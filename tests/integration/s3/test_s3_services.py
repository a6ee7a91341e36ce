"""An S3 source set up as a newcomer would: through the CLI, ``dagster job execute`` and the HTTP API."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from connectors.landing.lineage import find_provenance
from tests.api.conftest import Api, open_policy, start_api
from tests.harness import S3Server
from tests.helpers.cli import Cli
from tests.helpers.dagster import env_for, execute, finish

pytestmark = pytest.mark.integration

FILES = {"raw/2026/a.csv": b"x,y\n1,2\n", "raw/2026/b.csv": b"x,y\n3,4\n", "other/c.txt": b"c\n"}


def bucket_with_files(server: S3Server) -> str:
    bucket = f"svc{uuid.uuid4().hex[:16]}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    for key, data in FILES.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    return bucket


def test_cli_add_ls_fetch_and_dagster_sync(cli: Cli, s3_server: S3Server, tmp_path: Path) -> None:
    bucket = bucket_with_files(s3_server)
    env = {"DA_TEST_S3_KEY": s3_server.access_key, "DA_TEST_S3_SECRET": s3_server.secret_key}
    cli("add", "s3", "lake", "--bucket", bucket, "--endpoint-url", s3_server.endpoint_url, "--prefix", "raw",
        "--access-key-id-env", "DA_TEST_S3_KEY", "--secret-access-key-env", "DA_TEST_S3_SECRET")
    assert s3_server.secret_key not in cli.sources_file.read_text()
    listed = [i["path"] for i in json.loads(cli("ls", "lake", "--json", env=env).stdout)]
    assert listed == ["raw/2026/a.csv", "raw/2026/b.csv"]
    cli("fetch", "lake", "raw/2026/a.csv", "--workspace", "ws", env=env)
    assert (cli.cwd / "ws" / "lake" / "raw" / "2026" / "a.csv").read_bytes() == FILES["raw/2026/a.csv"]

    dagster_env = env_for(tmp_path, DA_SOURCES_FILE=str(cli.sources_file), **env)
    output = finish(execute("lake_sync", tmp_path, dagster_env))
    assert "RUN_SUCCESS" in output and s3_server.secret_key not in output
    landed = tmp_path / "workspace" / "lake"
    assert sorted(r["identifier"] for r in find_provenance(landed)) == ["raw/2026/a.csv", "raw/2026/b.csv"]


def test_api_create_browse_and_fetch(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.api.conftest import use_own_secret_store

    use_own_secret_store(tmp_path, monkeypatch)
    monkeypatch.setenv("DA_TEST_S3_KEY", s3_server.access_key)
    monkeypatch.setenv("DA_TEST_S3_SECRET", s3_server.secret_key)
    bucket = bucket_with_files(s3_server)
    for api in start_api(tmp_path, policy=open_policy(tmp_path, "s3")):  # the operator lists s3
        _create_browse_fetch(api, s3_server, bucket)


def _create_browse_fetch(api: Api, server: S3Server, bucket: str) -> None:
    source = {"id": "lake", "type": "s3", "name": "Lake", "config": {
        "bucket": bucket, "endpoint_url": server.endpoint_url,
        "access_key_id": server.access_key, "secret_access_key": server.secret_key}}  # write-only through the API
    api.call("POST", "/v1/data-sources", json=source, expect=201)
    assert api.call("POST", "/v1/data-sources/lake/test", expect=200).json()["ok"] is True
    items = api.call("GET", "/v1/data-sources/lake/browse?path=raw/2026/", expect=200).json()["data"]
    assert sorted(i["path"] for i in items if i.get("path")) == ["raw/2026/a.csv", "raw/2026/b.csv"]
    job = api.call("POST", "/v1/data-sources/lake/fetch", json={"glob": "raw/**", "workspace": "w1"},
                   expect=202).json()
    for _ in range(300):
        job = api.call("GET", f"/v1/data-sources/lake/jobs/{job['id']}", expect=200).json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    landed = [p for p in api.settings.workspace_base.rglob("b.csv") if ".lineage" not in p.parts]
    assert [p.read_bytes() for p in landed] == [FILES["raw/2026/b.csv"]]
    assert landed[0].as_posix().endswith("/w1/raw/2026/b.csv")
    api.assert_nowhere(server.secret_key)
