"""Canary: a secret given through the environment appears nowhere Dagster keeps or shows things.

A `local_file_with_token` source needs a secret token, given as ``{env: DA_CANARY_TOKEN}`` (so
Dagster holds it as an ``EnvVar`` and resolves it in the run, as it does for Azure keys and
PostgreSQL passwords). After a run and a sensor preview, the canary must not occur in any file of
the Dagster instance (sqlite run and event storage, logs, compute logs), in the workspace, in the
command output, nor in what the webserver's GraphQL API returns for resources, assets and runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.harness import free_port, stop_process_group

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]
LOCATION = "tests.dagster_location"
CANARY = f"canary-{uuid.uuid4().hex}"


def files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def location(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "remote"
    root.mkdir()
    (root / "orders.csv").write_text("id,total\n1,10\n")
    (root / "notes.txt").write_text("hello\n")
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - id: canary-src\n    type: local_file_with_token\n    name: Canary\n"
                       f"    config: {{root: '{root}', token: {{env: DA_CANARY_TOKEN}}}}\n")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), DA_SOURCES_FILE=str(sources), DA_CANARY_TOKEN=CANARY,
               DA_WORKSPACE=str(tmp_path / "workspace"), PYTHONPATH=str(REPO))  # REPO: tests.dagster_location
    return {"env": env, "home": home, "workspace": tmp_path / "workspace", "cwd": tmp_path}


def run(location: dict[str, Any], *args: str) -> str:
    result = subprocess.run([str(BIN / "dagster"), *args, "-m", LOCATION], cwd=location["cwd"],
                            env=location["env"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    payload: dict[str, Any] = json.loads(text)
    assert "errors" not in payload, text[:2000]
    assert CANARY not in text
    return payload


def wait_for_webserver(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "dagster-webserver exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("dagster-webserver did not answer within 120 s")


WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message }
    ... on RepositoryLocation { repositories { name
      allTopLevelResourceDetails { name description configFields { name description }
                                   configuredValues { key value type } }
      assetNodes { assetKey { path } description metadataEntries { label __typename
                   ... on TextMetadataEntry { text } ... on PathMetadataEntry { path } } }
      jobs { name } sensors { name } } } } } } } }"""

RUNS_QUERY = """{ runsOrError { __typename ... on Runs { results { runId status jobName runConfigYaml
  tags { key value } } } } }"""


def logs_query(run_id: str) -> str:
    return f"""{{ logsForRun(runId: "{run_id}") {{ __typename ... on EventConnection {{ events {{ __typename
      ... on MessageEvent {{ message }}
      ... on MaterializationEvent {{ assetKey {{ path }} metadataEntries {{ label
          ... on TextMetadataEntry {{ text }} ... on PathMetadataEntry {{ path }} }} }} }} }} }} }}"""


def test_a_canary_secret_never_reaches_dagster_storage_output_or_ui(location: dict[str, Any]) -> None:
    output = run(location, "job", "execute", "-j", "canary_src_sync")
    assert "2 landed" in output  # the token was resolved: without it the source cannot connect
    preview = run(location, "sensor", "preview", "canary_src_sensor")
    # the sensor listed the source (which needs the token) and asked for both items; checked on the
    # preview's own output, since the job's name is always in the job's output above
    assert "returning run requests for 1 run(s)" in preview
    assert "identifier: orders.csv" in preview and "identifier: notes.txt" in preview
    output += preview
    assert CANARY not in output

    port = free_port()
    webserver = subprocess.Popen([str(BIN / "dagster-webserver"), "-m", LOCATION, "-h", "127.0.0.1",
                                  "-p", str(port)], cwd=location["cwd"], env=location["env"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_webserver(port, webserver)
        workspace = json.dumps(graphql(port, WORKSPACE_QUERY))
        runs = graphql(port, RUNS_QUERY)
        [only_run] = runs["data"]["runsOrError"]["results"]
        logs = json.dumps(graphql(port, logs_query(only_run["runId"])))
    finally:
        stop_process_group(webserver)  # type: ignore[arg-type]

    # the answers are real: the resource shows the variable's name, the run its materializations
    assert "DA_CANARY_TOKEN" in workspace and "canary_src_source" in workspace
    assert "canary_src_sync" in workspace and "canary_src_sensor" in workspace
    assert only_run["status"] == "SUCCESS" and "items_landed" in logs and "manifest" in logs

    # the files Dagster keeps hold no canary, though they hold the run (the search does see them)
    assert files_containing(location["home"], only_run["runId"].encode())
    assert files_containing(location["home"], CANARY.encode()) == []
    assert files_containing(location["workspace"], CANARY.encode()) == []
