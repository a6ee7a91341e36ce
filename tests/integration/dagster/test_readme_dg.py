"""The `dg` path of docs/dagster/component.md, run as written from an empty folder: create, scaffold, check.

The block's first line (``pip install 'da-sources[dg]'``) is what this environment already is;
every other line runs verbatim, in one shell, with this environment's ``bin`` first on PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def readme_block() -> list[str]:
    text = (REPO / "docs" / "dagster" / "component.md").read_text()
    found = re.search(r"<!-- dg-newcomer-path -->\n```bash\n(.*?)```\n<!-- /dg-newcomer-path -->", text, re.S)
    assert found is not None, "docs/dagster/component.md lost its dg block"
    return [line for line in found.group(1).splitlines() if line.strip()]


def test_the_readme_dg_path_works_from_an_empty_folder(tmp_path: Path) -> None:
    lines = readme_block()
    assert lines[0].startswith("pip install 'da-sources[dg]'")
    assert any(line.startswith("create-dagster project") for line in lines)
    folder = tmp_path / "fresh"
    folder.mkdir()
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_", "PYTHONPATH"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "HOME": str(tmp_path / "home"),
                "DAGSTER_HOME": str(tmp_path / "home"), "COLUMNS": "200", "NO_COLOR": "1"})
    script = "set -eu\n" + "\n".join(lines[1:]) + "\n"
    result = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "da_pipelines.components.DataSourceComponent" in result.stdout
    assert "Traceback" not in output
    scaffolded = folder / "my-project" / "src" / "my_project" / "defs" / "warehouse" / "defs.yaml"
    attributes = yaml.safe_load(scaffolded.read_text())["attributes"]
    assert attributes["type"] == "postgresql" and attributes["config"]["password"] == {"env": "PGPASSWORD"}
