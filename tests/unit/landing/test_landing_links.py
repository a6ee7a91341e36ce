"""A link planted anywhere from the workspace root down is never followed (real file system).

The framework declares the workspace root (``workspace_root``); a connector
lands into ``<root>/<source id>``. A symlink at the source's folder, at any
folder below it, in the record tree, at the lock files, at the target or at its
record: the landing refuses it (typed error) or replaces the link itself; it
never writes, reads or creates anything outside.

docs/RELIABILITY.md row 7.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from connectors import DataSourceError, NotFoundError, UnsafeNameError, WorkspaceError, read_provenance
from connectors.landing import find_provenance, landing, sweep_workspace, workspace_root
from connectors.landing.lineage import _lock_name, read_record
from tests.conformance import run
from tests.unit.landing.landing_support import PROVENANCE, local_connector, snapshot, temporaries

NAME = "sub/deeper/f.csv"
DATA = b"x,y\n1,2\n"
# where a link is planted, relative to <root>; "{lock}" is the item's lock file
POSITIONS = [
    "src",
    "src/sub",
    "src/sub/deeper",
    "src/.lineage",
    "src/.lineage/sub",
    "src/.lineage/sub/deeper",
    "src/.lineage/.locks",
    "src/.lineage/.locks/{lock}",
    "src/sub/deeper/f.csv",
    "src/.lineage/sub/deeper/f.csv.json",
]
FILE_POSITIONS = {"src/.lineage/.locks/{lock}", "src/sub/deeper/f.csv", "src/.lineage/sub/deeper/f.csv.json"}
LINK_KINDS = ["absolute", "relative", "dangling"]


def plant(root: Path, position: str, kind: str, outside: Path) -> Path:
    """A link at ``root/position`` to a folder (or file) outside ``root``."""
    link = root / position.format(lock=_lock_name(NAME))
    link.parent.mkdir(parents=True, exist_ok=True)
    target = outside / ("victim.txt" if position in FILE_POSITIONS else "folder")
    if kind == "dangling":
        target = outside / "never-created"
    link.symlink_to(os.path.relpath(target, link.parent) if kind == "relative" else target)
    return link


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "folder" / "sub" / "deeper").mkdir(parents=True)
    (outside / "folder" / "sub" / "deeper" / "f.csv").write_bytes(b"outside data")
    (outside / "folder" / "keep.txt").write_bytes(b"outside")
    (outside / "victim.txt").write_bytes(b"do not touch")
    return outside


def land_directly(root: Path) -> object:
    with landing(root / "src", NAME, source_id="s") as target:
        target.write(DATA)
        return target.commit(provenance=PROVENANCE, expected_size=len(DATA)).path


def fetch_local(root: Path, data_root: Path, many: bool) -> object:
    async def body() -> object:
        async with local_connector(data_root) as connector:
            if many:
                result = (await connector.fetch_many([NAME], str(root / "src")))[0]
                if result.error is not None:
                    raise result.error
                return result.path
            return await connector.fetch_data(NAME, str(root / "src"))

    return run(body())


def outcome(action: object) -> object:
    try:
        return action()  # type: ignore[operator]
    except DataSourceError as exc:
        return exc


@pytest.mark.parametrize("way", ["landing", "fetch_data", "fetch_many"])
@pytest.mark.parametrize("kind", LINK_KINDS)
@pytest.mark.parametrize("position", POSITIONS)
def test_a_link_at_any_position_is_never_followed(
    tmp_path: Path, outside: Path, position: str, kind: str, way: str
) -> None:
    root = tmp_path / "ws"
    data_root = tmp_path / "data"
    (data_root / "sub" / "deeper").mkdir(parents=True)
    (data_root / NAME).write_bytes(DATA)
    plant(root, position, kind, outside)
    before = snapshot(outside)
    actions = {"landing": lambda: land_directly(root), "fetch_data": lambda: fetch_local(root, data_root, False),
               "fetch_many": lambda: fetch_local(root, data_root, True)}
    with workspace_root(root):
        result = outcome(actions[way])
    assert snapshot(outside) == before  # nothing written, created or removed outside
    assert not (outside / "never-created").exists()
    if position in FILE_POSITIONS and "locks" not in position:
        # a link at the target or at its record is replaced, never written through
        assert not isinstance(result, Exception), result
        assert (root / "src" / NAME).read_bytes() == DATA and not (root / "src" / NAME).is_symlink()
        with workspace_root(root):
            assert read_provenance(root / "src" / NAME)["sha256"] == hashlib.sha256(DATA).hexdigest()
    else:
        assert isinstance(result, UnsafeNameError), result  # a link in the way: refused, typed
        assert "symlink" in str(result) or "not a regular file" in str(result)
    assert temporaries(root) == []


@pytest.mark.parametrize("position", [p for p in POSITIONS if p != "src"])
def test_without_a_declared_root_the_folder_given_is_the_trusted_root(
    tmp_path: Path, outside: Path, position: str
) -> None:
    root = tmp_path / "ws"
    plant(root, position, "absolute", outside)
    before = snapshot(outside)
    outcome(lambda: land_directly(root))
    assert snapshot(outside) == before


def test_the_source_folder_as_a_link_is_refused_by_the_cli_and_nothing_lands_outside(
    tmp_path: Path, outside: Path
) -> None:
    import subprocess
    import sys

    from tests.helpers.cli import CONSOLE_SCRIPT

    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "a.csv").write_bytes(DATA)
    (tmp_path / "sources.yaml").write_text(
        f"sources:\n  - id: linked\n    type: local_file\n    name: L\n    config: {{root: {data_root}}}\n")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "linked").symlink_to(outside / "folder")
    before = snapshot(outside)
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "connectors.cli"]
    env = {**os.environ, "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"), "DA_WORKSPACE": str(tmp_path / "ws")}
    result = subprocess.run([*command, "fetch", "linked", "--all"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "symlink" in result.stderr
    assert snapshot(outside) == before


def test_the_source_folder_as_a_link_fails_the_dagster_sync_and_nothing_lands_outside(
    tmp_path: Path, outside: Path
) -> None:
    from dagster import DagsterInstance

    from connectors.base import DataSourceConfig
    from da_pipelines.definitions import build_definitions

    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "a.csv").write_bytes(DATA)
    source = DataSourceConfig(id="linked", type="local_file", name="L", config={"root": str(data_root)},
                              metadata={"dagster": {"max_retries": 0}})
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "linked").symlink_to(outside / "folder")
    before = snapshot(outside)
    defs = build_definitions(sources=[source], workspace=str(tmp_path / "ws"))
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        result = defs.resolve_job_def("linked_sync").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert snapshot(outside) == before


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
@pytest.mark.parametrize("position", ["src", "src/.lineage", "src/.lineage/sub", "src/.lineage/sub/deeper/f.csv.json"])
def test_records_behind_a_link_are_never_read(
    tmp_path: Path, outside: Path, position: str, openat2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.landing import syscalls

    if not openat2:  # the walk, one folder at a time, used where the kernel has no openat2
        monkeypatch.setattr(syscalls, "_openat2_works", False)
    root = tmp_path / "ws"
    forged = outside / "folder"
    (forged / ".lineage" / "sub" / "deeper").mkdir(parents=True)
    (forged / "sub" / "deeper" / "f.csv.json").write_text('{"source_id": "forged"}')
    (forged / ".lineage" / "sub" / "deeper" / "f.csv.json").write_text('{"source_id": "forged"}')
    (forged / "deeper").mkdir()
    (forged / "deeper" / "f.csv.json").write_text('{"source_id": "forged"}')
    (outside / "victim.txt").write_text('{"source_id": "forged"}')
    plant(root, position, "absolute", outside)
    with workspace_root(root):
        assert read_record(root / "src", NAME) is None
        assert list(find_provenance(root / "src")) == []
        with pytest.raises((NotFoundError, UnsafeNameError)):
            read_provenance(root / "src" / NAME, root / "src")


def test_a_workspace_outside_the_declared_root_is_refused_naming_both(tmp_path: Path) -> None:
    with workspace_root(tmp_path / "ws"), pytest.raises(WorkspaceError) as caught:
        with landing(tmp_path / "elsewhere" / "src", "a.csv", source_id="s"):
            pass
    assert str(tmp_path / "elsewhere" / "src") in str(caught.value) and str(tmp_path / "ws") in str(caught.value)
    with workspace_root(tmp_path / "ws"), pytest.raises(WorkspaceError):
        sweep_workspace(tmp_path / "ws" / ".." / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_a_group_commit_applies_each_callers_declared_root(tmp_path: Path, outside: Path) -> None:
    import asyncio

    from connectors.landing.group_commit import GroupCommit

    root = tmp_path / "ws"
    root.mkdir()
    (root / "src").symlink_to(outside / "folder")
    before = snapshot(outside)

    async def body() -> list[object]:
        group = GroupCommit()

        async def plain() -> object:  # starts the group's flusher, in a context with no declared root
            return await group.land(str(tmp_path / "lib"), "a.csv", DATA, source_id="s", provenance=PROVENANCE)

        async def declared() -> object:
            with workspace_root(root):
                return await group.land(str(root / "src"), "b.csv", DATA, source_id="s", provenance=PROVENANCE)

        try:
            return list(await asyncio.gather(plain(), declared(), return_exceptions=True))
        finally:
            await group.close()

    landed, refused = run(body())
    assert not isinstance(landed, Exception) and isinstance(refused, UnsafeNameError)
    assert snapshot(outside) == before
