"""Fixtures of the thread tests: an Azure container and a PostgreSQL schema as sources, and a registry of both."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.registry import SourceRegistry
from tests.harness import AzuriteServer, PostgresServer
from tests.helpers.azure import new_container


@pytest.fixture
def lake(azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("TH_AZURE", azurite_server.connection_string)
    container = new_container(azurite_server, {
        "exports/2026-01.csv": b"a,b\n1,2\n", "exports/2026-02.csv": b"a,b\n3,4\n5,6\n",
        "exports/old/2025-12.csv": b"a\n0\n", "archive/2026-01.csv": b"other\n", "readme.txt": b"hi"})
    return {"id": "lake", "type": "azure_blob", "name": "Lake",
            "config": {"connection_string": {"env": "TH_AZURE"}, "container_name": container}}


@pytest.fixture
def warehouse(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("TH_PG", postgres_server.dsn)
    schema = f"s{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id int primary key, name text)")
        conn.execute(f"INSERT INTO {schema}.customers SELECT i, 'c' || i FROM generate_series(1, 25) i")
        conn.execute(f"CREATE TABLE {schema}.orders (id int, total numeric)")
        conn.execute(f"INSERT INTO {schema}.orders SELECT i, i * 10 FROM generate_series(1, 40) i")
    return {"id": "warehouse", "type": "postgresql", "name": "Warehouse",
            # the harness role is a superuser: queries through it must be allowed explicitly
            "config": {"dsn": {"env": "TH_PG"}, "schemas": [schema], "allow_privileged_queries": True},
            "schema": schema}


@pytest.fixture
def registry(tmp_path: Path, lake: dict[str, Any], warehouse: dict[str, Any]) -> SourceRegistry:
    registry = SourceRegistry(tmp_path / "sources.yaml")
    registry.add(lake)
    registry.add({k: v for k, v in warehouse.items() if k != "schema"})
    return registry
