"""`dagster job execute` on local sources, as a user runs it: files, lineage, and concurrent runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from connectors.landing.lineage import find_provenance, read_provenance
from da_pipelines.sources import SAMPLE_DATA_DIR
from tests.helpers.dagster import DAGSTER, REPO, env_for, execute, finish, sha256

TESTING = "tests.dagster_location"  # da_pipelines plus the test connector types
RACED_ITEMS = 80


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


def _token_sources(path: Path, root: Path, extra: str = "") -> Path:
    path.write_text(
        "sources:\n  - id: shared-disk\n    type: local_file_with_token\n    name: Shared\n"
        f"    config: {{root: '{root}', token: {{env: DA_TEST_TOKEN}}{extra}}}\n")
    return path


def test_two_concurrent_runs_on_one_source_leave_consistent_files_and_records(tmp_path: Path) -> None:
    # two runs of one source id, each reading its own copy of the source: every item in two versions
    # (racers that land the same bytes would hide a missing lock: any record would fit any file)
    roots = [tmp_path / "remote-a", tmp_path / "remote-b"]
    for version, root in enumerate(roots):
        (root / "sub").mkdir(parents=True)
        for index in range(RACED_ITEMS):
            body = f"item,{index},version,{version}\n".encode() * (20_000 + 997 * version)  # ~0.4 MB
            (root / ("sub" if index % 2 else "") / f"part-{index}.bin").write_bytes(body)
    # both runs meet at a barrier after listing, before fetching: each lands every item, at the
    # same time as the other, each in its own process
    barrier = f", barrier_dir: '{tmp_path / 'barrier'}', barrier_each: true"
    envs = [env_for(tmp_path, DA_SOURCES_FILE=str(_token_sources(tmp_path / f"sources-{n}.yaml", root, barrier)),
                    DA_TEST_TOKEN="t0ken") for n, root in enumerate(roots)]
    runs = [execute("shared_disk_sync", tmp_path, env, TESTING) for env in envs]
    outputs = [finish(run) for run in runs]
    summaries = [line for output in outputs for line in output.splitlines() if " landed, " in line]
    assert all(f"{RACED_ITEMS} landed, 0 unchanged" in output for output in outputs), summaries
    assert not any("STEP_UP_FOR_RETRY" in output for output in outputs)  # no step failed on the race
    landed = tmp_path / "workspace" / "shared-disk"
    records = list(find_provenance(landed))
    assert len(records) == RACED_ITEMS
    disagree = []
    for record in records:
        path = Path(record["local_path"])
        [root] = [r for r in roots if (r / record["identifier"]).read_bytes() == path.read_bytes()]  # whole, one
        if (sha256(path), record["source_uri"]) != (record["sha256"], (root / record["identifier"]).as_uri()):
            disagree.append((record["identifier"], root.name, record["source_uri"]))
    assert disagree == [], f"{len(disagree)} of {RACED_ITEMS} files hold one version and the record of the other"
    leftovers = [p for p in landed.rglob(".~da-*")]
    assert leftovers == []

    env = env_for(tmp_path, DA_SOURCES_FILE=str(_token_sources(tmp_path / "sources.yaml", roots[0])),
                  DA_TEST_TOKEN="t0ken")
    finish(execute("shared_disk_sync", tmp_path, env, TESTING))  # settles every item on version a
    changed = roots[0] / "part-0.bin"
    changed.write_bytes(b"new content")
    output = finish(execute("shared_disk_sync", tmp_path, env, TESTING))
    assert f"1 landed, {RACED_ITEMS - 1} unchanged" in output
    assert (landed / "part-0.bin").read_bytes() == b"new content"


def test_workspace_yaml_loads_the_code_location(tmp_path: Path) -> None:
    result = subprocess.run([DAGSTER, "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
                            cwd=REPO, env=env_for(tmp_path), capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Validation successful for code location da_sources" in output
