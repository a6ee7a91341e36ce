"""Every ``connectors.*`` / ``da_pipelines.*`` name the README and the docs quote still exists.

Modules move (a package split, a rename); a page that quotes the old path would send a reader to
nothing, or to a deprecated shim. Each quoted dotted name must import (a module) or resolve (an
attribute of one) without a deprecation warning, checked in a fresh interpreter so shims warn.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.docs_blocks import REPO

_QUOTED = re.compile(r"`((?:connectors|da_pipelines)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")

_RESOLVE = """
import importlib, json, sys, warnings
warnings.simplefilter("error", DeprecationWarning)
def resolves(name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False
bad = []
for name in json.loads(sys.stdin.read()):
    try:
        ok = resolves(name)
    except DeprecationWarning:
        ok = False
    if not ok:
        bad.append(name)
print(json.dumps(bad))
"""


def quoted_names() -> dict[str, set[str]]:
    """Each quoted dotted name, with the pages that quote it."""
    found: dict[str, set[str]] = {}
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for name in _QUOTED.findall(page.read_text()):
            found.setdefault(name, set()).add(page.relative_to(REPO).as_posix())
    return found


def test_every_quoted_module_or_name_exists() -> None:
    names = quoted_names()
    assert names, "the docs quote no module"
    result = subprocess.run([sys.executable, "-c", _RESOLVE], input=json.dumps(sorted(names)), capture_output=True,
                            text=True, timeout=300, check=True, cwd=REPO)
    missing = {name: sorted(names[name]) for name in json.loads(result.stdout)}
    assert not missing, f"the docs quote names that do not exist (or are deprecated): {missing}"


_PATH = re.compile(r"`((?:connectors|da_pipelines|tests|benchmarks|deploy|scripts|docs|clients|sample_data)/[^`\s]*)`")


def quoted_paths() -> dict[str, set[str]]:
    """Each quoted repository path (``tests/x.py::test_y`` counts as its file), with the pages that quote it."""
    found: dict[str, set[str]] = {}
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for path in _PATH.findall(page.read_text()):
            if not any(c in path for c in "*<{[$"):  # a pattern or a placeholder, not a path
                found.setdefault(path.split("::")[0], set()).add(page.relative_to(REPO).as_posix())
    return found


def test_every_quoted_repository_path_exists() -> None:
    paths = quoted_paths()
    missing = {path: sorted(pages) for path, pages in paths.items() if not (REPO / path).exists()}
    assert not missing, f"the docs quote files that do not exist: {missing}"
