"""``scripts/run-sample`` runs the embedded sample whatever ./sources.yaml holds,
and a run prints no BetaWarning.

The script runs from a copy of the repository's layout in a temporary folder (run-sample,
a no-op bootstrap, the real .venv and pyproject.toml linked), so the test writes nothing
into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_run_sample_after_da_sources_add(tmp_path: Path) -> None:
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "run-sample", root / "scripts" / "run-sample")
    # the real bootstrap would reinstall the package into the linked .venv from this copy, which has no
    # package: the repository's .venv would then point here (what bootstrap does is tested by CI itself)
    (root / "scripts" / "bootstrap").write_text("#!/bin/sh\nexit 0\n")
    (root / "scripts" / "bootstrap").chmod(0o755)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "pyproject.toml").symlink_to(REPO / "pyproject.toml")
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("x\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    cli = str(REPO / ".venv" / "bin" / "da-sources")
    subprocess.run([cli, "add", "local_file", "docs", "--root", str(data)], cwd=root, env=env, check=True,
                   capture_output=True, timeout=120)
    assert (root / "sources.yaml").exists()
    assert [s["id"] for s in json.loads(subprocess.run([cli, "list", "--json"], cwd=root, env=env, check=True,
                                                        capture_output=True, timeout=120).stdout)] == ["docs"]

    result = subprocess.run([str(root / "scripts" / "run-sample")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stdout + result.stderr
    landed = root / "workspace" / "sample"
    assert (landed / "sales.csv").read_bytes() == (REPO / "sample_data" / "sales.csv").read_bytes()
    assert (landed / ".lineage" / "sales.csv.json").exists()
    assert (root / ".dagster").is_dir()
    assert "BetaWarning" not in result.stdout + result.stderr
    assert "SupersessionWarning" not in result.stdout + result.stderr  # the first command
