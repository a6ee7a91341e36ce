"""A module docstring says what the module is and why in a few lines; rationale lives in ``docs/design/``.

A long module docstring buries the one paragraph a reader needs and drifts from the code; past
the limit, move the explanation to a ``docs/design/<topic>.md`` page and link it in one line.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("connectors", "da_pipelines")
MAX_LINES = 25


def _long_docstrings() -> list[str]:
    found = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            if docstring and len(docstring.splitlines()) > MAX_LINES:
                found.append(f"{path.relative_to(REPO)}: {len(docstring.splitlines())} lines")
    return found


def test_module_docstrings_are_short() -> None:
    assert _long_docstrings() == [], f"module docstrings over {MAX_LINES} lines (move the rationale to docs/design/)"
