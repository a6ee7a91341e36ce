"""Session fixtures: the real services (started here, never skipped) and common helpers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import AzuriteServer, PostgresServer, S3Server, start_azurite, start_postgres, start_s3


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole session."""
    with start_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """An in-memory Azurite for the whole session; keep what each test stores small."""
    with start_azurite() as server:
        yield server


@pytest.fixture
def fresh_azurite() -> Iterator[AzuriteServer]:
    """An Azurite of its own, for tests that fill the store or stop the server."""
    with start_azurite() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An in-memory moto S3 server (signatures checked) for the whole session; keep what each test stores small."""
    with start_s3() as server:
        yield server


@pytest.fixture
def canary() -> str:
    """A unique secret value: tests assert it shows up in no output or stored state."""
    return f"canary{secrets.token_hex(12)}"


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's records of threads go to a folder of its own ($DA_STATE_DIR), beside its tmp_path, never in it."""
    state = tmp_path_factory.mktemp("da-state")
    monkeypatch.setenv("DA_STATE_DIR", str(state))
    return state
