"""The fault matrix (docs/RELIABILITY.md) and the tests that prove it cite each other, row by row.

Every row of the matrix is numbered 1..N without a gap and cites the tests that prove it
(```tests/x.py``` or ```tests/x.py::test_name``` / ```::Class::test_name```); each cited file and
test exists. Tests cite rows back (``docs/RELIABILITY.md rows 9-16, 21``, ``Row 30 of
docs/RELIABILITY.md``): every row is cited back by one of its tests, and a row a test cites must
cite that test. So deleting or renumbering a row, or deleting or renaming a cited test, fails here.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from tests.harness import REPO

MATRIX = "docs/RELIABILITY.md"
_ROW = re.compile(r"^\| (\d+) \| .* \|$")
_CITED_TEST = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)*)`")
_SPEC = r"(\d+(?:-\d+)?(?:\s*(?:,|and)\s*\d+(?:-\d+)?)*)"
_CITED_ROWS = re.compile(rf"docs/RELIABILITY\.md\s+rows?\s+{_SPEC}|[Rr]ows?\s+{_SPEC}\s+of\s+docs/RELIABILITY\.md")


@dataclass(frozen=True)
class Row:
    number: int
    tests: tuple[tuple[str, str], ...]  # (file, "" or "Class::test" / "test")


def matrix_rows(text: str) -> list[Row]:
    """The numbered rows of the matrix, in order, with the tests each cites."""
    rows = []
    for line in text.splitlines():
        found = _ROW.match(line)
        if found:
            cited = tuple((path, name.removeprefix("::")) for path, name in _CITED_TEST.findall(line))
            rows.append(Row(int(found.group(1)), cited))
    return rows


def row_numbers(spec: str) -> set[int]:
    """``9-16, 21 and 23`` -> {9, ..., 16, 21, 23}."""
    numbers: set[int] = set()
    for part in re.split(r"\s*(?:,|and)\s*", spec.strip()):
        first, _, last = part.partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


@functools.lru_cache(maxsize=1024)
def rows_cited_by(text: str) -> frozenset[int]:
    """The matrix rows a test module's text cites."""
    return frozenset(n for match in _CITED_ROWS.finditer(text) for spec in match.groups() if spec
                     for n in row_numbers(spec))


@functools.lru_cache(maxsize=512)
def _parsed(source: str) -> ast.Module:
    return ast.parse(source)


def defines(source: str, name: str) -> bool:
    """Whether ``source`` defines ``name`` (``test_x`` at the top level, or ``Class::test_x``)."""
    scope: list[ast.stmt] = _parsed(source).body
    *classes, function = name.split("::")
    for class_name in classes:
        found = [node for node in scope if isinstance(node, ast.ClassDef) and node.name == class_name]
        if not found:
            return False
        scope = found[0].body
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function for node in scope)


def problems(matrix: str, read: dict[str, str]) -> list[str]:
    """What is wrong between the matrix text and the test files (path -> text of every file under tests/)."""
    rows = matrix_rows(matrix)
    found = []
    numbers = [row.number for row in rows]
    if numbers != list(range(1, len(rows) + 1)):
        found.append(f"rows are not numbered 1..{len(rows)} in order: {numbers}")
    citing = {path: rows_cited_by(text) for path, text in read.items()}
    by_number = {row.number: row for row in rows}
    for row in rows:
        if not row.tests:
            found.append(f"row {row.number} cites no test")
        for path, name in row.tests:
            if path not in read:
                found.append(f"row {row.number} cites {path}, which does not exist")
            elif name and not defines(read[path], name):
                found.append(f"row {row.number} cites {path}::{name}, which {path} does not define")
        if row.tests and not any(row.number in citing.get(path, frozenset()) for path, _ in row.tests):
            found.append(f"row {row.number}: none of its tests cites it back (write '{MATRIX} row {row.number}')")
    for path, cited in sorted(citing.items()):
        for number in sorted(cited):
            if number not in by_number:
                found.append(f"{path} cites row {number}, which the matrix does not have")
            elif path not in {file for file, _ in by_number[number].tests}:
                found.append(f"{path} cites row {number}, which does not cite {path}")
    return found


def read_tests() -> dict[str, str]:
    """Every Python file under tests/ but this one (its docstring shows the citation forms)."""
    return {path.relative_to(REPO).as_posix(): path.read_text()
            for path in sorted((REPO / "tests").rglob("*.py")) if path != Path(__file__).resolve()}


def test_every_row_of_the_matrix_and_every_test_citing_it_agree() -> None:
    matrix = (REPO / MATRIX).read_text()
    assert len(matrix_rows(matrix)) > 0
    assert problems(matrix, read_tests()) == []


def test_every_citation_of_the_fault_matrix_names_the_file_in_docs() -> None:
    names = {path: set(re.findall(r"[\w/.-]*RELIABILITY[\w.]*", text)) for path, text in read_tests().items()}
    wrong = {path: found for path, found in names.items() if found - {MATRIX}}
    assert wrong == {}, f"cite {MATRIX}"


def _without_row(matrix: str, number: int) -> str:
    return "\n".join(line for line in matrix.splitlines() if not line.startswith(f"| {number} | "))


def test_the_check_fails_on_a_deleted_or_renumbered_row_or_a_deleted_test() -> None:
    matrix, read = (REPO / MATRIX).read_text(), read_tests()
    last = len(matrix_rows(matrix))
    for number in (1, 27, last):
        assert problems(_without_row(matrix, number), read), f"deleting row {number} went unnoticed"
    renumbered = [line for line in matrix.splitlines()]
    start = next(i for i, line in enumerate(renumbered) if line.startswith("| 27 | "))
    del renumbered[start]
    for index in range(start, start + last - 27):  # rows 28.. move up one: contiguous again
        renumbered[index] = re.sub(r"^\| (\d+) \|", lambda m: f"| {int(m.group(1)) - 1} |", renumbered[index])
    assert problems("\n".join(renumbered), read), "deleting row 27 and renumbering went unnoticed"
    for row in matrix_rows(matrix):
        for path, name in row.tests:
            if name:
                function = name.split("::")[-1]
                broken = {**read, path: read[path].replace(f"def {function}(", f"def {function}_gone(")}
                assert problems(matrix, broken), f"deleting {path}::{name} went unnoticed"
            assert problems(matrix, {p: t for p, t in read.items() if p != path}), f"deleting {path} went unnoticed"


def test_row_specs_and_forms_of_citation_are_read() -> None:
    assert row_numbers("9-16, 21 and 23") == {9, 10, 11, 12, 13, 14, 15, 16, 21, 23}
    assert rows_cited_by("(docs/RELIABILITY.md\nrows 33 and 42)") == {33, 42}
    assert rows_cited_by("Row 30 of docs/RELIABILITY.md (the fault matrix)") == {30}
    assert defines("class A:\n    def test_b(self): ...\ndef test_c(): ...", "A::test_b")
    assert defines("def test_c(): ...", "test_c") and not defines("def test_c(): ...", "A::test_c")


def cited_test_paths(text: str) -> set[str]:
    """The test files (``tests/….py``) a document names."""
    return set(re.findall(r"\btests/[\w/]+\.py\b", text))


def test_every_test_file_the_documents_name_exists() -> None:
    documents = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    missing = {doc.relative_to(REPO).as_posix(): sorted(p for p in cited_test_paths(doc.read_text())
                                                        if not (REPO / p).is_file())
               for doc in documents}
    assert {doc: paths for doc, paths in missing.items() if paths} == {}, "a test moved: update its path"
    assert cited_test_paths("see `tests/unit/landing/test_landing.py` and tests/x/test_y.py.") == {
        "tests/unit/landing/test_landing.py", "tests/x/test_y.py"}
