"""Bad names, reserved folders, long names and scope, on a real file system.

One file whose name cannot land (undecodable bytes, control characters, a
trailing space, a file name of 251-255 bytes) is refused on its own and
reported; the good files are listed and land, through the connector, the CLI
and the Dagster sync. ``.lineage`` folders are never served, at any level.
``pattern`` and ``recursive`` bound every operation, not only the listing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import DataSourceError, NotFoundError, UnsafeNameError, read_provenance
from connectors.landing import landing, workspace_root
from tests.conformance import run
from tests.unit.landing.landing_support import PROVENANCE, local_connector, temporaries

GOOD = {"a.csv": b"a\n1\n", "sub/b.csv": b"b\n2\n", "x" * 250: b"longest file name\n", "d" * 255 + "/c.csv": b"c\n"}
# raw byte names (relative to root) that cannot land
BAD = [b"bad\xff.csv", b"sub\xfe/inner.csv", b"ctl\x01.csv", b"space ", b"dot.", b"x" * 251,
       b"y" * 255, "\u00e9".encode() * 126, b"sub/" + b"z" * 253]


def make_root(root: Path, bad: list[bytes] = BAD) -> Path:
    for name, data in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    for raw in bad:
        path = os.fsencode(root) + b"/" + raw
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(b"refused\n")
    return root


def test_one_bad_name_is_refused_alone_and_the_good_files_land(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")

    async def body() -> tuple[list[str], list[str], list[object]]:
        async with local_connector(root) as connector:
            listed = [item.path for item in await connector.list_items()]
            results = await connector.fetch_many(listed, str(tmp_path / "ws"))
            return listed, list(connector.refused), results

    listed, refused, results = run(body())
    assert sorted(listed) == sorted(GOOD)
    assert len(refused) == len(BAD)  # each reported, once, printable
    assert all(name.encode("utf-8") for name in refused)
    assert all(result.ok for result in results)  # type: ignore[attr-defined]
    for name, data in GOOD.items():
        assert (tmp_path / "ws" / name).read_bytes() == data
        assert read_provenance(tmp_path / "ws" / name)["identifier"] == name


@pytest.mark.parametrize("raw", BAD)
def test_fetching_a_bad_name_is_a_typed_refusal_that_writes_nothing(tmp_path: Path, raw: bytes) -> None:
    root = make_root(tmp_path / "root", [raw])
    identifier = os.fsdecode(raw)

    async def body() -> None:
        async with local_connector(root) as connector:
            with pytest.raises(UnsafeNameError):
                await connector.fetch_data(identifier, str(tmp_path / "ws"))
            with pytest.raises(UnsafeNameError):
                await connector.get_metadata(identifier)
            result = (await connector.fetch_many([identifier], str(tmp_path / "ws")))[0]
            assert isinstance(result.error, UnsafeNameError)

    run(body())
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("size", [251, 252, 253, 254, 255])
def test_file_names_whose_record_cannot_fit_are_refused_before_anything_is_written(tmp_path: Path, size: int) -> None:
    for name in ("n" * size, "folder/" + "n" * size, "\u00e9" * (size // 2) + "n" * (size % 2)):
        with pytest.raises(UnsafeNameError, match="250 bytes"), landing(tmp_path / "ws", name, source_id="s"):
            pass
    assert not (tmp_path / "ws").exists()
    with landing(tmp_path / "ws", "n" * 250, source_id="s") as target:  # the longest that fits lands, with its record
        target.write(b"ok")
        target.commit(provenance=PROVENANCE)
    assert read_provenance(tmp_path / "ws" / ("n" * 250))["size"] == 2


def test_the_cli_lists_and_fetches_all_despite_a_bad_name(tmp_path: Path) -> None:
    from tests.helpers.cli import CONSOLE_SCRIPT

    root = make_root(tmp_path / "root")
    (tmp_path / "sources.yaml").write_text(
        f"sources:\n  - id: docs\n    type: local_file\n    name: D\n    config: {{root: '{root}'}}\n")
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "connectors.cli"]
    env = {**os.environ, "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"), "DA_WORKSPACE": str(tmp_path / "ws")}
    for args in (["ls", "docs"], ["fetch", "docs", "--all"]):
        result = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert all((tmp_path / "ws" / "docs" / name).read_bytes() == data for name, data in GOOD.items())


def test_the_dagster_sync_lands_the_good_files_despite_a_bad_name(tmp_path: Path) -> None:
    from dagster import DagsterInstance

    from connectors.base import DataSourceConfig
    from da_pipelines.definitions import build_definitions

    root = make_root(tmp_path / "root")
    source = DataSourceConfig(id="docs", type="local_file", name="D", config={"root": str(root)},
                              metadata={"dagster": {"max_retries": 0}})
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        result = defs.resolve_job_def("docs_sync").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    assert all((tmp_path / "ws" / "docs" / name).read_bytes() == data for name, data in GOOD.items())


def test_lineage_folders_are_never_served_at_any_level(tmp_path: Path) -> None:
    root = tmp_path / "outer"
    forged = '{"source_id": "inner", "identifier": "data.csv", "sha256": "forged"}'
    for folder in ("", "inner/", "inner/deeper/"):
        (root / f"{folder}.lineage").mkdir(parents=True)
        (root / f"{folder}.lineage" / "data.csv.json").write_text(forged)
        (root / f"{folder}data.csv").write_text("real\n")
    (root / "inner" / ".~da-0123456789abcdef.part").write_text("a temporary")

    async def body() -> list[str]:
        async with local_connector(root) as connector:
            listed = [item.path for item in await connector.list_items()]
            for identifier in (".lineage/data.csv.json", "inner/.lineage/data.csv.json",
                               "inner/deeper/.lineage/data.csv.json", "inner/.~da-0123456789abcdef.part"):
                with pytest.raises(UnsafeNameError):
                    await connector.fetch_data(identifier, str(tmp_path / "ws" / "outer"))
            results = await connector.fetch_many(listed, str(tmp_path / "ws" / "outer"))
            assert all(r.ok for r in results)
            return listed

    assert run(body()) == ["data.csv", "inner/data.csv", "inner/deeper/data.csv"]
    landed = tmp_path / "ws" / "outer"
    assert not (landed / "inner" / ".lineage").exists() and not (landed / "inner" / "deeper" / ".lineage").exists()
    with workspace_root(tmp_path / "ws"):
        for name in ("inner/.lineage/x.csv.json", "a/b/.lineage", "inner/.lineage/data.csv.json"):
            with pytest.raises(UnsafeNameError, match="reserved"), landing(landed, name, source_id="s"):
                pass
    assert read_provenance(landed / "inner" / "data.csv")["sha256"] != "forged"
    assert temporaries(tmp_path / "ws") == []


SCOPES = [
    ({"pattern": "*.csv"}, {"a.csv", "sub/b.csv", "deep/er/c.csv"}, {"notes.txt", "sub/n.txt"}),
    ({"recursive": False}, {"a.csv", "notes.txt"}, {"sub/b.csv", "deep/er/c.csv", "sub/n.txt"}),
    ({"pattern": "sub/*"}, {"sub/b.csv", "sub/n.txt"}, {"a.csv", "notes.txt", "deep/er/c.csv"}),
    ({"pattern": "*.csv", "recursive": False}, {"a.csv"}, {"notes.txt", "sub/b.csv", "deep/er/c.csv", "sub/n.txt"}),
]


@pytest.mark.parametrize(("settings", "inside", "outside"), SCOPES)
def test_every_operation_honours_the_configured_scope(
    tmp_path: Path, settings: dict[str, object], inside: set[str], outside: set[str]
) -> None:
    root = tmp_path / "root"
    for name in inside | outside:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "alias.txt").symlink_to("a.csv")  # scope is on the identifier, not on where a link leads
    outside = outside | {"alias.txt"} if settings.get("pattern") else outside
    inside = inside | ({"alias.txt"} if not settings.get("pattern") else set())

    async def body() -> None:
        async with local_connector(root, **settings) as connector:
            assert {item.path for item in await connector.list_items()} == inside
            for identifier in sorted(outside):
                with pytest.raises(NotFoundError, match="scope"):
                    await connector.fetch_data(identifier, str(tmp_path / "ws"))
                with pytest.raises(NotFoundError, match="scope"):
                    await connector.get_metadata(identifier)
                result = (await connector.fetch_many([identifier], str(tmp_path / "ws")))[0]
                assert isinstance(result.error, NotFoundError)
            for identifier in sorted(inside):
                await connector.fetch_data(identifier, str(tmp_path / "ws"))
                await connector.get_metadata(identifier)

    run(body())
    landed = {str(p.relative_to(tmp_path / "ws")) for p in (tmp_path / "ws").rglob("*")
              if p.is_file() and ".lineage" not in p.parts}
    assert landed == inside


def test_errors_of_the_local_tree_are_typed(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", [])
    (root / "file-as-folder").write_text("x")

    async def body() -> None:
        async with local_connector(root) as connector:
            for identifier in ("file-as-folder/x.csv", "sub", "missing.csv", "sub/missing/x.csv"):
                with pytest.raises(DataSourceError):
                    await connector.fetch_data(identifier, str(tmp_path / "ws"))
            with pytest.raises(NotFoundError):
                await connector.list_items("file-as-folder")

    run(body())
