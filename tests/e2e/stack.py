"""The stack the end-to-end test drives: seeded services, a sources file, and ``dagster dev``.

Kept apart from the browser code so each piece can be started (and debugged)
on its own. ``dagster dev`` runs in its own process group so that the
webserver, the daemon and the code servers they spawn stop together.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from tests.harness import REPO, AzuriteServer, PostgresServer, free_port, stop_process_group

DAGSTER_BIN = REPO / ".venv" / "bin" / "dagster"
AZURE_ENV = "E2E_AZURE_CONN"
PG_PASSWORD_ENV = "E2E_PG_PASSWORD"

# What the services hold before the UI touches them.
BLOB_LANDED_FROM_UI = "orders/2026-11.csv"
BLOB_CONTENT = b"order_id,amount\n1,9.50\n2,12.00\n3,7.25\n"
TABLE = "public.customers"
TABLE_COLUMNS = [("id", "integer"), ("name", "text"), ("signed_up", "date")]
TABLE_ROWS = [(1, "Ana", "2026-01-02"), (2, "Bo", "2026-02-03"), (3, "Cy", "2026-03-04"), (4, "Di", None)]


@dataclass(frozen=True)
class Seeded:
    """What the services were seeded with, and the canary secret the UI must never show."""

    canary: str
    container: str
    pg_role: str
    pg_database: str


def seed_services(azurite: AzuriteServer, postgres: PostgresServer) -> Seeded:
    """A fresh container with one blob, and a fresh database + role whose password is the canary."""
    token = uuid.uuid4().hex[:10]
    seeded = Seeded(canary=f"canary-{uuid.uuid4().hex}", container=f"e2e-{token}",
                    pg_role=f"e2e_reader_{token}", pg_database=f"e2e_{token}")
    upload_blob(azurite, seeded.container, BLOB_LANDED_FROM_UI, BLOB_CONTENT, create_container=True)
    _seed_postgres(postgres, seeded)
    return seeded


def upload_blob(azurite: AzuriteServer, container: str, name: str, data: bytes,
                create_container: bool = False) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        if create_container:
            service.create_container(container)
        service.get_blob_client(container, name).upload_blob(data, overwrite=True)


def _seed_postgres(postgres: PostgresServer, seeded: Seeded) -> None:
    # A database of its own: the integration tests share the harness server's default one.
    with psycopg.connect(postgres.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(seeded.pg_role), sql.Literal(seeded.canary)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(seeded.pg_database)))
    dsn = postgres.dsn.replace(f"dbname={postgres.dbname}", f"dbname={seeded.pg_database}")
    schema, table = TABLE.split(".")
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in TABLE_COLUMNS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, table), columns))
        with conn.cursor() as cur:
            cur.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(sql.Identifier(schema, table)),
                            TABLE_ROWS)
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(seeded.pg_role)))


def write_sources_file(path: Path, azurite: AzuriteServer, postgres: PostgresServer, seeded: Seeded) -> None:
    """Three sources: the sample (a sources file replaces the embedded default), Azurite, PostgreSQL.

    Secrets only as ``{env: NAME}`` references; the Azure sensor ticks every 5 s
    (the smallest interval the factory allows) so the test does not wait 30 s.
    """
    sources = [
        {"id": "sample", "type": "local_file", "name": "Sample data",
         "config": {"root": str(REPO / "sample_data")}},
        {"id": "e2e-azure", "type": "azure_blob", "name": "E2E Azurite",
         "config": {"connection_string": {"env": AZURE_ENV}, "container_name": seeded.container},
         # the whole container, and the orders/ blobs as a set with one partition per blob
         "metadata": {"dagster": {"minimum_interval_seconds": 5, "retry_delay_seconds": 1, "item_sets": [
             {"name": "files"}, {"name": "orders", "prefix": "orders/", "partitioned": True}]}}},
        {"id": "e2e-pg", "type": "postgresql", "name": "E2E PostgreSQL",
         "config": {"host": postgres.host, "port": postgres.port, "dbname": seeded.pg_database,
                    "user": seeded.pg_role, "password": {"env": PG_PASSWORD_ENV}},
         "metadata": {"dagster": {"retry_delay_seconds": 1}}},
    ]
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))


# --- dagster dev --------------------------------------------------------------


@dataclass
class DagsterDev:
    """A running ``dagster dev``: its UI at ``url``, its output in ``log_path``."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        stop_process_group(self.process, timeout=20)


def dagster_env(home: Path, workspace: Path, sources_file: Path, azurite: AzuriteServer,
                seeded: Seeded) -> dict[str, str]:
    """The environment of ``dagster dev``: its own DAGSTER_HOME, workspace and sources; secrets as env vars."""
    home.mkdir(parents=True, exist_ok=True)
    # no telemetry calls from a CI machine
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # the one-time "Join the Dagster community" dialog would cover the first page the test opens
    (home / ".nux").mkdir(exist_ok=True)
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "DA_WORKSPACE": str(workspace),
            "DA_SOURCES_FILE": str(sources_file), AZURE_ENV: azurite.connection_string,
            PG_PASSWORD_ENV: seeded.canary, "PYTHONUNBUFFERED": "1"}


USER_LOCATION = "user_assets"


def write_workspace_file(path: Path) -> Path:
    """The repository's workspace.yaml plus a user's own code location (``tests.e2e.user_assets``)."""
    document = yaml.safe_load((REPO / "workspace.yaml").read_text())
    document["load_from"][0]["python_module"]["working_directory"] = str(REPO)
    document["load_from"].append({"python_module": {"module_name": "tests.e2e.user_assets",
                                                    "location_name": USER_LOCATION, "working_directory": str(REPO)}})
    path.write_text(yaml.safe_dump(document))
    return path


def start_dagster_dev(env: dict[str, str], log_path: Path) -> DagsterDev:
    """``dagster dev`` over workspace.yaml and a user's code location, on a free loopback port, in its own group."""
    port = free_port()
    workspace_file = write_workspace_file(log_path.parent / "workspace.yaml")
    command = [str(DAGSTER_BIN), "dev", "-w", str(workspace_file), "-p", str(port), "-h", "127.0.0.1"]
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return DagsterDev(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    """POST a (read-only) GraphQL query to the webserver and return ``data``."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # our own loopback server
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message errorChain { error { message } } } }
} } } }
"""


def wait_until_loaded(dev: DagsterDev, location: str = "da_sources", timeout: float = 120) -> None:
    """Wait until the webserver answers and the code location has loaded (fail with its error if not)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            raise AssertionError(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        try:
            entries = graphql(dev.url, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
        except (OSError, urllib.error.URLError, AssertionError, KeyError, TypeError) as exc:
            last = repr(exc)
        else:
            entry = next((e for e in entries if e["name"] == location), None)
            if entry is not None and entry["loadStatus"] == "LOADED":
                # "loaded" also covers a location whose import failed: say why, at once
                error = entry["locationOrLoadError"]
                if error["__typename"] == "PythonError":
                    causes = [link["error"]["message"] for link in error.get("errorChain") or []]
                    raise AssertionError(f"code location {location} failed to load: "
                                         + " <- ".join([error["message"], *causes]))
                return
            last = f"location entries: {entries}"
        time.sleep(0.5)
    raise AssertionError(f"code location {location} not loaded within {timeout} s ({last}):\n{dev.log_tail()}")


RUN_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""
SENSOR_RUNS_QUERY = """
query ($sensor: String!) { runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: $sensor}]}) {
    ... on Runs { results { runId status } } } }
"""
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def run_status(dev: DagsterDev, run_id: str) -> str:
    result = graphql(dev.url, RUN_QUERY, {"runId": run_id})["runOrError"]
    return str(result.get("status") or result["__typename"])


def wait_for_runs(dev: DagsterDev, run_ids: list[str], timeout: float = 150) -> None:
    """Wait until every run finished (read-only GraphQL polling); fail at once on a failed run."""
    deadline = time.monotonic() + timeout
    pending = list(run_ids)
    while pending and time.monotonic() < deadline:
        statuses = {run_id: run_status(dev, run_id) for run_id in pending}
        failed = {r: s for r, s in statuses.items() if s in TERMINAL - {"SUCCESS"}}
        assert not failed, f"runs did not succeed: {failed}\n{dev.log_tail()}"
        pending = [r for r, s in statuses.items() if s != "SUCCESS"]
        time.sleep(1)
    assert not pending, f"runs not finished within {timeout} s: {pending}\n{dev.log_tail()}"


def sensor_runs(dev: DagsterDev, sensor: str) -> dict[str, str]:
    """Run id -> status of every run the sensor requested."""
    results = graphql(dev.url, SENSOR_RUNS_QUERY, {"sensor": sensor})["runsOrError"]["results"]
    return {r["runId"]: r["status"] for r in results}
