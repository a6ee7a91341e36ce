"""`dagster job execute` on local sources, as a user runs it: files, lineage, and concurrent runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from connectors.landing.lineage import find_provenance, read_provenance
from da_pipelines.sources import SAMPLE_DATA_DIR
from tests.helpers.dagster import DAGSTER, REPO, env_for, execute, finish, sha256

TESTING = "tests.dagster_location"  # da_pipelines plus the test connector types


def test_sample_sync_works_with_zero_configuration(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    output = finish(execute("sample_sync", tmp_path, env))
    assert "RUN_SUCCESS" in output
    landed = tmp_path / "workspace" / "sample"
    expected = sorted(p.relative_to(SAMPLE_DATA_DIR).as_posix() for p in SAMPLE_DATA_DIR.rglob("*") if p.is_file())
    assert sorted(r["identifier"] for r in find_provenance(landed)) == expected
    run_ids = set()
    for name in expected:
        record = read_provenance(landed / name)
        assert sha256(landed / name) == sha256(SAMPLE_DATA_DIR / name) == record["sha256"]
        assert record["source_id"] == "sample" and record["source_uri"].startswith("file://")
        run_ids.add(record["run_id"])
    assert len(run_ids) == 1 and None not in run_ids

    again = finish(execute("sample_sync", tmp_path, env))
    assert f"sample/files: 0 landed, {len(expected)} unchanged" in again
    assert {read_provenance(landed / n)["run_id"] for n in expected} == run_ids


def test_two_concurrent_runs_on_one_source_leave_consistent_files_and_records(tmp_path: Path) -> None:
    root = tmp_path / "remote"
    (root / "sub").mkdir(parents=True)
    for index in range(6):
        (root / ("sub" if index % 2 else "") / f"part-{index}.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    # both runs meet at a barrier after listing, before fetching: each lands every item, at the
    # same time as the other, each in its own process
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - id: shared-disk\n    type: local_file_with_token\n    name: Shared\n"
        f"    config: {{root: '{root}', token: {{env: DA_TEST_TOKEN}}, barrier_dir: '{tmp_path / 'barrier'}'}}\n")
    env = env_for(tmp_path, DA_SOURCES_FILE=str(tmp_path / "sources.yaml"), DA_TEST_TOKEN="t0ken")
    runs = [execute("shared_disk_sync", tmp_path, env, TESTING) for _ in range(2)]
    outputs = [finish(run) for run in runs]
    summaries = [line for output in outputs for line in output.splitlines() if " landed, " in line]
    assert all("6 landed, 0 unchanged" in output for output in outputs), summaries
    assert not any("STEP_UP_FOR_RETRY" in output for output in outputs)  # no step failed on the race
    landed = tmp_path / "workspace" / "shared-disk"
    records = list(find_provenance(landed))
    assert len(records) == 6
    for record in records:
        path = Path(record["local_path"])
        assert sha256(path) == record["sha256"] == sha256(root / record["identifier"])
    leftovers = [p for p in landed.rglob(".~da-*")]
    assert leftovers == []

    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - id: shared-disk\n    type: local_file_with_token\n    name: Shared\n"
        f"    config: {{root: '{root}', token: {{env: DA_TEST_TOKEN}}}}\n")
    changed = root / "part-0.bin"
    changed.write_bytes(b"new content")
    output = finish(execute("shared_disk_sync", tmp_path, env, TESTING))
    assert "1 landed, 5 unchanged" in output
    assert (landed / "part-0.bin").read_bytes() == b"new content"


def test_workspace_yaml_loads_the_code_location(tmp_path: Path) -> None:
    result = subprocess.run([DAGSTER, "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
                            cwd=REPO, env=env_for(tmp_path), capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Validation successful for code location da_sources" in output
