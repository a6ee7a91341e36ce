"""The generated Python API page documents the names a user needs, each at a path that imports.

A user of the library needs ``connectors``' public names, the built-in connectors and the HTTP API's
``create_app``/``ApiSettings``; a Dagster user the Component, ``build_definitions``, the resources
and the translator; DeepAnalyze's side the client. ``docs/_gen/reference.py`` writes one
mkdocstrings directive per name.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import da_sources_client

import connectors

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "_gen" / "reference.py"
NEEDED = {"LocalFileConnector", "AzureBlobConnector", "S3Connector", "PostgreSQLConnector", "SourceRegistry",
          "DataSourceComponent", "build_definitions", "WorkspaceResource", "SourceResource", "PostgreSQLResource",
          "DataSourceTranslator", "build_source_defs", "prepare_turn", "create_app", "ApiSettings"}


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documented() -> list[str]:
    return [line.removeprefix("::: ").strip() for line in _reference().python_page().splitlines()
            if line.startswith("::: ")]


def _resolves(path: str) -> bool:
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
        return obj is not None
    return False


def test_the_python_page_documents_what_a_user_needs() -> None:
    names = {path.rsplit(".", 1)[-1] for path in _documented()}
    public = {n for module in (connectors, da_sources_client) for n in module.__all__ if callable(getattr(module, n))}
    assert not (NEEDED | public) - names, f"missing from the Python API page: {(NEEDED | public) - names}"


def test_every_documented_path_imports() -> None:
    documented = _documented()
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert all(_resolves(path) for path in documented), [p for p in documented if not _resolves(p)]


def test_each_dagster_resource_lists_its_fields_with_their_defaults_and_meanings() -> None:
    from da_pipelines.resources import AzureBlobResource, PostgreSQLResource, S3Resource

    page = _reference().python_page()
    for resource in (AzureBlobResource, S3Resource, PostgreSQLResource):
        table = page.split(f"##### Fields of `{resource.__name__}`", 1)[1].split("\n#", 1)[0]
        for name, field in resource.model_fields.items():
            assert f"| `{name}` |" in table and str(field.description) in table, (resource.__name__, name)
    assert "| `read_timeout` | `float` | `60.0` |" in page
    assert "| `pattern` | `str | None` | `null` |" in page  # a pipe in a code span is shown, not escaped
