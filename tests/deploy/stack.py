"""A Dagster deployment as a team runs it, from ``deploy/``'s files: PostgreSQL storage, a gRPC code
server, the webserver and the daemon, each its own process (group), so a test can kill any of them.

The code server serves ``tests.dagster_location`` (``da_pipelines`` plus the test connector types), so
runs can be slowed down (``fetch_delay``) and every fetch logged (``fetch_log``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from tests.harness import REPO, PostgresServer, free_port, stop_process_group

BIN = Path(sys.executable).parent
LOCATION = "da_sources"  # deploy/workspace.yaml's location name
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class Deployment:
    """The three processes, their environment, and where their logs go."""

    env: dict[str, str]
    home: Path
    workspace: Path
    logs: Path
    url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start (or restart) one of ``code-server``, ``webserver``, ``daemon``."""
        commands = {
            "code-server": [str(BIN / "dagster"), "api", "grpc", "-m", "tests.dagster_location",
                            "-h", "127.0.0.1", "-p", self.env["DA_CODE_SERVER_PORT"]],
            "webserver": [str(BIN / "dagster-webserver"), "-w", str(REPO / "deploy" / "workspace.yaml"),
                          "-h", "127.0.0.1", "-p", self.url.rsplit(":", 1)[1]],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "deploy" / "workspace.yaml")],
        }
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(commands[name], cwd=self.home, env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """kill -9 a process and everything it started (its process group)."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process_group(process, timeout=15)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in self.logs.glob("*.log"))

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # our loopback server
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]


def storage_database(postgres: PostgresServer) -> str:
    """A new database for Dagster's storage on the harness server."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def prepare(postgres: PostgresServer, root: Path, sources: list[dict[str, Any]],
            instance_overrides: dict[str, Any] | None = None) -> Deployment:
    """DAGSTER_HOME with deploy/dagster.yaml (plus overrides), a sources file, and the environment."""
    home, logs, workspace = root / "home", root / "logs", root / "workspace"
    for folder in (home, logs, workspace):
        folder.mkdir(parents=True)
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    for key, value in (instance_overrides or {}).items():
        instance[key] = {**instance.get(key, {}), **value}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    (root / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home), DAGSTER_PG_HOST=postgres.host, DAGSTER_PG_PORT=str(postgres.port),
        DAGSTER_PG_DB=storage_database(postgres), DAGSTER_PG_USER=postgres.user,
        DAGSTER_PG_PASSWORD=postgres.password, DA_CODE_SERVER_HOST="127.0.0.1",
        DA_CODE_SERVER_PORT=str(free_port()), DA_SOURCES_FILE=str(root / "sources.yaml"),
        DA_WORKSPACE=str(workspace), DA_CANARY_TOKEN="deploy-token", PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    return Deployment(env=env, home=home, workspace=workspace, logs=logs, url=f"http://127.0.0.1:{free_port()}")


def start_all(deployment: Deployment) -> None:
    """Create the instance's tables once, as the compose file's ``migrate`` service does, then start all three.

    Three processes creating the tables of a fresh database at once race (Dagster retries
    five times in one second, which a loaded machine can outlast), and one of them dies.
    """
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=deployment.home, env=deployment.env,
                   check=True, capture_output=True, timeout=180)
    for name in ("code-server", "webserver", "daemon"):
        deployment.start(name)
    wait_until_loaded(deployment)


def wait_until_loaded(deployment: Deployment, timeout: float = 180) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus " \
            "locationOrLoadError { __typename } } } } }"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = {n: p.returncode for n, p in deployment.processes.items() if p.poll() is not None}
        assert not dead, f"exited: {dead}\n{deployment.log_tail()}"
        try:
            entries = deployment.graphql(query)["workspaceOrError"]["locationEntries"]
        except (OSError, urllib.error.URLError, AssertionError, KeyError, TypeError):
            entries = []
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"]["__typename"] != "PythonError":
            return
        time.sleep(1)
    raise AssertionError(f"code location not loaded within {timeout} s\n{deployment.log_tail()}")


LAUNCH = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }
"""
RUNS = """
query ($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { ... on Runs { results {
  runId status startTime endTime tags { key value } } } } }
"""
ALL_RUNS = "{ runsOrError { ... on Runs { results { runId status startTime endTime tags { key value } } } } }"
ENGINE_EVENTS = """
query ($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection { events {
  __typename ... on MessageEvent { message } } } } } }
"""


def launch(deployment: Deployment, job: str) -> str:
    params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                           "jobName": job}, "runConfigData": {}}
    result = deployment.graphql(LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return str(result["run"]["runId"])


def launch_assets(deployment: Deployment, asset_path: list[str]) -> str:
    """Materialize one asset as the UI's Materialize button does: the implicit asset job, no run tags of ours."""
    params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                           "jobName": "__ASSET_JOB", "assetSelection": [{"path": asset_path}]},
              "runConfigData": {}}
    result = deployment.graphql(LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return str(result["run"]["runId"])


def set_pool_limits(deployment: Deployment) -> str:
    """The deployment step of the README: every source's pool limit, set explicitly."""
    result = subprocess.run([str(BIN / "python"), "-m", "da_pipelines.deploy", "pools", "--limit", "1"],
                            cwd=deployment.home, env=deployment.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def runs(deployment: Deployment, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    if run_ids is None:
        return list(deployment.graphql(ALL_RUNS)["runsOrError"]["results"])
    return list(deployment.graphql(RUNS, {"ids": run_ids})["runsOrError"]["results"])


def wait_for_all(deployment: Deployment, timeout: float, done: Any = None) -> list[dict[str, Any]]:
    """Poll every run of the instance until ``done(runs)`` (default: all finished); return them."""
    done = done or (lambda found: found and all(r["status"] in TERMINAL for r in found))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runs(deployment)
        if done(found):
            return found
        time.sleep(1)
    found = runs(deployment)
    raise AssertionError(f"runs not done within {timeout} s: {found}\n{engine_events(deployment, found)}\n"
                         f"{deployment.log_tail()}")


def engine_events(deployment: Deployment, found: list[dict[str, Any]]) -> str:
    """The engine events of each failed run: why a retry did or did not follow (for a failure's message)."""
    lines = []
    for run in found:
        if run["status"] == "FAILURE":
            try:
                result = deployment.graphql(ENGINE_EVENTS, {"id": run["runId"]})["runOrError"]
            except (AssertionError, OSError) as exc:  # the failure's own message matters more
                lines.append(f"{run['runId'][:8]}: engine events unavailable: {exc}")
                continue
            events = result.get("eventConnection", {}).get("events", [])
            lines += [f"{run['runId'][:8]} {e['__typename']}: {e.get('message', '')[:300]}"
                      for e in events if e["__typename"] in ("EngineEvent", "RunFailureEvent")]
    return "\n".join(lines)


def tag(run: dict[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def overlapping(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of runs whose [start, end] intervals overlap."""
    timed = sorted((r for r in found if r["startTime"]), key=lambda r: r["startTime"])
    pairs = []
    for index, run in enumerate(timed):
        for later in timed[index + 1:]:
            if later["startTime"] < (run["endTime"] or float("inf")):
                pairs.append((run["runId"], later["runId"]))
    return pairs


def local_source(source_id: str, root: Path, files: int, fetch_delay: float, fetch_log: Path) -> dict[str, Any]:
    """A ``local_file_with_token`` source over ``files`` small files, each fetch slowed and logged."""
    root.mkdir(parents=True)
    for index in range(files):
        (root / f"f{index:02d}.csv").write_text(f"id,value\n{index},{source_id}\n")
    return {"id": source_id, "type": "local_file_with_token", "name": source_id,
            "config": {"root": str(root), "token": {"env": "DA_CANARY_TOKEN"}, "fetch_delay": fetch_delay,
                       "fetch_log": str(fetch_log)}}
