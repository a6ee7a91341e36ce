"""Dagster test helpers: `dagster job execute` as a user runs it; in-process sync jobs and their materializations."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, Definitions

from tests.harness import REPO

DAGSTER = str(Path(sys.executable).parent / "dagster")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell, with a fresh Dagster instance (created before runs race for it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_"))}
    home = tmp_path / "dagster_home"
    if not home.exists():
        home.mkdir()
        env = {**env, "DAGSTER_HOME": str(home)}
        subprocess.run([DAGSTER, "instance", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    # PYTHONPATH: the tests' code location (tests.dagster_location) is imported from the repository
    return {**env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO), **extra}


def execute(job: str, cwd: Path, env: dict[str, str], module: str = "da_pipelines") -> subprocess.Popen[str]:
    return subprocess.Popen([DAGSTER, "job", "execute", "-m", module, "-j", job], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output[-4000:]
    return output


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sync(defs: Definitions, slug: str, instance: DagsterInstance) -> Any:
    result = defs.resolve_job_def(f"{slug}_sync").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    return result


def materialized(result: Any) -> dict[str, Any]:
    return {e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization
            for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION}
