"""The sync as a user runs it: ``da-sources fetch --all`` and ``dagster job execute`` on real files,
Azurite and PostgreSQL, and a plugin written to the original six-method interface."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import psycopg
import pytest
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from connectors.landing.lineage import find_provenance, read_provenance, read_record
from tests.harness import REPO, AzuriteServer, PostgresServer
from tests.helpers.cli import Cli
from tests.helpers.dagster import env_for, execute, finish, sha256

pytestmark = pytest.mark.integration


def write_sources(path: Path, entries: list[dict[str, object]]) -> None:
    path.write_text(json.dumps({"sources": entries}))  # JSON is YAML


def summary_of(output: str) -> str:
    found = re.findall(r"\d+ landed, .*? failed", output)
    assert found, output[-3000:]
    return str(found[-1])


# --- on local files -------------------------------------------------------


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "remote"
    (root / "sub").mkdir(parents=True)
    for index in range(4):
        (root / ("sub" if index % 2 else "") / f"f{index}.csv").write_text(f"id\n{index}\n" * (index + 1) * 1000)
    return root


def test_dagster_sync_repairs_reports_removed_and_prunes(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    sources = tmp_path / "sources.yaml"
    entry: dict[str, object] = {"id": "disk", "type": "local_file", "name": "Disk", "config": {"root": str(root)}}
    write_sources(sources, [entry])
    env = env_for(tmp_path, DA_SOURCES_FILE=str(sources))
    first = finish(execute("disk_sync", tmp_path, env))
    assert summary_of(first).startswith("4 landed, 0 unchanged")
    total = sum(p.stat().st_size for p in root.rglob("*.csv"))
    assert f"4/4 items, {total / 1024:.1f} KB" in first  # the bytes of the landed files, not "0 B"

    landed = tmp_path / "workspace" / "disk"
    (landed / "f0.csv").unlink()  # the issue: one landed file deleted, another appended to
    with (landed / "sub" / "f1.csv").open("a") as handle:
        handle.write("tampered\n")
    (root / "f2.csv").unlink()  # and one item deleted at the source
    second = finish(execute("disk_sync", tmp_path, env))
    assert summary_of(second) == "2 landed, 1 unchanged, 2 repaired, 0 skipped, 1 removed at source, 0 pruned, 0 failed"
    assert "'f2.csv' is no longer at the source" in second
    for name in ("f0.csv", "sub/f1.csv"):
        assert sha256(landed / name) == sha256(root / name) == read_provenance(landed / name)["sha256"]
    assert (landed / "f2.csv").exists()  # kept: prune is off

    write_sources(sources, [{**entry, "metadata": {"sync": {"prune": True}}}])
    third = finish(execute("disk_sync", tmp_path, env))
    assert summary_of(third) == "0 landed, 3 unchanged, 0 repaired, 0 skipped, 1 removed at source, 1 pruned, 0 failed"
    assert not (landed / "f2.csv").exists() and read_record(landed, "f2.csv") is None
    assert sorted(r["identifier"] for r in find_provenance(landed)) == ["f0.csv", "sub/f1.csv", "sub/f3.csv"]


def test_cli_fetch_all_skips_unchanged_repairs_and_forces(cli: Cli, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    cli("add", "local_file", "disk", "--root", str(root))
    first = cli("fetch", "disk", "--all", "--workspace", "ws")
    assert len(first.stdout.split()) == 4 and "4 landed, 0 unchanged" in first.stderr
    landed = cli.cwd / "ws" / "disk"
    (landed / "sub" / "f3.csv").write_text("changed by someone\n")

    again = cli("fetch", "disk", "--all", "--workspace", "ws")
    assert again.stdout.split() == [str(landed / "sub" / "f3.csv")]
    assert "1 landed, 3 unchanged, 1 repaired" in again.stderr
    assert sha256(landed / "sub" / "f3.csv") == sha256(root / "sub" / "f3.csv")
    rows = json.loads(cli("fetch", "disk", "--all", "--workspace", "ws", "--json").stdout)
    assert sorted(r["status"] for r in rows) == ["unchanged"] * 4
    forced = cli("fetch", "disk", "--all", "--force", "--workspace", "ws")
    assert "4 landed, 0 unchanged" in forced.stderr


# --- an unsafe blob name, and exclude, on Azurite ------------------------------------


def test_an_unsafe_blob_is_skipped_by_the_cli_and_dagster_and_exclude_is_honoured(
        cli: Cli, azurite_server: AzuriteServer, tmp_path: Path) -> None:
    container = f"sync{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        client = service.create_container(container)
        for name in ("incoming/2026/trailing dot.", "incoming/2026/ok.csv", "tmp/scratch.partial", "top.csv"):
            client.upload_blob(name, b"a,b\n1,2\n")
    entry = {"id": "az", "type": "azure_blob", "name": "Azure",
             "config": {"connection_string": {"env": "DA_TEST_AZ"}, "container_name": container},
             "metadata": {"sync": {"exclude": ["*.partial"]}}}
    write_sources(cli.sources_file, [entry])
    env = {"DA_TEST_AZ": azurite_server.connection_string}

    listed = [i["path"] for i in json.loads(cli("ls", "az", "--json", env=env).stdout)]
    assert "tmp/scratch.partial" not in listed and "top.csv" in listed
    fetched = cli("fetch", "az", "--all", "--workspace", "ws", env=env)  # exit 0: the rest succeeds
    assert "skipped 'incoming/2026/trailing dot.'" in fetched.stderr and "unsafe name" in fetched.stderr
    assert "2 landed, 0 unchanged, 0 repaired, 1 skipped" in fetched.stderr

    dagster_env = env_for(tmp_path, DA_SOURCES_FILE=str(cli.sources_file), DA_TEST_AZ=azurite_server.connection_string)
    output = finish(execute("az_sync", tmp_path, dagster_env))
    assert "RUN_SUCCESS" in output and "skipped 'incoming/2026/trailing dot.'" in output
    assert summary_of(output).startswith("2 landed, 0 unchanged, 0 repaired, 1 skipped")
    again = finish(execute("az_sync", tmp_path, dagster_env))  # every later sync succeeds too
    assert summary_of(again).startswith("0 landed, 2 unchanged, 0 repaired, 1 skipped")
    landed = tmp_path / "workspace" / "az"
    assert sorted(r["identifier"] for r in find_provenance(landed)) == ["incoming/2026/ok.csv", "top.csv"]


# --- a Parquet sync reports its bytes ----------------------------------------------------


def test_a_parquet_sync_logs_the_bytes_it_landed(postgres_server: PostgresServer, tmp_path: Path) -> None:
    schema = f"s{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT g AS id, md5(g::text) AS name "
                             "FROM generate_series(1, 50000) g").format(sql.Identifier(schema, "big")))
    sources = tmp_path / "sources.yaml"
    write_sources(sources, [{"id": "pg", "type": "postgresql", "name": "PG", "config": {
        "host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname,
        "user": postgres_server.user, "password": {"env": "DA_TEST_PG"}, "schemas": [schema],
        "format": "parquet"}}])
    env = env_for(tmp_path, DA_SOURCES_FILE=str(sources), DA_TEST_PG=postgres_server.password)
    output = finish(execute("pg_sync", tmp_path, env))
    size = read_provenance(tmp_path / "workspace" / "pg" / f"{schema}.big.parquet")["size"]
    assert f"1/1 items, {size / 1024 / 1024:.1f} MB" in output or f"1/1 items, {size / 1024:.1f} KB" in output


# --- a plugin written to the original six-method interface ------------------------------------------

SEED_PLUGIN = '''
"""A connector written to the original six-method interface only: six methods, no settings_model, own file writes."""
import hashlib
import os

from connectors import DataItem, DataSourceConnector, NotFoundError


class SeedConnector(DataSourceConnector):
    async def connect(self):
        self.files = self.config.config["files"]
        return True

    async def disconnect(self):
        pass

    async def test_connection(self):
        return True

    async def list_items(self, path=None):
        return [DataItem(name=n, path=n, size=len(t), modified_at=0,
                         metadata={"version": hashlib.sha256(t.encode()).hexdigest()[:12]})
                for n, t in self.files.items()]

    async def fetch_data(self, identifier, workspace):
        if identifier not in self.files:
            raise NotFoundError(f"no {identifier!r}")
        target = os.path.join(workspace, identifier)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write(self.files[identifier])
        return target

    async def get_metadata(self, identifier):
        return {"version": hashlib.sha256(self.files[identifier].encode()).hexdigest()[:12]}
'''


def install_seed_plugin(site: Path) -> Path:
    """The plugin as an installed distribution (module + dist-info with the entry point) in ``site``."""
    site.mkdir()
    (site / "seed_plugin.py").write_text(SEED_PLUGIN)
    info = site / "seed_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: seed-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[da_sources.connectors]\nseedstyle = seed_plugin:SeedConnector\n")
    return site


def test_a_seed_style_plugin_through_the_cli_and_dagster(cli: Cli, tmp_path: Path) -> None:
    site = install_seed_plugin(tmp_path / "site")
    files = {"a.txt": "hello", "d/b.txt": "world", "../../escape.txt": "escaped"}
    write_sources(cli.sources_file, [{"id": "seed", "type": "seedstyle", "name": "Seed", "config": {"files": files}}])
    env = {"PYTHONPATH": str(site)}

    fetched = cli("fetch", "seed", "--all", "--workspace", "ws", env=env)
    landed = cli.cwd / "ws" / "seed"
    assert sorted(fetched.stdout.split()) == [str(landed / "a.txt"), str(landed / "d" / "b.txt")]
    assert "skipped '../../escape.txt'" in fetched.stderr
    record = json.loads(cli("lineage", str(landed / "d" / "b.txt"), "--json").stdout)
    assert record["sha256"] == sha256(landed / "d" / "b.txt") and record["identifier"] == "d/b.txt"
    refused = cli("fetch", "seed", "../../escape.txt", "--workspace", "ws", env=env, check=False)
    assert "unsafe name" in refused.stderr
    assert "2 unchanged" in cli("fetch", "seed", "--all", "--workspace", "ws", env=env).stderr

    dagster_env = env_for(tmp_path, DA_SOURCES_FILE=str(cli.sources_file), PYTHONPATH=f"{site}:{REPO}")
    output = finish(execute("seed_sync", tmp_path, dagster_env))
    assert summary_of(output).startswith("2 landed, 0 unchanged, 0 repaired, 1 skipped")
    in_dagster = tmp_path / "workspace" / "seed"
    assert sorted(r["identifier"] for r in find_provenance(in_dagster)) == ["a.txt", "d/b.txt"]
    assert read_provenance(in_dagster / "a.txt")["run_id"]
    assert not any(p.name == "escape.txt" for p in tmp_path.rglob("escape.txt"))
