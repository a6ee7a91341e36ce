"""A worker whose parent is killed ends by itself (``da_pipelines.deploy.exit_with_parent``), real processes.

A run worker killed with SIGKILL cannot stop its step workers: each must notice it was orphaned and
end, or it goes on landing items into a run already marked failed. The parent here is a real
process started the way Dagster starts workers (tests/helpers/orphans.py); the test kills it with
SIGKILL and waits, with a generous deadline, for the worker to be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from da_pipelines.deploy import PARENT_POLL_SECONDS
from tests.harness import REPO

DEADLINE = 60.0  # seconds: generous; the worker polls its parent every PARENT_POLL_SECONDS


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever adopted it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + DEADLINE
    while not path.exists():
        assert process.poll() is None, "the parent ended before its worker started"
        assert time.monotonic() < deadline, f"no {path.name} after {DEADLINE} s"
        time.sleep(0.05)
    return int(path.read_text())


@pytest.fixture(params=["spawn", "forkserver"])  # Dagster's default; the shard executor's (da_pipelines.jobs)
def parent(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    process = subprocess.Popen([sys.executable, "-m", "tests.helpers.orphans", str(tmp_path), request.param], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        yield process, tmp_path
    finally:
        for name in ("worker.pid", "parent.pid"):  # never leave either behind, whatever failed
            pid_file = tmp_path / name
            if pid_file.exists() and alive(pid := int(pid_file.read_text())):
                os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait(timeout=30)


def test_a_worker_ends_when_its_parent_is_killed(parent: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, folder = parent
    worker = wait_for(folder / "worker.pid", process)
    assert wait_for(folder / "parent.pid", process) == process.pid
    time.sleep(3 * PARENT_POLL_SECONDS)  # a few polls: a live parent (or fork server's client) is not taken for dead
    assert alive(worker)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + DEADLINE
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker), f"the worker outlived its killed parent by {DEADLINE} s"
