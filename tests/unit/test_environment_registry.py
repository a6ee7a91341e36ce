"""Every ``DA_*`` variable the code names is declared once, in ``connectors.environment``.

The environment-variables page is generated from that registry, so a variable read somewhere
but not declared would be missing from the docs: this test fails on it, naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors import environment
from tests.docs_blocks import REPO

SEARCHED = ("connectors", "da_pipelines", "scripts", "deploy")
ALSO_READ_IN = ("clients/python", "benchmarks")  # declared too; a stale entry is checked against these as well
_NAME = re.compile(r"\bDA_[A-Z][A-Z0-9_]*\b")
_SKIPPED = {".js", ".png", ".pyc"}


def _files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((REPO / folder).rglob("*"))
            if p.is_file() and p.suffix not in _SKIPPED and "__pycache__" not in p.parts
            and "static" not in p.parts]


def names_in(*folders: str) -> dict[str, set[str]]:
    """Each ``DA_*`` name found in ``folders``, with the files that name it."""
    found: dict[str, set[str]] = {}
    for path in _files(*folders):
        for name in _NAME.findall(path.read_text(errors="replace")):
            found.setdefault(name, set()).add(path.relative_to(REPO).as_posix())
    return found


def test_every_da_variable_in_the_code_is_declared() -> None:
    declared = {v.name for v in environment.VARIABLES}
    undeclared = {name: sorted(files) for name, files in names_in(*SEARCHED).items() if name not in declared}
    assert not undeclared, f"declare these in connectors/environment.py (they are read here): {undeclared}"


def test_every_declared_variable_is_read_somewhere() -> None:
    registry = REPO / "connectors" / "environment.py"  # where every name is declared: not a use
    text = "\n".join(p.read_text(errors="replace") for p in _files(*SEARCHED, *ALSO_READ_IN) if p != registry)
    stale = [v.name for v in environment.VARIABLES if not re.search(rf"\b{v.name}\b", text)]
    assert not stale, f"declared but named nowhere in the code: {stale}"


def test_each_variable_is_declared_once_with_a_description() -> None:
    names = [v.name for v in environment.VARIABLES]
    assert len(names) == len(set(names))
    assert all(v.description and v.default and v.read_by for v in environment.VARIABLES)


def test_reading_an_undeclared_variable_is_refused() -> None:
    with pytest.raises(KeyError):
        environment.read("DA_NOT_DECLARED", {"DA_NOT_DECLARED": "x"})
    assert environment.read("DA_WORKSPACE", {"DA_WORKSPACE": "/w"}) == "/w"
    assert environment.read("DA_WORKSPACE", {"DA_WORKSPACE": ""}) is None
