"""Temporaries of a killed fetch are swept at the start of every sync (real processes, kill -9).

``sweep_workspace(folder)`` walks the source's folders (records included)
without following links and removes only temporaries whose writer is dead
(no lock held). The CLI ``fetch`` and the Dagster sync call it first, so a
sync with nothing to land in that folder still removes them.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import UnsafeNameError
from connectors.landing import sweep_workspace, workspace_root
from connectors.landing.names import TEMP_PREFIX, TEMP_SUFFIX
from tests.unit.landing.landing_support import snapshot, temporaries

BIG = 8 * 1024 * 1024


def killed_mid_fetch(workspace: Path, name: str) -> Path:
    """A process that dies by SIGKILL while landing ``name``; its temporary stays. Returns the temporary."""
    script = (
        "import sys, time\n"
        "from connectors.landing import landing\n"
        "with landing(sys.argv[1], sys.argv[2], source_id='src') as target:\n"
        f"    target.write(b'x' * {BIG})\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(120)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(workspace), name], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    left = temporaries(workspace)
    assert len(left) == 1 and left[0].stat().st_size == BIG
    return left[0]


def stale(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{TEMP_PREFIX}{tag:0>16}{TEMP_SUFFIX}"
    path.write_bytes(b"stale")
    return path


def test_sweep_removes_dead_writers_temporaries_everywhere_and_keeps_live_ones(tmp_path: Path) -> None:
    src = tmp_path / "ws" / "src"
    dead = [stale(src, "1"), stale(src / "a" / "b" / "c", "2"), stale(src / ".lineage" / "a" / "b", "3"),
            stale(src / ".lineage", "4")]
    live = stale(src / "a", "5")
    keep = [src / "a" / "data.csv", src / "a" / f"{TEMP_PREFIX}not-a-temporary.csv"]
    for path in keep:
        path.write_text("x")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # its writer is alive
    try:
        with workspace_root(tmp_path / "ws"):
            assert sweep_workspace(src) == len(dead)
    finally:
        os.close(fd)
    assert not any(p.exists() for p in dead) and live.exists() and all(p.exists() for p in keep)
    assert sweep_workspace(tmp_path / "ws" / "never-synced") == 0


def test_sweep_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    stale(outside / "deeper", "1")
    stale(outside, "2")
    before = snapshot(outside)
    src = tmp_path / "ws" / "src"
    (src / ".lineage").mkdir(parents=True)
    (src / "linked").symlink_to(outside)
    (src / ".lineage" / "linked").symlink_to(outside)
    with workspace_root(tmp_path / "ws"):
        assert sweep_workspace(src) == 0
    assert snapshot(outside) == before
    (tmp_path / "ws2").mkdir()
    (tmp_path / "ws2" / "src").symlink_to(outside)
    with workspace_root(tmp_path / "ws2"), pytest.raises(UnsafeNameError, match="symlink"):
        sweep_workspace(tmp_path / "ws2" / "src")
    assert snapshot(outside) == before


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from tests.helpers.cli import CONSOLE_SCRIPT

    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "connectors.cli"]
    env = {**os.environ, "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"), "DA_WORKSPACE": str(tmp_path / "ws")}
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _local_source(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.csv").write_text("a\n1\n")
    (tmp_path / "sources.yaml").write_text(
        f"sources:\n  - id: src\n    type: local_file\n    name: S\n    config: {{root: '{root}'}}\n")
    return root


@pytest.mark.parametrize("nothing_lands", [True, False])
def test_the_cli_fetch_sweeps_a_killed_fetchs_temporary_even_in_folders_it_does_not_land_in(
    tmp_path: Path, nothing_lands: bool
) -> None:
    _local_source(tmp_path)
    temporary = killed_mid_fetch(tmp_path / "ws" / "src", "sub/deep/big.bin")
    result = _cli(tmp_path, "fetch", "src", "missing.csv" if nothing_lands else "a.csv")
    assert (result.returncode != 0) == nothing_lands and "Traceback" not in result.stderr
    assert not temporary.exists() and temporaries(tmp_path / "ws") == []


def test_the_dagster_sync_with_nothing_to_land_sweeps_a_killed_fetchs_temporary(tmp_path: Path) -> None:
    from dagster import DagsterInstance

    from connectors.base import DataSourceConfig
    from da_pipelines.definitions import build_definitions

    root = _local_source(tmp_path)
    source = DataSourceConfig(id="src", type="local_file", name="S", config={"root": str(root)},
                              metadata={"dagster": {"max_retries": 0}})
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        job = defs.resolve_job_def("src_sync")
        assert job.execute_in_process(instance=instance).success  # a.csv lands
        temporary = killed_mid_fetch(tmp_path / "ws" / "src", "sub/deep/big.bin")
        assert job.execute_in_process(instance=instance).success  # nothing new: nothing lands
    assert not temporary.exists() and temporaries(tmp_path / "ws") == []
