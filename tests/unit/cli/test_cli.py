"""``da-sources`` as a user runs it: subprocesses of the installed console script, local sources."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
import yaml

from connectors.cli import ProgressBar
from connectors.secrets.store import FernetFileStore
from tests.helpers.cli import CONSOLE_SCRIPT, Cli, assert_nowhere
from tests.plugin_fixture import PLUGIN_TYPE, install_plugin


def test_console_script_is_installed() -> None:
    assert CONSOLE_SCRIPT.exists(), "run: .venv/bin/pip install -e . --no-deps"


def test_help_lists_every_command(cli: Cli) -> None:
    out = cli("--help").stdout
    for command in ("list", "add", "remove", "test", "ls", "fetch", "lineage", "secrets"):
        assert command in out


def test_local_source_round_trip(cli: Cli, data_root: Path) -> None:
    cli("add", "local_file", "docs", "--name", "Docs", "--root", str(data_root), "--pattern", "*.csv")
    listed = json.loads(cli("list", "--json").stdout)
    assert listed == [{"id": "docs", "type": "local_file", "name": "Docs", "metadata": {},
                       "config": {"root": str(data_root), "pattern": "*.csv"},
                       "created_at": listed[0]["created_at"]}]
    assert "docs" in cli("list").stdout
    items = json.loads(cli("ls", "docs", "--json").stdout)
    assert [i["path"] for i in items] == ["2024/sales.csv", "a.csv"]
    assert "2024/sales.csv" in cli("ls", "docs").stdout
    assert [i["path"] for i in json.loads(cli("ls", "docs", "2024", "--json").stdout)] == ["2024/sales.csv"]
    landed = cli("fetch", "docs", "2024/sales.csv", "--workspace", "ws").stdout.strip()
    assert landed == str(cli.cwd / "ws" / "docs" / "2024" / "sales.csv")
    assert Path(landed).read_text() == "region,amount\nnorth,10\n"
    record = json.loads(cli("lineage", landed, "--json").stdout)
    assert (record["source_id"], record["identifier"]) == ("docs", "2024/sales.csv")
    assert "sha256" in cli("lineage", landed).stdout
    assert "ok" in cli("test", "docs").stdout
    cli("remove", "docs")
    assert json.loads(cli("list", "--json").stdout) == []


def test_fetch_default_workspace(cli: Cli, data_root: Path, tmp_path: Path) -> None:
    cli("add", "local_file", "docs", "--root", str(data_root))
    cli("fetch", "docs", "a.csv")
    assert (cli.cwd / "workspace" / "docs" / "a.csv").read_text() == "x,y\n1,2\n"
    cli("fetch", "docs", "a.csv", env={"DA_WORKSPACE": str(tmp_path / "elsewhere")})
    assert (tmp_path / "elsewhere" / "docs" / "a.csv").exists()


def test_fetch_all_and_partial_failure(cli: Cli, data_root: Path) -> None:
    cli("add", "local_file", "docs", "--root", str(data_root))
    results = json.loads(cli("fetch", "docs", "--all", "--json").stdout)
    assert sorted(r["identifier"] for r in results) == ["2024/sales.csv", "a.csv", "notes.txt"]
    assert all(r["error"] is None for r in results)
    failed = cli("fetch", "docs", "a.csv", "missing.csv", check=False)
    assert failed.returncode == 1
    assert "missing.csv" in failed.stderr and failed.stdout.strip().endswith("a.csv")
    assert "\r" not in failed.stderr  # not a TTY: no progress bar


def test_fetch_needs_something_to_fetch(cli: Cli, data_root: Path) -> None:
    cli("add", "local_file", "docs", "--root", str(data_root))
    result = cli("fetch", "docs", check=False)
    assert result.returncode == 2 and "IDENTIFIER" in result.stderr


def test_test_reports_a_source_that_does_not_answer(cli: Cli, tmp_path: Path) -> None:
    cli("add", "local_file", "gone", "--root", str(tmp_path / "missing"))
    result = cli("test", "gone", check=False)
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert json.loads(cli("test", "gone", "--json", check=False).stdout)["ok"] is False


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["bogus"], 2, "invalid choice"),
        (["ls", "nope"], 1, "no source 'nope'"),
        (["add", "ftp", "x"], 2, "invalid choice"),
        (["add", "local_file", "x"], 1, "config.root: required field is missing"),
        (["add", "local_file", "x", "--root", "/tmp", "--set", "novalue"], 2, "--set expects KEY=VALUE"),
        (["lineage", "/nonexistent/file.csv"], 1, "no provenance record"),
        (["secrets", "delete", "never-set"], 1, "no secret 'never-set'"),
        (["remove", "nope"], 1, "no source 'nope'"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(cli: Cli, args: list[str], code: int, message: str) -> None:
    cli.sources_file.write_text("sources: []\n")  # a named file must exist (see test_cli_ids.py)
    result = cli(*args, check=False)
    assert result.returncode == code
    assert message in result.stderr


def test_malformed_sources_file(cli: Cli) -> None:
    cli.sources_file.write_text("sources:\n  - id: x\n    type: local_file\n    name: X\n    config: {rot: /}\n")
    result = cli("list", check=False)
    assert "source 'x'" in result.stderr and "config.root" in result.stderr


def test_sources_option_overrides_the_environment(cli: Cli, data_root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    cli("--sources", str(other), "add", "local_file", "docs", "--root", str(data_root))
    assert other.exists() and not cli.sources_file.exists()
    assert [s["id"] for s in json.loads(cli("--sources", str(other), "list", "--json").stdout)] == ["docs"]


# --- secrets ----------------------------------------------------------------------


def test_secrets_set_list_delete_and_rotation(cli: Cli, canary: str) -> None:
    assert "stored" in cli("secrets", "set", "pg-pw", stdin=canary + "\n").stdout
    assert "replaced" in cli("secrets", "set", "pg-pw", stdin=canary + "-rotated\n").stdout
    assert json.loads(cli("secrets", "list", "--json").stdout) == ["pg-pw"]
    assert cli("secrets", "list").stdout.strip() == "pg-pw"
    store = FernetFileStore(cli.secrets_file, cli.env["DA_SECRETS_KEY"])
    assert store.get("pg-pw") == canary + "-rotated"
    assert_nowhere(canary, cli, cli.secrets_file, cli.sources_file)
    cli("secrets", "delete", "pg-pw")
    assert json.loads(cli("secrets", "list", "--json").stdout) == []


def test_secret_value_is_never_an_argument(cli: Cli, canary: str) -> None:
    result = cli("secrets", "set", "x", canary, check=False)
    assert result.returncode == 2
    assert_nowhere(canary, cli)


def test_store_fails_closed_without_a_backend(cli: Cli, canary: str) -> None:
    env = {"DA_SECRETS_KEY": "", "DA_SECRETS_BACKEND": ""}
    result = cli("secrets", "set", "x", stdin=canary + "\n", env=env, check=False)
    assert "no credential store is available" in result.stderr
    assert not cli.secrets_file.exists()
    assert_nowhere(canary, cli)


def test_add_with_prompted_secret_stores_a_reference(cli: Cli, canary: str) -> None:
    cli("add", "postgresql", "pg", "--host", "127.0.0.1", "--user", "app", "--password-prompt",
        stdin=canary + "\n")
    entry = yaml.safe_load(cli.sources_file.read_text())["sources"][0]
    assert entry["config"]["password"] == {"secret": "pg.password"}
    assert FernetFileStore(cli.secrets_file, cli.env["DA_SECRETS_KEY"]).get("pg.password") == canary
    assert "{secret: pg.password}" in cli("list").stdout
    assert_nowhere(canary, cli, cli.sources_file, cli.secrets_file)


def test_add_with_references(cli: Cli) -> None:
    cli("add", "postgresql", "pg", "--host", "h", "--password-env", "PG_PW", "--schemas", "public", "sales")
    cli("add", "azure_blob", "az", "--container-name", "data", "--connection-string-secret", "az-conn",
        "--metadata", "env=prod")
    sources = {s["id"]: s for s in yaml.safe_load(cli.sources_file.read_text())["sources"]}
    assert sources["pg"]["config"] == {"host": "h", "password": {"env": "PG_PW"}, "schemas": ["public", "sales"]}
    assert sources["az"]["config"] == {"container_name": "data", "connection_string": {"secret": "az-conn"}}
    assert sources["az"]["metadata"] == {"env": "prod"}


def test_literal_secret_is_refused_and_never_shown(cli: Cli, canary: str) -> None:
    result = cli("add", "postgresql", "pg", "--host", "h", "--set", f"password={canary}", check=False)
    assert "{env: NAME} or {secret: NAME}" in result.stderr
    assert_nowhere(canary, cli, cli.sources_file)


def test_hand_written_literal_is_refused_and_never_shown(cli: Cli, canary: str) -> None:
    # refused as the code location refuses it: listed as invalid, never used to connect
    source = {"id": "pg", "type": "postgresql", "name": "PG", "config": {"host": "h", "password": canary}}
    cli.sources_file.write_text(yaml.safe_dump({"sources": [source]}))
    listed = cli("list", check=False).stderr
    assert "config.password" in listed and "literal secret" in listed
    assert "literal secret" in cli("test", "pg", check=False).stderr
    source["config"]["port"] = "not-a-port"
    cli.sources_file.write_text(yaml.safe_dump({"sources": [source]}))
    assert "config.port" in cli("list", check=False).stderr
    for text in cli.outputs:
        assert canary not in text


def test_connection_error_never_shows_the_dsn_password(cli: Cli, canary: str) -> None:
    dsn = f"postgresql://app:{canary}@127.0.0.1:1/db?connect_timeout=2"
    cli("add", "postgresql", "pg", "--dsn-env", "PG_DSN")
    for command in (["test", "pg"], ["ls", "pg"]):
        cli(*command, env={"PG_DSN": dsn}, check=False)
    assert_nowhere(canary, cli, cli.sources_file)


# --- plugins ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("plugin-site"))


def test_plugin_source_end_to_end(cli: Cli, plugin_site: Path, canary: str) -> None:
    env = {"PYTHONPATH": str(plugin_site)}
    cli("secrets", "set", "inline-token", stdin=canary + "\n")
    cli("add", PLUGIN_TYPE, "inl", "--set", "files={a.txt: hello, d/b.txt: world}",
        "--token-secret", "inline-token", env=env)
    assert "inl" in cli("list", env=env).stdout
    assert [i["path"] for i in json.loads(cli("ls", "inl", "--json", env=env).stdout)] == ["a.txt", "d/b.txt"]
    landed = cli("fetch", "inl", "d/b.txt", env=env).stdout.strip()
    assert Path(landed).read_text() == "world"
    assert json.loads(cli("lineage", landed, "--json").stdout)["source_type"] == PLUGIN_TYPE
    without = cli("list", check=False)  # the plugin is not installed for this run
    assert f"unknown connector type '{PLUGIN_TYPE}'" in without.stderr
    assert_nowhere(canary, cli, cli.sources_file)


# --- progress ---------------------------------------------------------------------


def test_progress_bar_is_drawn_on_a_terminal(cli: Cli, data_root: Path) -> None:
    (data_root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    cli("add", "local_file", "docs", "--root", str(data_root))
    controller, terminal = pty.openpty()
    try:
        command = [str(CONSOLE_SCRIPT), "fetch", "docs", "--all"]
        result = subprocess.run(command, cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=terminal,
                                timeout=120, check=False)
        os.close(terminal)
        drawn = _read_all(controller)
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert "4/4 items" in drawn and "\r" in drawn
    assert b"big.bin" in result.stdout  # the paths still go to stdout, unmixed with the bar


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_render() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, items=2, width=60)
    bar("a.bin", 512, 1024)
    bar.item_done("a.bin")
    text = bar.render()
    assert text.startswith("[##########..........] 1/2 items")
    assert len(text) <= 59
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_bar_single_item_shows_bytes() -> None:
    bar = ProgressBar(io.StringIO(), items=1, width=200)
    bar("big", 3 * 1024 * 1024, 4 * 1024 * 1024)
    assert bar.render().startswith("[###############.....] 0/1 items 3.0 MiB/4.0 MiB big")
