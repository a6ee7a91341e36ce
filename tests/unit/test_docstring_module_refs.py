"""Every module a docstring names with ``:mod:`` exists (a package's docstring had named two that did not).

A relative name (``:mod:`.listing```) is read from the module's package, as Sphinx would.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_ROLE = re.compile(r":mod:`~?([.\w]+)`")


def _named_modules() -> list[tuple[str, str]]:
    """(file, the module its docstrings name, made absolute) for every ``:mod:`` role in both packages."""
    named = []
    for package in ("connectors", "da_pipelines"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            home = ".".join(parts[:-1])  # a module's package; an __init__'s is its own folder, the same parts
            for name in MODULE_ROLE.findall(path.read_text(encoding="utf-8")):
                named.append((str(path.relative_to(ROOT)), home + name if name.startswith(".") else name))
    return named


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_every_module_a_docstring_names_exists() -> None:
    named = _named_modules()
    assert len(named) > 50  # the roles are found at all
    assert [(path, module) for path, module in named if not _exists(module)] == []
