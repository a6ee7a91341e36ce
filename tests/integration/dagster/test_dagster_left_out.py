"""`dagster job execute` says which source the code location left out, and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_job_execute_logs_the_left_out_entry_by_its_position(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  - {id: broken, type: local_file}\n"
        f"  - {{id: good, type: local_file, name: good, config: {{root: '{data}'}}}}\n"
        f"  - {{id: parts, type: local_file, name: parts, config: {{root: '{data}'}},\n"
        "     metadata: {dagster: {item_sets: [{name: p, partitioned: true}]}}}\n")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_"))},
           "DAGSTER_HOME": str(home), "DA_SOURCES_FILE": str(tmp_path / "sources.yaml")}
    result = subprocess.run([DAGSTER, "job", "execute", "-m", "da_pipelines", "-j", "good_sync"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "source left out of the code location: entry 3: source 'parts': metadata.dagster.item_sets" in output
    assert "source left out of the code location: entry 1:" in output
    assert (tmp_path / "workspace" / "good" / "a.csv").read_text() == "x\n1\n"
