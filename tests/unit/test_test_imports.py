"""Tests share helpers through conftest.py fixtures and helper modules, never by importing a test module.

A test module imported by another leaks its fixtures and names into the importer, and moving or
deleting a test breaks unrelated files. Read from the source: every ``import`` statement under
tests/, those inside functions included, relative ones resolved against their package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness import REPO


def imported_test_modules(path: Path, root: Path = REPO) -> set[str]:
    """The test modules (``tests.….test_*``) that ``path`` imports, however it imports them."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names += [f"{module}.{alias.name}" for alias in node.names]  # `from tests.x import test_y` too
    found = set()
    for name in names:
        parts = name.split(".")
        tests = [i for i, part in enumerate(parts) if part.startswith("test_")]
        if parts[0] == "tests" and tests:
            found.add(".".join(parts[: tests[0] + 1]))
    return found


def test_the_check_sees_every_way_of_importing_a_test_module(tmp_path: Path) -> None:
    (tmp_path / "tests" / "a").mkdir(parents=True)
    sample = tmp_path / "tests" / "a" / "test_b.py"
    sample.write_text("import tests.a.test_c\nfrom tests.a.test_d import x\nfrom . import test_e\n"
                      "from .test_f import y\nfrom tests.helpers.cli import Cli\nfrom tests import harness\n"
                      "def f():\n    from tests.a.test_g import z\n")
    assert imported_test_modules(sample, tmp_path) == {
        "tests.a.test_c", "tests.a.test_d", "tests.a.test_e", "tests.a.test_f", "tests.a.test_g"}


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {path.relative_to(REPO).as_posix(): sorted(imported_test_modules(path))
                 for path in sorted((REPO / "tests").rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}, (
        "move what is shared to tests/helpers/ or to a conftest.py fixture")
