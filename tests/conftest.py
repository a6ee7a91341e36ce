"""Session fixtures: the real services (started here, never skipped) and common helpers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.secrets.store import FernetFileStore
from tests.harness import AzuriteServer, PostgresServer, S3Server, start_azurite, start_postgres, start_s3
from tests.helpers.cli import Cli


def pytest_configure(config: pytest.Config) -> None:
    # root: mounts a tmpfs (a real full or read-only file system) or adds OS users; nothing is
    # skipped without it: such a test fails saying so (as root, or deselect with -m "not root")
    config.addinivalue_line("markers", "root: needs root (mounts a tmpfs, or creates OS users)")


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


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``da-sources`` with its own sources file, credential store and home (integration/ has its own PATH)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"),
        "DA_SECRETS_FILE": str(tmp_path / "secrets" / "store.fernet"),
        "DA_SECRETS_KEY": FernetFileStore.generate_key(),
        "DA_SECRETS_BACKEND": "file",
    }
    work = tmp_path / "cwd"
    work.mkdir()
    return Cli(work, env)
