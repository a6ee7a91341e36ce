"""What installs where: the library and API without Dagster, the DeepAnalyze client alone and small.

Each test makes a fresh virtual environment and installs from this checkout with pip (the package
index is needed, as for any install).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import REPO

pytestmark = pytest.mark.slow


def _venv(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    return folder / "bin" / "python"


def _install(python: Path, *targets: str) -> set[str]:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *targets],
                   check=True, cwd=REPO)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                            check=True, capture_output=True, text=True).stdout
    return {entry["name"].lower() for entry in json.loads(listed)}


def test_the_api_extra_installs_and_runs_without_dagster(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    installed = _install(python, ".[api]")
    assert {"da-sources", "fastapi", "uvicorn"} <= installed
    assert not {name for name in installed if name.startswith("dagster")}
    probe = ("from connectors.api import create_app; from connectors.api.api_settings import ApiSettings; "
             "import connectors, connectors.threads; create_app(ApiSettings.from_env()); print('ok')")
    assert subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True,
                          cwd=tmp_path).stdout.strip() == "ok"
    help_text = subprocess.run([str(tmp_path / "venv" / "bin" / "da-sources"), "serve", "--help"], check=True,
                               capture_output=True, text=True).stdout
    assert "--umask" in help_text
    missing = subprocess.run([str(python), "-c", "import da_pipelines"], capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode != 0 and "pip install 'da-sources[dagster]'" in missing.stderr


def test_the_client_installs_alone_with_no_dependency(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    installed = _install(python, "./clients/python")
    assert installed - {"pip", "setuptools"} == {"da-sources-client"}
    probe = "import da_sources_client, da_sources_client.deepanalyze; print(da_sources_client.DataSourcesClient)"
    assert "DataSourcesClient" in subprocess.run([str(python), "-c", probe], check=True, capture_output=True,
                                                 text=True, cwd=tmp_path).stdout
