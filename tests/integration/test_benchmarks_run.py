"""The whole-path benchmarks still run, end to end, on small sizes (their figures are not checked here).

A benchmark that no longer runs reports nothing: one broke silently once, when a shared
helper's signature changed. Each runs as a user runs it (``python -m benchmarks.X``), with
its outputs and results under the test's temporary folder, and must print its table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def committed_results() -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (REPO / "benchmarks" / "results").glob("*")}


def run_benchmark(tmp_path: Path, args: list[str], **env: str) -> str:
    environ = {**os.environ, "DA_BENCH_DIR": str(tmp_path), "DA_BENCH_RESULTS": str(tmp_path / "results"), **env}
    before = committed_results()
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert committed_results() == before  # a test run never rewrites the committed result files
    return done.stdout


def result_data(tmp_path: Path, bench: str) -> dict[str, Any]:
    """The figures of a result file the benchmark wrote under the test's folder (never the committed one)."""
    assert (tmp_path / "results" / f"{bench}.md").is_file()
    record: dict[str, Any] = json.loads((tmp_path / "results" / f"{bench}.json").read_text())
    assert record["command"] and record["machine"]["cores"] and record["commit"]
    return dict(record["data"])


def test_dagster_sync_benchmark_runs_and_records_its_ratios(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_dagster_sync", "--items", "60"])
    assert "| dagster job execute (first sync) |" in out
    results = result_data(tmp_path, "bench_dagster_sync")
    assert results["items"] == 60
    assert results["first_vs_cli"] > 0
    assert 0 < results["events_first_sync"] < 60  # bounded by datasets, not by the 60 items


def test_api_benchmark_runs_every_case(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_api", "big", "list"], DA_BENCH_API_MIB="16",
                        DA_BENCH_API_ITEMS="120")
    assert "| API POST /fetch + poll |" in out
    assert "| API browse, 1,000 a page |" in out
    assert "API over the connector: " in out and "x (after imports)" in out  # the same clock on both sides
    assert (tmp_path / "results" / "bench_api_big_list.md").is_file()


def test_profile_benchmark_runs_and_records_its_ratios(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_profile", "--rows", "3000", "--repetitions", "1"])
    assert "| csv profile on |" in out and "| parquet profile off |" in out
    results = result_data(tmp_path, "bench_profile")
    assert results["rows"] == 3000 and results["csv_on_over_off"] > 0 and results["parquet_on_over_off"] > 0
    assert results["csv_cpu_on_over_off"] > 0 and results["parquet_whole_cpu_on_over_off"] > 0
    assert "| child CPU s | server CPU s |" in out and "CPU s / csv profile off's |" in out


def test_incremental_benchmark_runs_and_records_its_ratio(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_incremental", "--rows", "20000", "--changed", "100",
                                   "--repetitions", "1"])
    assert "| re-sync, 100 rows changed |" in out
    results = result_data(tmp_path, "bench_incremental")
    assert results["rows"] == 20000 and results["increment_over_full"] > 0


def test_s3_benchmark_runs_both_cases(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_s3"], DA_BENCH_S3_BIG_MIB="8", DA_BENCH_S3_COUNT="40",
                        DA_BENCH_S3_REPS="1")
    assert "| s3 fetch_data (sha256+lineage) |" in out and "| curl |" in out
    assert "| s3 fetch_many(16) |" in out and "| azure fetch_many(16) on Azurite |" in out
    assert (tmp_path / "results" / "bench_s3.md").is_file()


def test_sharded_benchmark_runs_and_records_its_ratio(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_sharded", "--items", "40"])
    assert "| one step |" in out and "| 2 shards |" in out
    results = result_data(tmp_path, "bench_sharded_40")
    assert results["items"] == 40 and results["shards"] == 2 and results["shards_over_one"] > 0


def test_postgres_benchmark_runs_both_tables_against_both_anchors(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_postgres", "--rows", "3000", "--wide-rows", "200",
                                   "--wide-columns", "40", "--tables", "big,wide", "--repetitions", "1"])
    for table in ("big", "wide"):
        assert f"- Parquet, {table}: ours " in out and f"- CSV, {table}: ours " in out
    for module, row in (("adbc_driver_postgresql", "| adbc-driver-postgresql -> parquet |"),
                        ("connectorx", "| connectorx (2 partitions) -> parquet |")):  # the bench extra's
        assert (row in out) == (importlib.util.find_spec(module) is not None)
    assert "ours: decimal128(12, 2)" in out  # our Parquet keeps numeric(12,2) as a decimal, checked
    assert (tmp_path / "results" / "bench_postgres.md").is_file()


def test_small_files_benchmark_runs_ours_the_floor_and_the_shell(tmp_path: Path) -> None:
    out = run_benchmark(tmp_path, ["benchmarks.bench_small_files", "--count", "40", "--repetitions", "1"])
    for row in ("| da-sources fetch --all |", "| floor: minimal Python, same guarantees (1 process) |",
                "| floor: minimal Python, same guarantees (2 processes) |", "| cp -r && sync -f |"):
        assert row in out
    assert (tmp_path / "results" / "bench_small_files.md").is_file()
