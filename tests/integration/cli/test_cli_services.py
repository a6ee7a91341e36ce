"""``da-sources`` against the real services: Azurite and PostgreSQL, started by the session fixtures.

Each test follows a canary secret (a unique account key, SAS signature or
password) through every output of the CLI and every file it writes.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from tests.harness import AzuriteServer, PostgresServer
from tests.helpers.azure import new_container
from tests.helpers.cli import Cli, assert_nowhere

pytestmark = pytest.mark.integration


# --- Azure Blob Storage (Azurite) -------------------------------------------------


def test_azure_source_from_the_credential_store(cli: Cli, azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server, {"sales/2024.csv": b"region,amount\nnorth,10\n", "b.txt": b"b"})
    cli("secrets", "set", "az-conn", stdin=azurite_server.connection_string + "\n")
    cli("add", "azure_blob", "az", "--container-name", container, "--connection-string-secret", "az-conn")
    assert "ok" in cli("test", "az").stdout
    items = json.loads(cli("ls", "az", "--json").stdout)
    assert sorted(i["path"] for i in items) == ["b.txt", "sales/2024.csv"]
    landed = cli("fetch", "az", "sales/2024.csv", "--workspace", "ws").stdout.strip()
    assert landed == str(cli.cwd / "ws" / "az" / "sales" / "2024.csv")
    assert Path(landed).read_bytes() == b"region,amount\nnorth,10\n"
    record = json.loads(cli("lineage", landed, "--json").stdout)
    assert (record["source_type"], record["identifier"]) == ("azure_blob", "sales/2024.csv")
    lineage_file = cli.cwd / "ws" / "az" / ".lineage" / "sales" / "2024.csv.json"
    assert_nowhere(azurite_server.account_key, cli, cli.sources_file, cli.secrets_file, lineage_file)


def test_azure_wrong_sas_fails_without_showing_the_signature(cli: Cli, azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server, {"a.txt": b"a"})
    valid = generate_container_sas(
        azurite_server.account_name, container, account_key=azurite_server.account_key,
        permission=ContainerSasPermissions(read=True, list=True), expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    canary_sig = "CANARY" + secrets.token_hex(16)
    forged = "&".join(p if not p.startswith("sig=") else f"sig={canary_sig}" for p in valid.split("&"))
    cli("add", "azure_blob", "az", "--container-name", container, "--account-url", azurite_server.blob_endpoint,
        "--sas-token-env", "AZ_SAS")
    env = {"AZ_SAS": forged}
    cli("test", "az", env=env, check=False)
    cli("ls", "az", env=env, check=False)
    cli("fetch", "az", "a.txt", env=env, check=False)
    assert_nowhere(canary_sig, cli, cli.sources_file)
    assert [i["path"] for i in json.loads(cli("ls", "az", "--json", env={"AZ_SAS": valid}).stdout)] == ["a.txt"]


def test_azure_rotated_key_is_used_on_the_next_connect(cli: Cli, azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server, {"a.txt": b"a"})
    wrong_key = base64.b64encode(secrets.token_bytes(64)).decode()  # a canary key: valid base64, not the account's
    wrong = azurite_server.connection_string.replace(azurite_server.account_key, wrong_key)
    cli("secrets", "set", "az-conn", stdin=wrong + "\n")
    cli("add", "azure_blob", "az", "--container-name", container, "--connection-string-secret", "az-conn")
    cli("test", "az", check=False)
    cli("secrets", "set", "az-conn", stdin=azurite_server.connection_string + "\n")  # rotation
    assert "ok" in cli("test", "az").stdout
    assert_nowhere(wrong_key, cli, cli.sources_file, cli.secrets_file)


# --- PostgreSQL -------------------------------------------------------------------


def test_postgresql_source_with_a_prompted_password(
    cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]
) -> None:
    role, password, table = pg_role
    cli("add", "postgresql", "pg", "--host", postgres_server.host, "--port", str(postgres_server.port),
        "--dbname", postgres_server.dbname, "--user", role, "--password-prompt", stdin=password + "\n")
    entry = yaml.safe_load(cli.sources_file.read_text())["sources"][0]
    assert entry["config"]["password"] == {"secret": "pg.password"}
    assert "ok" in cli("test", "pg").stdout
    assert f"public.{table}" in [i["path"] for i in json.loads(cli("ls", "pg", "--json").stdout)]
    landed = cli("fetch", "pg", f"public.{table}", "--workspace", "ws").stdout.strip()
    assert landed == str(cli.cwd / "ws" / "pg" / f"public.{table}.csv")
    rows = Path(landed).read_text().splitlines()
    assert len(rows) == 3 and "north" in rows[1]
    record = json.loads(cli("lineage", landed, "--json").stdout)
    assert record["row_count"] == 2 and record["source_type"] == "postgresql"
    lineage_file = cli.cwd / "ws" / "pg" / ".lineage" / f"public.{table}.csv.json"
    assert_nowhere(password, cli, cli.sources_file, cli.secrets_file, lineage_file)


def test_postgresql_wrong_password_then_rotation(
    cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]
) -> None:
    role, password, _ = pg_role
    wrong = "CANARY" + secrets.token_hex(16)
    cli("secrets", "set", "pg-pw", stdin=wrong + "\n")
    cli("add", "postgresql", "pg", "--host", postgres_server.host, "--port", str(postgres_server.port),
        "--dbname", postgres_server.dbname, "--user", role, "--password-secret", "pg-pw")
    cli("test", "pg", check=False)
    cli("ls", "pg", check=False)
    cli("secrets", "set", "pg-pw", stdin=password + "\n")
    assert "ok" in cli("test", "pg").stdout
    assert_nowhere(wrong, cli, cli.sources_file, cli.secrets_file)
    assert_nowhere(password, cli, cli.sources_file, cli.secrets_file)


def test_postgresql_dsn_from_the_environment(
    cli: Cli, postgres_server: PostgresServer, pg_role: tuple[str, str, str]
) -> None:
    role, password, table = pg_role
    dsn = (f"postgresql://{role}:{password}@{postgres_server.host}:{postgres_server.port}/"
           f"{postgres_server.dbname}")
    cli("add", "postgresql", "pg", "--dsn-env", "PG_DSN")
    assert f"public.{table}" in cli("ls", "pg", env={"PG_DSN": dsn}).stdout
    bad = dsn.replace(f":{postgres_server.port}/", ":1/")
    cli("test", "pg", env={"PG_DSN": bad}, check=False)
    assert_nowhere(password, cli, cli.sources_file)
