"""A sharded set through ``dagster job execute`` on real local files: shard steps in their own processes,
never more at once than the source's pool allows, and the set's manifest whole at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from connectors.syncing.dataset_manifest import read_manifest
from connectors.syncing.shard_plan import shard_of
from da_pipelines.deploy import pool_of

pytestmark = pytest.mark.integration
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def make_source(tmp_path: Path, count: int, shards: int) -> dict[str, str]:
    root = tmp_path / "src"
    for index in range(count):
        (root / f"d{index % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{index % 3}" / f"f{index:03d}.txt").write_text(f"file {index}\n" * (index + 1))
    sources = tmp_path / "sources.yaml"
    sources.write_text(json.dumps({"sources": [{"id": "shardy", "type": "local_file", "name": "Sharded", "config": {
        "root": str(root)}, "metadata": {"dagster": {"item_sets": [{"name": "files", "shards": shards}]}}}]}))
    (tmp_path / "home").mkdir()
    return {"DA_SOURCES_FILE": str(sources), "DA_WORKSPACE": str(tmp_path / "ws"),
            "DAGSTER_HOME": str(tmp_path / "home")}


def execute(env: dict[str, str]) -> None:
    done = subprocess.run([DAGSTER, "job", "execute", "-m", "da_pipelines", "-j", "shardy_sync"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def step_spans(instance: DagsterInstance) -> dict[str, tuple[float, float, int]]:
    """Per shard step of the (only) run: (its process launched, its step succeeded, its pid).

    The executor claims a pool slot before it launches a step's process: without the pool's
    limit both shards' processes are launched at once.
    """
    spans: dict[str, list[float]] = {}
    pids: dict[str, int] = {}
    (run,) = instance.get_runs()
    for event in instance.all_logs(run.run_id):
        kind, step = event.dagster_event_type, str(event.step_key)
        if "_shard_" not in step:
            continue
        if kind in (DagsterEventType.STEP_WORKER_STARTING, DagsterEventType.STEP_SUCCESS):
            spans.setdefault(step, []).append(event.timestamp)
        if kind == DagsterEventType.STEP_START:
            pids[step] = int(event.dagster_event.pid or 0)  # type: ignore[union-attr]
    return {step: (min(times), max(times), pids[step]) for step, times in spans.items()}


def test_shards_run_as_processes_within_the_pool_and_merge_into_the_whole_set(tmp_path: Path) -> None:
    env = make_source(tmp_path, 45, shards=2)
    with DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
        instance.event_log_storage.set_concurrency_slots(pool_of("shardy"), 1)  # one step of the source at a time
    execute(env)
    folder = tmp_path / "ws" / "shardy"
    merged = read_manifest(folder, "files")
    assert len(merged) == 45 and all((folder / entry.path).is_file() for entry in merged.values())
    parts = [read_manifest(folder, f"files.shard-{k}-of-2") for k in range(2)]
    assert sorted(i for part in parts for i in part) == sorted(merged)
    assert all(shard_of(i, 2) == k for k, part in enumerate(parts) for i in part)
    with DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
        spans = step_spans(instance)
    assert sorted(spans) == [f"shardy__files.shardy__files_shard_{k}" for k in range(2)]  # graph.op
    (start_a, end_a, pid_a), (start_b, end_b, pid_b) = sorted(spans.values())
    assert pid_a != pid_b and os.getpid() not in (pid_a, pid_b)  # each shard in a process of its own
    assert end_a <= start_b  # the pool's limit of 1: the second shard launched after the first finished
