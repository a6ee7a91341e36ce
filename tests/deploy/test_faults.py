"""Faults of a team deployment (deploy/): a process killed with -9 mid-run, and what survives.

* the daemon: queued runs wait, and start once it is back;
* the run worker: the code server marks the run failed, run retries start it again, its orphaned
  step worker stops at once (``da_pipelines.deploy.exit_with_parent``), and every item ends in the
  workspace once, matching its record;
* the code server with its run workers: run monitoring (``MonitoredRunLauncher``'s health check)
  fails the run, and the retry lands everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import (
    TERMINAL,
    Deployment,
    engine_events,
    launch,
    local_source,
    runs,
    start_all,
    tag,
    wait_for_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
FAST_MONITORING = {"run_monitoring": {"poll_interval_seconds": 5}}


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc: any thread may have started them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def is_multiprocessing_child(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"spawn_main" in command and b"resource_tracker" not in command


def wait_for(condition: Callable[[], Any], timeout: float, what: str, deployment: Deployment) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout} s\n{deployment.log_tail()}")


def fetch_lines(log: Path) -> list[tuple[str, int, float]]:
    if not log.exists():
        return []
    return [(name, int(pid), float(at)) for name, pid, at in (line.split() for line in log.read_text().splitlines())]


def assert_each_item_once_matching_its_record(folder: Path, names: list[str]) -> None:
    landed = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert landed == sorted(names), f"landed files: {landed}"
    for name in names:
        record = json.loads((folder / ".lineage" / f"{name}.json").read_text())
        assert record["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest(), name


def slow_source(tmp_path: Path, source_id: str, files: int, delay: float) -> tuple[dict[str, Any], Path, list[str]]:
    log = tmp_path / f"{source_id}-fetches.log"
    source = local_source(source_id, tmp_path / source_id, files, fetch_delay=delay, fetch_log=log)
    return source, log, [f"f{i:02d}.csv" for i in range(files)]


def retry_of(found: list[dict[str, Any]], run_id: str) -> dict[str, Any] | None:
    """Dagster's retry of ``run_id``, or the one our sensor da_lost_retries requested when Dagster lost it."""
    return next((r for r in found if run_id in (tag(r, "dagster/parent_run_id"), tag(r, "da/retry_of"))), None)


def test_queued_runs_start_after_the_daemon_comes_back(
    make_deployment: Callable[..., Deployment], tmp_path: Path
) -> None:
    source, _, _ = slow_source(tmp_path, "delta", 4, delay=3.0)
    deployment = make_deployment([source])
    start_all(deployment)
    submitted = [launch(deployment, "delta_sync") for _ in range(3)]
    wait_for(lambda: any(r["status"] == "STARTED" for r in runs(deployment, submitted)), 240,
             "a run started", deployment)
    deployment.kill("daemon")
    time.sleep(10)  # the run in flight finishes; nothing dequeues the others
    statuses = [r["status"] for r in runs(deployment, submitted)]
    assert statuses.count("QUEUED") >= 1, statuses
    deployment.start("daemon")
    found = wait_for_all(deployment, timeout=400)
    assert {r["status"] for r in found} == {"SUCCESS"}, deployment.log_tail()


def test_a_killed_run_worker_fails_its_run_and_the_retry_lands_each_item_once(
    make_deployment: Callable[..., Deployment], tmp_path: Path
) -> None:
    source, log, names = slow_source(tmp_path, "gamma", 16, delay=2.0)
    deployment = make_deployment([source], **FAST_MONITORING)
    start_all(deployment)
    first = launch(deployment, "gamma_sync")
    wait_for(lambda: fetch_lines(log), 240, "a first fetch", deployment)
    code_server = deployment.processes["code-server"].pid
    run_worker = wait_for(lambda: next((p for p in child_pids(code_server) if is_multiprocessing_child(p)), None),
                          30, "the run worker", deployment)
    step_workers = [p for p in child_pids(run_worker) if is_multiprocessing_child(p)]
    os.kill(run_worker, signal.SIGKILL)
    killed_at = time.time()

    found = wait_for_all(deployment, timeout=400, done=lambda found: (retry := retry_of(found, first))
                         and retry["status"] in TERMINAL)
    assert next(r for r in found if r["runId"] == first)["status"] == "FAILURE"
    assert retry_of(found, first)["status"] == "SUCCESS", deployment.log_tail()
    # N_sync runs in the run worker itself (one step, in-process executor): then there is no step
    # worker to orphan; under a multiprocess executor its step worker must end with its parent
    late = [line for line in fetch_lines(log) if line[1] in step_workers and line[2] > killed_at + 1.5]
    assert late == [], f"an orphaned step worker kept fetching: {late}"
    assert not any(Path(f"/proc/{pid}").exists() for pid in step_workers)
    assert_each_item_once_matching_its_record(deployment.workspace / "gamma", names)


def test_a_killed_code_server_fails_its_runs_by_monitoring_and_the_retry_lands_everything(
    make_deployment: Callable[..., Deployment], tmp_path: Path
) -> None:
    source, log, names = slow_source(tmp_path, "omega", 16, delay=2.0)
    deployment = make_deployment([source], **FAST_MONITORING)
    start_all(deployment)
    first = launch(deployment, "omega_sync")
    wait_for(lambda: fetch_lines(log), 240, "a first fetch", deployment)
    deployment.kill("code-server")  # its process group: the run worker and step workers with it
    deployment.start("code-server")

    found = wait_for_all(deployment, timeout=400, done=lambda found: (retry := retry_of(found, first))
                         and retry["status"] in TERMINAL)
    failed = next(r for r in found if r["runId"] == first)
    assert failed["status"] == "FAILURE"
    retry = retry_of(found, first)
    # the daemon's own account, or (when Dagster lost the retry: docs/dagster-lost-retry.md) our net's run
    assert tag(retry, "da/retry_of") == first or "Retrying the run" in engine_events(deployment, [failed])
    assert retry_of(found, first)["status"] == "SUCCESS", f"{engine_events(deployment, found)}\n{deployment.log_tail()}"
    assert_each_item_once_matching_its_record(deployment.workspace / "omega", names)
