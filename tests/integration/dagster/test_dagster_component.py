"""The Dagster Component as a new user meets it: ``dg scaffold defs``, ``dg check defs``, ``dg list defs``,
``dg utils refresh-defs-state`` and ``dg launch``, in a fresh ``dg`` project, against real PostgreSQL.

Needs the ``dg`` extra (``pip install -e '.[dg]'``, which ``scripts/test`` installs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from connectors.landing.lineage import read_provenance
from tests.harness import PostgresServer

BIN = Path(sys.executable).parent
COMPONENT = "da_pipelines.components.DataSourceComponent"
PYPROJECT = """[project]
name = "my_project"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["da-sources[dg]"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "my_project"
"""
DEFINITIONS = """from pathlib import Path

from dagster import definitions, load_from_defs_folder


@definitions
def defs():
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A new ``dg`` project, as ``create-dagster project`` lays it out (not installed: on PYTHONPATH)."""
    root = tmp_path / "my_project"
    (root / "my_project" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "my_project" / "__init__.py").write_text("")
    (root / "my_project" / "defs" / "__init__.py").write_text("")
    (root / "my_project" / "definitions.py").write_text(DEFINITIONS)
    (tmp_path / "home").mkdir()
    return root


def dg(project: Path, *args: str, check: bool = True, stdout_only: bool = False, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DA_", "DAGSTER_"))}
    full_env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(project),
                     "DAGSTER_HOME": str(project.parent / "home"), "DA_WORKSPACE": str(project.parent / "ws"),
                     "COLUMNS": "200", "NO_COLOR": "1", **env})
    result = subprocess.run([str(BIN / "dg"), *args], cwd=project, env=full_env, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, output[-4000:]
    return result.stdout if stdout_only else output


def defs_yaml(project: Path, name: str) -> Path:
    return project / "my_project" / "defs" / name / "defs.yaml"


def asset_keys(project: Path, **env: str) -> dict[str, dict[str, Any]]:
    listed = json.loads(dg(project, "list", "defs", "--json", stdout_only=True, **env))
    return {asset["asset_key"]: asset for asset in listed["assets"]}


def test_a_local_source_scaffolded_with_dg_is_listed_checked_and_lands_files(project: Path) -> None:
    data = project / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("x\n1\n")
    (data / "sub" / "b.csv").write_text("y\n2\n")
    listed = dg(project, "list", "components")
    assert COMPONENT in listed and listed.count("DataSourceComponent") == 1  # not the deprecated path as well
    dg(project, "scaffold", "defs", COMPONENT, "docs", "--id", "docs", "--type", "local_file")
    attributes = yaml.safe_load(defs_yaml(project, "docs").read_text())["attributes"]
    assert attributes["id"] == "docs" and attributes["config"]["root"] == "data"
    attributes["config"]["root"] = str(data)
    attributes["item_sets"] = [{"name": "all"}, {"name": "sub", "prefix": "sub/"}]
    attributes["translation"] = {"group_name": "shared_docs", "tags": {"team": "analytics"}}
    defs_yaml(project, "docs").write_text(yaml.safe_dump({"type": COMPONENT, "attributes": attributes}))
    assert "successfully" in dg(project, "check", "defs")
    assets = asset_keys(project)
    assert {"docs/remote", "docs/all", "docs/sub"} <= set(assets)
    assert assets["docs/sub"]["group_name"] == "shared_docs"
    dg(project, "launch", "--job", "docs_sync")
    landed = project.parent / "ws" / "docs" / "sub" / "b.csv"
    assert landed.read_text() == "y\n2\n" and read_provenance(landed)["identifier"] == "sub/b.csv"


def test_a_defs_yaml_naming_the_old_component_path_still_loads(project: Path) -> None:
    (project / "data").mkdir()
    dg(project, "scaffold", "defs", COMPONENT, "old", "--id", "old", "--type", "local_file")
    written = yaml.safe_load(defs_yaml(project, "old").read_text())
    written["type"] = "da_pipelines.component.DataSourceComponent"  # deprecated for one release
    defs_yaml(project, "old").write_text(yaml.safe_dump(written))
    assert "old/files" in asset_keys(project)  # loads (`dg check defs` names the type unknown: dg lists one)


def test_a_postgres_component_lists_tables_as_state_and_keeps_the_last_good_state(
        project: Path, postgres_server: PostgresServer) -> None:
    schema = f"cmp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(schema, "orders")))
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT 1 AS one").format(sql.Identifier(schema, "recent")))
    dg(project, "scaffold", "defs", COMPONENT, "warehouse", "--id", "warehouse", "--type", "postgresql")
    document = yaml.safe_load(defs_yaml(project, "warehouse").read_text())
    assert document["attributes"]["config"]["password"] == {"env": "PGPASSWORD"}  # a reference, never a value
    document["attributes"]["config"].update({"host": postgres_server.host, "port": postgres_server.port,
                                             "dbname": postgres_server.dbname, "user": postgres_server.user,
                                             "schemas": [schema]})
    # refreshed only by `dg utils refresh-defs-state` (by default dg and dagster dev refresh on load)
    document["attributes"]["defs_state"] = {"management_type": "LOCAL_FILESYSTEM", "refresh_if_dev": False}
    defs_yaml(project, "warehouse").write_text(yaml.safe_dump(document))
    good = {"PGPASSWORD": postgres_server.password}

    assert "tables are not known" in json.dumps(asset_keys(project, **good))  # no state yet: says why
    dg(project, "utils", "refresh-defs-state", **good)
    assets = asset_keys(project, **good)
    assert {f"warehouse/{schema}/orders", f"warehouse/{schema}/recent"} <= set(assets)

    dg(project, "utils", "refresh-defs-state", check=False, PGPASSWORD="wrong")  # the listing fails now
    after = asset_keys(project, PGPASSWORD="wrong")
    assert f"warehouse/{schema}/orders" in after  # the last good state is kept...
    assert "listing the tables failed" in after["warehouse/remote"]["description"]  # ...and the UI says why
    assert "wrong" not in json.dumps(after) and postgres_server.password not in json.dumps(after)

    dg(project, "launch", "--assets", f"warehouse/{schema}/orders", **good)
    assert (project.parent / "ws" / "warehouse" / f"{schema}.orders.csv").exists()


def test_a_secret_given_as_an_env_template_is_refused(project: Path) -> None:
    dg(project, "scaffold", "defs", COMPONENT, "wh", "--id", "wh", "--type", "postgresql")
    text = defs_yaml(project, "wh").read_text().replace("password:\n      env: PGPASSWORD",
                                                        "password: '{{ env.PGPASSWORD }}'")
    defs_yaml(project, "wh").write_text(text)
    output = dg(project, "check", "defs", check=False, PGPASSWORD="s3cr3t-canary")
    assert "config.password: a literal secret cannot be handed to Dagster" in output
    assert "s3cr3t-canary" not in output


def test_a_mistyped_connector_type_is_named_at_its_yaml_line_without_a_traceback(project: Path) -> None:
    dg(project, "scaffold", "defs", COMPONENT, "wh", "--id", "wh", "--type", "postgresql")
    text = defs_yaml(project, "wh").read_text().replace("type: postgresql", "type: postgres")
    defs_yaml(project, "wh").write_text(text)
    output = dg(project, "check", "defs", check=False)
    assert "attributes.type 'postgres' is not one of" in output and "'postgresql'" in output
    assert "Stack Trace" not in output and "validated successfully" not in output
