"""``da-sources`` with bad ids, bad files and misplaced input.

Subprocesses of the installed console script over a real file system, as in test_cli.py.
"""

# ruff: noqa: F811  (the cli and data_root fixtures of test_cli.py, taken as arguments)
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import CONSOLE_SCRIPT, Cli

BAD_IDS = ["../../../x", "/tmp/abs", "a/b", "2024-exports", "_staging"]  # all of the rule: test_source_ids.py


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


def every_command(source_id: str) -> list[list[str]]:
    return [
        ["add", "local_file", source_id, "--root", "."],
        ["test", source_id],
        ["ls", source_id],
        ["fetch", source_id, "a.csv", "--workspace", "ws"],
        ["query", source_id, "select 1", "--name", "q", "--workspace", "ws"],
        ["remove", source_id],
    ]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_every_command_answers_a_bad_id_with_the_rule_and_writes_nothing(
        cli: Cli, data_root: Path, tmp_path: Path, bad: str) -> None:
    cli("add", "local_file", "docs", "--root", str(data_root))
    before = cli.sources_file.read_bytes()
    tree = files_under(tmp_path)
    for args in every_command(bad):
        result = cli(*args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert "a source id is 1 to 63 characters" in result.stderr and "starting with a letter" in result.stderr
    assert cli.sources_file.read_bytes() == before
    assert files_under(tmp_path) == tree  # nothing written anywhere, in or outside the workspace
    assert not (tmp_path / "x").exists() and not Path("/tmp/abs").exists()


def test_fetch_cannot_be_pointed_outside_the_workspace_through_the_sources_file(
        cli: Cli, data_root: Path, tmp_path: Path) -> None:
    # the id written by hand: the entry is invalid, so nothing of it is fetched anywhere
    cli.sources_file.write_text(yaml.safe_dump({"sources": [
        {"id": "../../../escaped", "type": "local_file", "name": "E", "config": {"root": str(data_root)}},
        {"id": "docs", "type": "local_file", "name": "D", "config": {"root": str(data_root)}}]}))
    assert cli("fetch", "../../../escaped", "a.csv", "--workspace", "ws", check=False).returncode == 2
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.parent.glob("escaped"))
    assert cli("fetch", "docs", "a.csv", "--workspace", "ws").stdout.strip() == str(cli.cwd / "ws/docs/a.csv")


def test_colliding_ids_are_refused_naming_both(cli: Cli, data_root: Path) -> None:
    cli("add", "local_file", "nc-pg", "--root", str(data_root))
    result = cli("add", "local_file", "nc_pg", "--root", str(data_root), check=False)
    assert result.returncode == 1 and "'nc-pg' and 'nc_pg' both map to the Dagster name 'nc_pg'" in result.stderr
    result = cli("add", "local_file", "NC-PG", "--root", str(data_root), check=False)
    assert "'nc-pg' and 'NC-PG'" in result.stderr
    assert [s["id"] for s in yaml.safe_load(cli.sources_file.read_text())["sources"]] == ["nc-pg"]


def test_list_shows_bad_entries_with_their_errors_and_the_rest_works(cli: Cli, data_root: Path) -> None:
    cli.sources_file.write_text(yaml.safe_dump({"sources": [
        {"id": "good", "type": "local_file", "name": "G", "config": {"root": str(data_root)}},
        {"id": "2024-exports", "type": "local_file", "name": "B", "config": {"root": str(data_root)}},
        {"id": "broken", "type": "local_file", "name": "B", "config": {"rot": "/"}}]}))
    # one error line per bad entry: run without the one-line check of Cli
    result = subprocess.run([str(CONSOLE_SCRIPT), "list"], cwd=cli.cwd, env=cli.env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "good" in result.stdout and "'2024-exports'" in result.stdout and "INVALID" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("da-sources: error: entry ") for line in lines)
    assert "invalid source id '2024-exports'" in lines[0] and "config.root" in lines[1]
    listed = json.loads(subprocess.run([str(CONSOLE_SCRIPT), "list", "--json"], cwd=cli.cwd, env=cli.env,
                                       capture_output=True, text=True, timeout=120).stdout)
    assert [s["id"] for s in listed] == ["good", None, "broken"]
    assert "starting with a letter" in listed[1]["error"] and listed[1]["position"] == 2
    assert "ok" in cli("test", "good").stdout  # one bad source never breaks the CLI
    assert cli("ls", "good").returncode == 0
    assert "config.root" in cli("ls", "broken", check=False).stderr
    cli("remove", "2024-exports")  # an invalid entry is removed by its exact id
    cli("remove", "broken")
    assert json.loads(cli("list", "--json").stdout)[0]["id"] == "good"


def test_a_named_sources_file_that_does_not_exist_is_an_error(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    for args in (["--sources", str(missing), "list"], ["list", "--sources", str(missing)], ["list"]):
        result = cli(*args, check=False)
        assert result.returncode == 1 and "does not exist" in result.stderr and "no sources" not in result.stdout
    assert not missing.exists()


def test_without_a_sources_file_list_shows_the_sample_dagster_serves(cli: Cli) -> None:
    env = {**cli.env}
    del env["DA_SOURCES_FILE"]
    bare = Cli(cli.cwd, env)
    out = bare("list").stdout
    assert "sample" in out and "embedded" in out
    [sample] = json.loads(bare("list", "--json").stdout)
    assert sample["id"] == "sample" and sample["embedded"] is True
    assert "sales.csv" in bare("ls", "sample").stdout
    assert "cannot be removed" in bare("remove", "sample", check=False).stderr
    assert not (cli.cwd / "sources.yaml").exists()


def test_a_sources_file_that_is_not_utf8(cli: Cli) -> None:
    cli.sources_file.write_bytes(b"sources:\n  - id: caf\xe9\n")
    result = cli("list", check=False)
    assert "is not UTF-8 text (byte 0xe9 at offset 20)" in result.stderr
    assert "UnicodeDecodeError" not in result.stderr


def test_version(cli: Cli) -> None:
    assert cli("--version").stdout.startswith("da-sources ")


@pytest.mark.parametrize(("args", "named"), [
    (["--json", "list"], "--json"),
    (["list", "--root", "x"], "--root"),
    (["ls", "--workspace=/tmp/x", "docs"], "--workspace"),
])
def test_misplaced_options_are_named(cli: Cli, args: list[str], named: str) -> None:
    cli.sources_file.write_text("sources: []\n")
    result = cli(*args, check=False)
    assert result.returncode == 2 and f"unknown option {named} here" in result.stderr
    assert "/tmp/x" not in result.stderr  # the option's value is never echoed


def test_sources_option_after_the_command(cli: Cli, data_root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    cli("add", "local_file", "docs", "--root", str(data_root), "--sources", str(other))
    assert [s["id"] for s in json.loads(cli("list", "--json", "--sources", str(other)).stdout)] == ["docs"]
    assert not cli.sources_file.exists()


def test_stray_words_are_counted_never_echoed(cli: Cli, canary: str) -> None:
    result = cli("list", canary, check=False)
    assert result.returncode == 2 and "1 unexpected argument" in result.stderr and canary not in result.stderr


@pytest.mark.parametrize("args", [
    ["ls", "{huge}"], ["{huge}"], ["fetch", "docs", "{huge}"], ["add", "local_file", "docs", "--root", "{huge}"],
    ["lineage", "{huge}"], ["secrets", "delete", "{huge}"], ["list", "--{huge}"],
])
def test_a_huge_argument_never_comes_back_whole(cli: Cli, data_root: Path, args: list[str]) -> None:
    cli("add", "local_file", "docs", "--root", str(data_root))
    huge = "a" * 100_000
    result = cli(*[a.replace("{huge}", huge) for a in args], check=False)
    assert len(result.stderr) < 2_500 and len(result.stdout) < 2_500, args


def test_fetch_a_folder_and_a_glob(cli: Cli, data_root: Path) -> None:
    (data_root / "2024" / "deep").mkdir()
    (data_root / "2024" / "deep" / "x.csv").write_text("x\n")
    (data_root / "2024" / "notes.txt").write_text("n\n")
    cli("add", "local_file", "docs", "--root", str(data_root))
    folder = cli("fetch", "docs", "2024/", "--workspace", "ws")
    assert sorted(Path(p).relative_to(cli.cwd / "ws/docs").as_posix() for p in folder.stdout.split()) == [
        "2024/deep/x.csv", "2024/notes.txt", "2024/sales.csv"]
    assert "2024/: 3 item(s)" in folder.stderr
    glob = json.loads(cli("fetch", "docs", "2024/*.csv", "--workspace", "ws2", "--json").stdout)
    assert [r["identifier"] for r in glob] == ["2024/sales.csv"]  # '*' stays within one folder
    deep = json.loads(cli("fetch", "docs", "**/*.csv", "--workspace", "ws3", "--json").stdout)
    assert sorted(r["identifier"] for r in deep) == ["2024/deep/x.csv", "2024/sales.csv", "a.csv"]
    assert (cli.cwd / "ws3/docs/2024/deep/x.csv").read_text() == "x\n"
    none = cli("fetch", "docs", "2024/*.parquet", "--workspace", "ws4", check=False)
    assert none.returncode == 1 and "nothing matches '2024/*.parquet'" in none.stderr
    assert "does not exist" in cli("fetch", "docs", "nope/", "--workspace", "ws4", check=False).stderr
    assert not (cli.cwd / "ws4" / "docs").exists() or not any((cli.cwd / "ws4" / "docs").rglob("*.csv"))


def test_query_refuses_a_source_without_queries(cli: Cli, data_root: Path) -> None:
    cli("add", "local_file", "docs", "--root", str(data_root))
    result = cli("query", "docs", "select 1", "--name", "q", check=False)
    assert result.returncode == 1 and "cannot run queries" in result.stderr and "postgresql" in result.stderr
