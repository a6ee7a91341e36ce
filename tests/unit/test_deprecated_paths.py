"""Old import paths still work for one release, each with a DeprecationWarning naming the new home.

Each case imports the old module afresh (dropped from ``sys.modules`` first) and takes
one name from it, as a user's ``from old import name`` would.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# old module, a name it used to hold, the module that holds it now
MOVED = [
    ("connectors.lineage", "read_provenance", "connectors.landing.lineage"),
    ("connectors.lineage", "find_provenance", "connectors.landing.lineage"),
    ("connectors.workspace", "landing", "connectors.landing"),
    ("connectors.workspace", "safe_relative_path", "connectors.landing"),
    ("da_pipelines.sync", "sync_source", "connectors.syncing.source_sync"),
    ("da_pipelines.sync", "ItemRequest", "connectors.syncing.source_sync"),
    ("da_pipelines.settings", "PipelineSettings", "connectors.pipeline_settings"),
    ("da_pipelines.component", "DataSourceComponent", "da_pipelines.components"),
    ("connectors.registry", "register_connector", "connectors.plugins"),
    ("connectors.registry", "get_connector_class", "connectors.plugins"),
    ("connectors.registry", "known_type_names", "connectors.type_table"),
]
DEPRECATED_MODULES = sorted({old for old, _, _ in MOVED} - {"connectors.registry"})


@pytest.fixture(autouse=True)
def _fresh_imports() -> Iterator[None]:
    """Each test may import old modules afresh; the modules other tests imported are put back after."""
    before = dict(sys.modules)
    yield
    for name in [n for n in sys.modules if n not in before]:
        del sys.modules[name]
    sys.modules.update(before)


@pytest.mark.parametrize(("old", "name", "home"), MOVED)
def test_an_old_path_warns_and_gives_the_same_object(old: str, name: str, home: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old}.{name} is deprecated; import it from {home}")):
        moved = getattr(importlib.import_module(old), name)
    assert moved is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize("old", DEPRECATED_MODULES)
def test_an_old_module_refuses_a_name_it_never_had(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.raises(AttributeError, match="no_such_name"):
        importlib.import_module(old).no_such_name  # noqa: B018


def test_the_warning_points_at_the_importing_line(tmp_path: Path) -> None:
    user = tmp_path / "user_module.py"
    user.write_text("from connectors.lineage import read_provenance\n")
    sys.modules.pop("connectors.lineage", None)
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.warns(DeprecationWarning) as caught:
            importlib.import_module("user_module")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("user_module", None)
    assert Path(caught[0].filename) == user


def test_register_connector_has_one_home() -> None:
    import connectors
    import connectors.plugins

    assert connectors.register_connector is connectors.plugins.register_connector
    assert "register_connector" not in vars(importlib.import_module("connectors.registry"))


@pytest.mark.parametrize("old", [*DEPRECATED_MODULES, "connectors.registry.register_connector"])
def test_nothing_in_the_packages_uses_an_old_path(old: str) -> None:
    module, _, name = old.rpartition(".") if old.endswith("register_connector") else (old, "", "")
    pattern = re.compile(
        rf"^\s*from {re.escape(module)} import .*\b{name}\b" if name
        else rf"^\s*(from {re.escape(old)} import|import {re.escape(old)}\b)", re.M)
    users = [str(path.relative_to(REPO)) for package in ("connectors", "da_pipelines", "benchmarks", "scripts")
             for path in (REPO / package).rglob("*.py") if pattern.search(path.read_text())]
    assert not users, f"{old} still imported by {users}"
