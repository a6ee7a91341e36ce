"""The DeepAnalyze-side client parses as Python 3.10 (DeepAnalyze's image) and declares it."""

from __future__ import annotations

import ast
import tomllib

from tests.harness import REPO

CLIENT = REPO / "clients" / "python"


def test_every_client_module_is_python_310_syntax() -> None:
    modules = sorted((CLIENT / "da_sources_client").glob("*.py"))
    assert modules
    for module in modules:
        ast.parse(module.read_text(), str(module), feature_version=(3, 10))


def test_the_client_declares_python_310_and_no_dependency() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10" and project["dependencies"] == []
