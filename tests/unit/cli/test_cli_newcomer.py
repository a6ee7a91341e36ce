"""What a new user met in the CLI: exact names, unknown times, progress, refused names, messages.

docs/RELIABILITY.md row 54.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from connectors.base import DataSourceConfig
from connectors.cli.common import iso_time
from connectors.secrets.store import FernetFileStore
from da_pipelines.definitions import build_definitions
from tests.helpers.cli import CONSOLE_SCRIPT, Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home, work = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    work.mkdir()
    return Cli(work, {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
                      "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"),
                      "DA_SECRETS_FILE": str(tmp_path / "secrets" / "store.fernet"),
                      "DA_SECRETS_KEY": FernetFileStore.generate_key(), "DA_SECRETS_BACKEND": "file"})


@pytest.fixture
def odd_root(tmp_path: Path) -> Path:
    root = tmp_path / "odd"
    (root / "reports").mkdir(parents=True)
    (root / "reports" / "data[1].csv").write_text("exact\n")
    (root / "reports" / "data1.csv").write_text("glob match\n")
    return root


def test_an_exact_name_wins_over_the_glob_it_looks_like(cli: Cli, odd_root: Path) -> None:
    cli("add", "local_file", "files", "--root", str(odd_root))
    workspace = cli.cwd / "ws"
    landed = cli("fetch", "files", "reports/data[1].csv", "--workspace", str(workspace), "--json").stdout
    assert [row["identifier"] for row in json.loads(landed)] == ["reports/data[1].csv"]
    assert (workspace / "files" / "reports" / "data[1].csv").read_text() == "exact\n"
    assert not (workspace / "files" / "reports" / "data1.csv").exists()
    globbed = cli("fetch", "files", "reports/data[1].csv", "--glob", "--workspace", str(workspace), "--json").stdout
    assert [row["identifier"] for row in json.loads(globbed)] == ["reports/data1.csv"]


def test_an_unknown_modification_time_is_shown_as_a_dash() -> None:
    assert iso_time(0) == "-"
    assert iso_time(86400) == "1970-01-02 00:00:00"


def test_a_relative_root_is_stored_absolute(cli: Cli, odd_root: Path) -> None:
    (cli.cwd / "data").symlink_to(odd_root)
    cli("add", "local_file", "rel", "--root", "data")
    stored = cli.sources_file.read_text()
    assert f"root: {cli.cwd / 'data'}" in stored
    elsewhere = cli.cwd.parent / "elsewhere"
    elsewhere.mkdir()
    listed = Cli(elsewhere, cli.env)("ls", "rel", "--json").stdout
    assert sorted(row["path"] for row in json.loads(listed)) == ["reports/data1.csv", "reports/data[1].csv"]


def test_the_bar_is_cleared_before_the_results_print(cli: Cli, odd_root: Path) -> None:
    # stdout and stderr on one terminal, as a person runs it
    (odd_root / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    cli("add", "local_file", "files", "--root", str(odd_root))
    for args in (["--all"], ["reports/", "big.bin"]):
        workspace = cli.cwd / f"ws{len(args)}"
        drawn = _on_a_terminal(cli, ["fetch", "files", *args, "--workspace", str(workspace)])
        printed = [line for line in drawn.split("\n") if str(workspace) in line]
        assert len(printed) == 3, drawn
        for line in printed:  # what is left on the line once the terminal has applied the clears
            assert line.split("\x1b[K")[-1].strip("\r").startswith(str(workspace)), repr(line)


def _on_a_terminal(cli: Cli, args: list[str]) -> str:
    controller, terminal = pty.openpty()
    try:
        subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=cli.cwd, env=cli.env, stdout=terminal, stderr=terminal,
                       timeout=120, check=True)
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO once the other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture
def refusing_root(tmp_path: Path) -> Path:
    """A folder whose listing refuses three names: a link leading outside, a backslash, a newline."""
    root = tmp_path / "refusing"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("secret-ish\n")
    (root / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (root / "back\\slash.csv").write_text("b\n")
    (root / "new\nline.csv").write_text("n\n")
    (root / "ok.csv").write_text("ok\n")
    return root


def test_refused_local_names_are_counted_in_the_summary_and_json(cli: Cli, refusing_root: Path) -> None:
    cli("add", "local_file", "files", "--root", str(refusing_root))
    summary = cli("fetch", "files", "--all", "--workspace", str(cli.cwd / "ws")).stderr
    assert "1 landed, 0 unchanged, 0 repaired, 3 skipped" in summary, summary
    assert "a symlink leading outside root" in summary
    rows = json.loads(cli("fetch", "files", "--all", "--workspace", str(cli.cwd / "ws2"), "--json").stdout)
    skipped = {row["identifier"]: row["reason"] for row in rows if row["status"] == "skipped"}
    assert sorted(skipped) == ["back\\slash.csv", "escape.txt", "new\nline.csv"], skipped


def test_refused_local_names_are_logged_and_counted_by_dagster(tmp_path: Path, refusing_root: Path) -> None:
    source = DataSourceConfig(id="files", type="local_file", name="files", config={"root": str(refusing_root)})
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("files_sync").execute_in_process(instance=instance)
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success
    assert any("files/files: 1 landed, 0 unchanged, 0 repaired, 3 skipped" in m for m in logged), logged
    assert any("skipped 'escape.txt': a symlink leading outside root" in m for m in logged)
    [materialized] = [e.materialization for e in result.get_asset_materialization_events()
                      if e.materialization.asset_key == AssetKey(["files", "files"])]
    assert materialized.metadata["items_skipped"].value == 3
    assert len(materialized.metadata["skipped_items"].value) == 3


# --- messages: each as a person reads it -------------------------------------


def test_a_folder_named_without_a_slash_is_told_to_add_one(cli: Cli, odd_root: Path) -> None:
    cli("add", "local_file", "files", "--root", str(odd_root))
    said = cli("fetch", "files", "reports", "--workspace", str(cli.cwd / "ws"), check=False).stderr
    assert "'reports' is a folder, not a file; give 'reports/'" in said and "FIFO" not in said


def test_did_you_mean_for_a_mistyped_command_and_source_id(cli: Cli, odd_root: Path) -> None:
    assert "did you mean 'list'?" in cli("lsit", check=False).stderr
    assert "did you mean 'list'?" in cli("secrets", "lst", check=False).stderr
    cli("add", "local_file", "files", "--root", str(odd_root))
    assert "did you mean 'files'?" in cli("test", "filse", check=False).stderr
    assert "did you mean" not in cli("test", "zzzzzz", check=False).stderr


def test_serve_refuses_an_outside_address_before_its_banner(cli: Cli) -> None:
    refused = cli("serve", "--host", "0.0.0.0", "--port", "1", check=False)  # noqa: S104 - refused, never bound
    assert "refusing to listen on 0.0.0.0" in refused.stderr
    assert refused.stdout == ""


def test_a_source_that_cannot_be_read_is_not_called_a_failed_item() -> None:
    from connectors.errors import ConnectionError as SourceConnectionError
    from da_pipelines.jobs import failure_for

    error = SourceConnectionError("cannot reach the credential store", source_id="x")
    assert failure_for([error], before_items=True).description.startswith("the source could not be read")
    assert failure_for([error]).description.startswith("1 item(s) failed")


def test_a_missing_generated_file_names_the_folder_searched(tmp_path: Path) -> None:
    from connectors.errors import NotFoundError
    from connectors.landing.root import workspace_root
    from connectors.threads.results import _open_generated

    folder = tmp_path / "thread-1"
    (folder / "generated").mkdir(parents=True)
    with workspace_root(tmp_path), pytest.raises(NotFoundError) as raised:
        _open_generated(folder, "chart.png")
    assert f"searched {str(folder / 'generated')!r}" in str(raised.value)


# --- odds and ends ------------------------------------------------------------


def test_add_sets_metadata_with_dotted_keys_and_refuses_a_bad_one(cli: Cli, odd_root: Path) -> None:
    cli("add", "local_file", "files", "--root", str(odd_root),
        "--set", "metadata.dagster.item_sets=[{name: csv, glob: '*.csv'}]", "--metadata", "sync.prune=true")
    listed = json.loads(cli("list", "--json").stdout)[0]
    stored = yaml.safe_load(cli.sources_file.read_text())["sources"][0]
    assert stored["metadata"] == {"dagster": {"item_sets": [{"name": "csv", "glob": "*.csv"}]}, "sync": {"prune": True}}
    assert listed["id"] == "files"
    bad = cli("add", "local_file", "other", "--root", str(odd_root),
              "--set", "metadata.dagster.item_sets=[{name: p, partitioned: true}]", check=False).stderr
    assert "metadata.dagster.item_sets" in bad and "unpartitioned" in bad


def test_remove_deletes_the_secrets_stored_for_the_source_as_the_api_does(cli: Cli, canary: str) -> None:
    cli("add", "postgresql", "pg", "--host", "127.0.0.1", "--password-prompt", stdin=canary + "\n")
    cli("secrets", "set", "shared", stdin="other\n")
    assert "pg.password" in cli("secrets", "list").stdout
    assert "deleted secret 'pg.password'" in cli("remove", "pg").stdout
    remaining = cli("secrets", "list").stdout
    assert "pg.password" not in remaining and "shared" in remaining


def test_state_files_written_beside_the_sources_file_are_ignored_by_git() -> None:
    repo = CONSOLE_SCRIPT.parents[2]
    names = ["api-keys.json", "api-audit.jsonl", "published.jsonl", "sources.yaml.lock", "sources.yaml"]
    ignored = subprocess.run(["git", "check-ignore", *names], cwd=repo, capture_output=True, text=True, check=False)
    assert ignored.stdout.split() == names


def test_turning_partitioning_on_shows_landed_current_items_materialized(tmp_path: Path, odd_root: Path) -> None:
    def source(partitioned: bool) -> DataSourceConfig:
        sets = [{"name": "reports", "prefix": "reports/", "partitioned": partitioned}, {"name": "rest"}]
        return DataSourceConfig(id="files", type="local_file", name="files", config={"root": str(odd_root)},
                                metadata={"dagster": {"item_sets": sets}})

    with DagsterInstance.ephemeral() as instance:
        before = build_definitions(sources=[source(False)], workspace=str(tmp_path / "ws"))
        assert before.resolve_job_def("files_sync").execute_in_process(instance=instance).success
        after = build_definitions(sources=[source(True)], workspace=str(tmp_path / "ws"))
        result = after.resolve_job_def("files_sync").execute_in_process(instance=instance)
        assert result.success
        landed = [e.materialization.metadata["items_landed"].value for e in result.get_asset_materialization_events()
                  if "items_landed" in e.materialization.metadata]
        assert landed and not any(landed)  # nothing is landed again
        materialized = instance.get_materialized_partitions(AssetKey(["files", "reports"]))
        assert len(materialized) == 2  # reports/data[1].csv and reports/data1.csv, landed by the first sync


def test_a_relative_root_written_by_hand_is_relative_to_the_sources_file(cli: Cli, odd_root: Path) -> None:
    (cli.sources_file.parent / "by-hand").symlink_to(odd_root)
    cli.sources_file.write_text("sources:\n  - {id: hand, type: local_file, name: Hand, config: {root: by-hand}}\n")
    elsewhere = cli.cwd.parent / "elsewhere-2"
    elsewhere.mkdir()
    listed = Cli(elsewhere, cli.env)("ls", "hand", "--json").stdout  # run from another folder
    assert sorted(row["path"] for row in json.loads(listed)) == ["reports/data1.csv", "reports/data[1].csv"]
