"""The runnable blocks of the getting-started page and of the README, run as written.

Each page's blocks marked ``<!-- docs-test: run -->`` run in order, in one fresh folder holding a
copy of ``sample_data/`` and a link ``.venv`` to this environment, with its ``bin`` first on PATH
and none of the caller's ``DA_*``/``DAGSTER_*`` variables: as a newcomer types them. A command
that fails, or a page that loses its runnable blocks, fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_blocks import REPO, Block, blocks

BIN = Path(sys.executable).parent
PAGES = ["README.md", "docs/getting-started.md"]


def _folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "newcomer"
    shutil.copytree(REPO / "sample_data", folder / "sample_data")
    (folder / ".venv").symlink_to(BIN.parent)
    home = tmp_path / "home"
    (home / ".dagster").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_", "PYTHONPATH"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "HOME": str(home),
                "DAGSTER_HOME": str(home / ".dagster"), "COLUMNS": "120", "NO_COLOR": "1"})
    return folder, env


def _run(block: Block, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.lang == "python":
        command = [sys.executable, "-c", block.body]
    else:
        assert block.lang == "bash", f"line {block.line}: a runnable block must be bash or python"
        command = ["bash", "-c", "set -euo pipefail\n" + block.body]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_runnable_blocks_of_a_page_run_as_written(page: str, tmp_path: Path) -> None:
    runnable = [b for b in blocks(REPO / page) if b.runnable]
    assert runnable, f"{page} has no block marked to run"
    folder, env = _folder(tmp_path)
    for block in runnable:
        result = _run(block, folder, env)
        assert result.returncode == 0, (f"{page}, block at line {block.line} failed:\n{block.body}\n"
                                        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")


def test_the_getting_started_path_lands_the_sample_with_lineage(tmp_path: Path) -> None:
    """What the page says happens: every sample file lands, each with its record."""
    folder, env = _folder(tmp_path)
    first = next(b for b in blocks(REPO / "docs/getting-started.md") if b.runnable)
    assert _run(first, folder, env).returncode == 0
    landed = sorted(p.relative_to(folder / "workspace" / "first").as_posix()
                    for p in (folder / "workspace" / "first").rglob("*") if p.is_file() and ".lineage" not in p.parts)
    expected = sorted(p.relative_to(REPO / "sample_data").as_posix()
                      for p in (REPO / "sample_data").rglob("*") if p.is_file())
    assert landed == expected
    assert all((folder / "workspace" / "first" / ".lineage" / f"{name}.json").is_file() for name in landed)
