"""The package layout holds: no import circle, and the library never imports a web or orchestration framework.

The import graph is read from the source: every ``import`` statement, those inside functions
and under ``if TYPE_CHECKING:`` included. A lazy import is still a circle, and so is a circle
of types: a reader must hold both modules in mind to understand either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("connectors", "da_pipelines")
FRAMEWORKS = ("dagster", "da_pipelines", "dagster_webserver", "fastapi", "starlette", "uvicorn", "flask", "django",
              "aiohttp.web")


def _module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def _imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def _graph() -> dict[str, set[str]]:
    files = _module_files()
    modules = set(files)
    return {m: _imports_of(m, p, modules) for m, p in files.items()}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """The shortest import chain from ``start`` back to itself, if any (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph.get(module, set())):
                if target == start:
                    return [*paths[module], start]
                if target in graph and target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    return None


def test_there_is_no_import_circle() -> None:
    graph = _graph()
    cycles = [" -> ".join(c) for m in sorted(graph) if (c := _cycle_from(m, graph))]
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_the_cycle_check_sees_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_from("a", graph) == ["a", "b", "c", "a"]
    assert _cycle_from("d", graph) is None


def test_imports_inside_functions_and_type_checking_blocks_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hidden\n"
        "def f():\n    from connectors import base\n"
    )
    assert _imports_of("connectors.m", source, {"connectors.base"}) == {"typing", "hidden", "connectors.base"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_library_never_imports_a_framework(framework: str) -> None:
    graph = _graph()
    offenders = sorted(
        m
        for m, targets in graph.items()
        if m.startswith("connectors") and not m.startswith("connectors.api")
        and any(t == framework or t.startswith(framework + ".") for t in targets)
    )
    assert not offenders, f"{framework} imported by {offenders}"
