"""The committed benchmark result files say where, when and how they were measured; the docs cite only those.

Every ``benchmarks/results/*.md`` is written by ``benchmarks.results.write_result``: its
header names the commit, the date, the exact command, the machine, the file systems
and the load average. A figure the docs quote comes from one of these files, so a
result file the docs cite by path must exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import results

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
HEADER = {
    "commit": re.compile(r"^- commit: `[0-9a-f]{40}(-dirty)?`$", re.M),
    "date": re.compile(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", re.M),
    "command": re.compile(r"^- command: `.*-m benchmarks\.bench_\w+.*`$", re.M),
    "machine": re.compile(r"^- machine: \d+ cores \(.+\), [\d.]+ GiB memory", re.M),
    "file systems": re.compile(r"^- file systems: benchmark folder \S+ \(.+\); temporary folder \S+ \(", re.M),
    "load average": re.compile(r"^- load average \(1, 5, 15 min\): [\d. ]+ at the start, [\d. ]+ at the end$", re.M),
}
CITATION = re.compile(r"benchmarks/results/([\w.-]+\.(?:md|json))")


def missing_fields(text: str) -> list[str]:
    return [name for name, pattern in HEADER.items() if not pattern.search(text)]


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_results_are_committed() -> None:
    assert sorted(RESULTS.glob("*.md")), "no result file under benchmarks/results/"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.md")), ids=lambda p: p.name)
def test_every_result_file_names_commit_machine_date_and_command(path: Path) -> None:
    assert missing_fields(path.read_text()) == []
    assert path.with_suffix(".json").is_file(), f"{path.name} has no .json beside it"


def test_every_result_file_the_docs_cite_exists() -> None:
    cited = {(doc.relative_to(REPO), name) for doc in doc_files() for name in CITATION.findall(doc.read_text())}
    assert [f"{doc}: {name}" for doc, name in sorted(cited) if not (RESULTS / name).is_file()] == []


def test_the_writer_writes_every_header_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_BENCH_RESULTS", str(tmp_path))
    monkeypatch.setattr(results, "_SETTINGS", {"DA_BENCH_API_MIB": "16"})  # as given when the benchmark started
    monkeypatch.setenv("DA_BENCH_S3_KEY", "set-by-the-benchmark-for-its-children")  # not part of the command
    monkeypatch.setenv("DA_BENCH_NOTE", "shared machine")
    monkeypatch.setattr("sys.orig_argv", [str(REPO / ".venv/bin/python"), "-m", "benchmarks.bench_api", "big"])
    path = results.write_result("bench_api_big", ["## a table\n\n| a |\n| --- |\n| 1 |\n"], ["a note"], {"x": 1})
    text = path.read_text()
    assert path == tmp_path / "bench_api_big.md" and missing_fields(text) == []
    assert "- command: `DA_BENCH_API_MIB=16 .venv/bin/python -m benchmarks.bench_api big`" in text
    assert "- note: a note" in text and "- note: shared machine" in text and "| 1 |" in text
    record = json.loads((tmp_path / "bench_api_big.json").read_text())
    assert record["data"]["x"] == 1 and record["commit"] in text and len(record["load_average"]["end"]) == 3


def test_a_file_without_the_header_is_caught() -> None:
    assert set(missing_fields("## a table\n\n| a |\n")) == set(HEADER)
