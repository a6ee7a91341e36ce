"""HTTP API test helpers: waiting for a fetch job, a PostgreSQL source entry, counting a role's sessions."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from tests.api.conftest import Api
from tests.harness import PostgresServer


def wait_job(api: Api, source_id: str, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.call("GET", f"/v1/data-sources/{source_id}/jobs/{job_id}", expect=200).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def pg_source(server: PostgresServer, role: str, password: Any, schema: str, **config: Any) -> dict[str, Any]:
    return {"id": "pg", "type": "postgresql", "name": "Warehouse", "config": {
        "host": server.host, "port": server.port, "dbname": server.dbname, "user": role, "password": password,
        "schemas": [schema], **config}}


def pg_sessions(server: PostgresServer, role: str) -> int:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]).fetchone()
    return int(row[0]) if row else 0
