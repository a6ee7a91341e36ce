"""``da-sources query`` against the real PostgreSQL, and SAS URLs against the real Azurite (12.15, 13.6).

Each test follows a canary (a password, a SAS signature) through every output and file.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from tests.harness import AzuriteServer, PostgresServer
from tests.helpers.cli import Cli, assert_nowhere

pytestmark = pytest.mark.integration


def add_pg(cli: Cli, server: PostgresServer, role: str, password: str) -> None:  # noqa: F811
    cli("add", "postgresql", "pg", "--host", server.host, "--port", str(server.port), "--dbname", server.dbname,
        "--user", role, "--password-prompt", stdin=password + "\n")


def test_query_lands_csv_and_parquet_with_lineage(
        cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]) -> None:  # noqa: F811
    role, password, table = pg_role
    add_pg(cli, postgres_server, role, password)
    sql = f"SELECT region, count(*) AS n FROM public.{table} GROUP BY region ORDER BY region"
    landed = cli("query", "pg", sql, "--name", "by_region", "--workspace", "ws").stdout.strip()
    assert landed == str(cli.cwd / "ws" / "pg" / "by_region.csv")
    assert Path(landed).read_text().splitlines() == ["region,n", "north,1", "south,1"]
    record = json.loads(cli("lineage", landed, "--json").stdout)
    assert record["source_id"] == "pg" and record["row_count"] == 2 and sql in json.dumps(record)
    out = json.loads(cli("query", "pg", "-", "--name", "all", "--workspace", "ws", "--format", "parquet",
                         "--json", stdin=f"SELECT * FROM public.{table}").stdout)
    assert out["path"] == str(cli.cwd / "ws" / "pg" / "all.parquet")
    assert pq.read_table(out["path"]).num_rows == 2
    lineage = cli.cwd / "ws" / "pg" / ".lineage"
    assert_nowhere(password, cli, cli.sources_file, cli.secrets_file, *lineage.rglob("*.json"))


def test_query_errors_are_one_line_and_leave_nothing(
        cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]) -> None:  # noqa: F811
    role, password, table = pg_role
    add_pg(cli, postgres_server, role, password)
    write = cli("query", "pg", f"DELETE FROM public.{table}", "--name", "w", "--workspace", "ws", check=False)
    assert write.returncode == 1
    bad = cli("query", "pg", "SELECT * FROM no_such_table", "--name", "x", "--workspace", "ws", check=False)
    assert bad.returncode == 1 and "no_such_table" in bad.stderr
    escape = cli("query", "pg", "SELECT 1", "--name", "../../x", "--workspace", "ws", check=False)
    assert escape.returncode == 1
    assert not (cli.cwd / "x.csv").exists() and not (cli.cwd.parent / "x.csv").exists()
    assert not [p for p in (cli.cwd / "ws").rglob("*") if p.is_file()] if (cli.cwd / "ws").exists() else True
    assert_nowhere(password, cli, cli.sources_file)


def sas_for(server: AzuriteServer, container: str) -> str:
    return generate_container_sas(server.account_name, container, account_key=server.account_key,
                                  permission=ContainerSasPermissions(read=True, list=True),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


def test_a_sas_inside_account_url_is_a_secret(cli: Cli, azurite_server: AzuriteServer) -> None:  # noqa: F811
    container = f"cli{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        service.create_container(container).upload_blob("raw/2024/a.csv", b"a\n")
    valid = sas_for(azurite_server, container)
    url = f"{azurite_server.blob_endpoint}?{valid}"
    refused = cli("add", "azure_blob", "az", "--container-name", container, "--account-url", url, check=False)
    assert refused.returncode == 1 and "config.account_url" in refused.stderr
    cli("add", "azure_blob", "az", "--container-name", container, "--set", "account_url={env: AZ_URL}")
    assert yaml.safe_load(cli.sources_file.read_text())["sources"][0]["config"]["account_url"] == {"env": "AZ_URL"}
    landed = cli("fetch", "az", "raw/2024/", "--workspace", "ws", env={"AZ_URL": url}).stdout.split()
    assert landed == [str(cli.cwd / "ws" / "az" / "raw" / "2024" / "a.csv")]
    canary_sig = "CANARY" + secrets.token_hex(16)
    forged = url.replace(url.split("sig=")[1].split("&")[0], canary_sig)
    for args in (["test", "az"], ["ls", "az"], ["fetch", "az", "raw/2024/a.csv", "--workspace", "ws2"]):
        cli(*args, env={"AZ_URL": forged}, check=False)
    cli("list", "--json")
    valid_sig = valid.split("sig=")[1].split("&")[0]
    lineage = list((cli.cwd / "ws").rglob("*.json"))
    assert_nowhere(canary_sig, cli, cli.sources_file, *lineage)
    assert_nowhere(valid_sig, cli, cli.sources_file, *lineage)


def test_fetch_lands_part_of_a_table(
        cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]) -> None:  # noqa: F811
    """``fetch --where --param --columns --limit`` lands the slice; the lineage keeps the options."""
    role, password, table = pg_role
    add_pg(cli, postgres_server, role, password)
    landed = cli("fetch", "pg", f"public.{table}", "--where", "region = %s", "--param", "south",
                 "--columns", "region,id", "--limit", "5", "--workspace", "ws").stdout.strip()
    assert Path(landed).read_text() == "region,id\nsouth,2\n"
    record = json.loads(cli("lineage", landed, "--json").stdout)
    assert record["options"] == {"columns": ["region", "id"], "where": "region = %s", "params": ["south"],
                                 "limit": 5, "seed": 0}
    assert record["profile"]["rows"] == 1
    bad = cli("fetch", "pg", f"public.{table}", "--sample", "2.5", "--workspace", "ws", check=False)
    assert bad.returncode != 0 and "sample" in bad.stderr and "Traceback" not in bad.stderr
    assert_nowhere(password, cli, cli.sources_file)


def test_sync_table_lands_an_incremental_dataset_and_full_replaces_it(
        cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]) -> None:  # noqa: F811
    """``sync-table`` adds only what is new; ``--full`` replaces the dataset (deletes seen)."""
    import psycopg

    role, password, table = pg_role
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE public.{table} ADD PRIMARY KEY (id)")
    add_pg(cli, postgres_server, role, password)
    sources = yaml.safe_load(cli.sources_file.read_text())
    sources["sources"][0]["config"]["incremental"] = {f"public.{table}": {"cursor": "id"}}
    cli.sources_file.write_text(yaml.safe_dump(sources))
    first = json.loads(cli("sync-table", "pg", f"public.{table}", "--workspace", "ws", "--json").stdout)
    assert first["last_sync"] == "full" and first["row_count"] == 2
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO public.{table} VALUES (3, 'east')")
        conn.execute(f"DELETE FROM public.{table} WHERE id = 1")
    again = json.loads(cli("sync-table", "pg", f"public.{table}", "--workspace", "ws", "--json").stdout)
    assert (again["last_sync"], again["rows_synced"], again["row_count"], again["parts"]) == ("increment", 1, 3, 2)
    full = json.loads(cli("sync-table", "pg", f"public.{table}", "--workspace", "ws", "--full", "--json").stdout)
    assert (full["last_sync"], full["row_count"]) == ("full", 2)
    assert sorted(pq.read_table(full["path"]).column("id").to_pylist()) == [2, 3]
    assert_nowhere(password, cli, cli.sources_file)


def test_ls_of_tables_shows_an_unknown_time_as_a_dash_and_null(
        cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]) -> None:  # noqa: F811
    role, password, table = pg_role
    add_pg(cli, postgres_server, role, password)
    rows = {row["path"]: row for row in json.loads(cli("ls", "pg", "--json").stdout)}
    assert rows[f"public.{table}"]["modified_at"] is None  # a table has no modification time
    line = next(line for line in cli("ls", "pg").stdout.splitlines() if line.endswith(f"public.{table}"))
    assert " - " in line and "1970" not in line
