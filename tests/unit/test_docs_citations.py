"""Documents the tests cite are in this repository, where the tests say."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_citation_of_the_fault_matrix_names_the_file_in_docs() -> None:
    citing = {}
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text()
        if "RELIABILITY" in text:
            citing[path.relative_to(REPO).as_posix()] = re.findall(r"[\w/.-]*RELIABILITY[\w.]*", text)
    assert citing, "no test cites the fault matrix"
    wrong = {path: names for path, names in citing.items() if set(names) - {"docs/RELIABILITY.md"}}
    assert wrong == {}, "cite docs/RELIABILITY.md"
    assert (REPO / "docs" / "RELIABILITY.md").read_text().count("\n| ") > 27  # the matrix, all its rows
