"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.secrets.store import FernetFileStore
from tests.helpers.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``da-sources`` with its own sources file, credential store and home."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    return Cli(work, {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"),
        "DA_SECRETS_FILE": str(tmp_path / "secrets" / "store.fernet"),
        "DA_SECRETS_KEY": FernetFileStore.generate_key(),
        "DA_SECRETS_BACKEND": "file",
    })
