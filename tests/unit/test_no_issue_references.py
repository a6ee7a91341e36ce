"""Code says what a thing is: no pointers to issue numbers or to "the seed", which a reader does not have.

A reference such as "(issue 13.2)" or "the seed's interface" names a tracker entry or a starting
point outside the repository; describe the behaviour instead. Reliability-matrix row numbers
("# --- 18: backend killed") are fine: docs/RELIABILITY.md is in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("connectors", "da_pipelines", "tests", "benchmarks", "scripts", "deploy", "clients")
# "issue 13.2", "issues 12.1", "Issue #22", "#22", "the seed", "the seed's", "seed-style"
POINTERS = re.compile(r"\b[Ii]ssues? #?\d|(?<![\w&/#\"'])#\d{2,}\b|\b[Tt]he seed\b|\bseed's\b|\bseed-style\b")


def _code_files() -> list[Path]:
    files = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and (path.suffix == ".py" or path.parent.name == "scripts") and path != Path(__file__):
                files.append(path)
    return files


def _pointers(text: str) -> list[str]:
    return [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1) if POINTERS.search(line)]


def test_no_code_points_at_an_issue_number_or_the_seed() -> None:
    found = {str(path.relative_to(REPO)): hits for path in _code_files()
             if (hits := _pointers(path.read_text(errors="replace")))}
    assert not found, "\n".join(f"{path}:{hit}" for path, hits in found.items() for hit in hits)


@pytest.mark.parametrize("line", ["# refused (issue 25.1)", '"""Issue 13.2: links"""', "replays issue #22",
                                  "# see #22", "as the seed does", "the seed's interface", "a seed-style plugin"])
def test_the_check_sees_each_kind_of_pointer(line: str) -> None:
    assert _pointers(line)


@pytest.mark.parametrize("line", ["# --- 18: backend killed mid-export", "sample 0.1 seed 7", "random.seed(3)",
                                  'color = "#ff0000"', "Python 3.11 issues nothing"])
def test_the_check_leaves_other_numbers_alone(line: str) -> None:
    assert not _pointers(line)
