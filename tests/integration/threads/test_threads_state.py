"""Thread folders hold only data; records in the state folder; attach semantics (docs/RELIABILITY.md rows 38-40)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.errors import ConfigurationError
from connectors.registry import SourceRegistry
from connectors.threads import (
    Attachment,
    ThreadJanitor,
    ThreadRecords,
    UnknownThreadError,
    attach_to_thread,
    attached_files,
    end_thread,
)


class Setup:
    def __init__(self, tmp_path: Path, state: Path) -> None:
        self.root = tmp_path / "docs"
        self.root.mkdir()
        (self.root / "a.csv").write_text("x\n1\n")
        (self.root / "b.csv").write_text("y\n2\n")
        self.registry = SourceRegistry(tmp_path / "sources.yaml")
        self.registry.add({"id": "docs", "type": "local_file", "name": "Docs", "config": {"root": str(self.root)}})
        self.base = tmp_path / "workspace"
        self.state = state

    def attach(self, thread_id: str, *paths: str, create: bool = False) -> Attachment:
        async def run() -> Attachment:
            async with self.registry:
                return await attach_to_thread(self.registry, self.base, thread_id,
                                              [{"source_id": "docs", "path": p} for p in paths],
                                              create=create, state_dir=self.state)

        return asyncio.run(run())

    def change_source(self, name: str, text: str) -> None:
        path = self.root / name
        path.write_text(text)
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))  # a newer version, surely


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path, tmp_path / "state")


@pytest.fixture
def other_device(tmp_path: Path) -> Iterator[Setup]:
    """The state folder on another file system (/dev/shm, tmpfs): attached files are copied, not linked."""
    state = Path("/dev/shm") / f"da-state-{uuid.uuid4().hex}"
    assert os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev
    try:
        yield Setup(tmp_path, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_the_thread_folder_holds_only_data_and_our_records_live_in_the_state_folder(setup: Setup) -> None:
    attached = setup.attach("thread-1", "a.csv", "b.csv", create=True)
    assert everything_under(setup.base / "thread-1") == ["a.csv", "b.csv"]
    assert everything_under(setup.state / "threads" / "thread-1") == [
        ".lineage", ".lineage/a.csv.json", ".lineage/b.csv.json", ".lock", "staging"]
    records = ThreadRecords(setup.state, "thread-1")
    assert records.read("a.csv") is not None and records.read("a.csv")["identifier"] == "a.csv"  # type: ignore[index]
    assert attached_files(setup.base, "thread-1", setup.state).manifest() == attached.manifest()
    (setup.base / "thread-1" / "b.csv").unlink()  # the agent removed one: it is no longer attached
    assert [f.name for f in attached_files(setup.base, "thread-1", setup.state).files] == ["a.csv"]


def test_a_state_folder_inside_the_workspace_is_refused(setup: Setup) -> None:
    setup.state = setup.base / ".da-state"
    with pytest.raises(ConfigurationError, match="inside the workspace base"):
        setup.attach("t", "a.csv", create=True)
    assert not setup.base.exists() or everything_under(setup.base) == []


def test_records_of_ended_threads_are_swept(setup: Setup) -> None:
    for thread_id in ("t1", "t2", "t3"):
        setup.attach(thread_id, "a.csv", create=True)
    shutil.rmtree(setup.base / "t1")  # DeepAnalyze cleaned the expired thread up

    async def janitor_round() -> None:
        async def nothing() -> None:
            return None

        await ThreadJanitor(nothing, base_dir=setup.base, state_dir=setup.state).tick()

    asyncio.run(janitor_round())
    assert sorted(os.listdir(setup.state / "threads")) == ["t2", "t3"]
    asyncio.run(end_thread(setup.base, "t2", state_dir=setup.state))  # the cleanup route says so at once
    assert sorted(os.listdir(setup.state / "threads")) == ["t3"]


def test_an_unknown_thread_is_refused_unless_asked_to_create_it(setup: Setup) -> None:
    with pytest.raises(UnknownThreadError, match="unknown or ended thread 'thread-x'"):
        setup.attach("thread-x", "a.csv")
    assert not (setup.base / "thread-x").exists() and not (setup.state / "threads" / "thread-x").exists()
    assert [f.name for f in setup.attach("thread-x", "a.csv", create=True).files] == ["a.csv"]


def test_the_same_version_again_is_the_file_already_there(setup: Setup) -> None:
    first = setup.attach("t", "a.csv", create=True).files[0]
    before = os.stat(setup.base / "t" / "a.csv")
    again = setup.attach("t", "a.csv", "a.csv")
    assert [(f.name, f.status) for f in again.files] == [("a.csv", "unchanged"), ("a.csv", "unchanged")]
    after = os.stat(setup.base / "t" / "a.csv")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not copied again
    assert everything_under(setup.base / "t") == ["a.csv"] and again.files[0].version == first.version
    assert "(already attached, unchanged)" in again.manifest()


def test_a_newer_version_replaces_our_own_unmodified_copy(setup: Setup) -> None:
    setup.attach("t", "a.csv", create=True)
    setup.change_source("a.csv", "x\n1\n2\n")
    newer = setup.attach("t", "a.csv").files[0]
    assert (newer.name, newer.status) == ("a.csv", "replaced")
    assert (setup.base / "t" / "a.csv").read_text() == "x\n1\n2\n" and everything_under(setup.base / "t") == ["a.csv"]
    assert "(replaces the earlier version of this file)" in newer.manifest_line()
    assert ThreadRecords(setup.state, "t").read("a.csv")["sha256"] != "" and setup.attach("t", "a.csv").files[
        0].status == "unchanged"


@pytest.mark.parametrize("change", ["content", "mtime only"])
def test_a_newer_version_never_replaces_a_copy_changed_since(setup: Setup, change: str) -> None:
    setup.attach("t", "a.csv", create=True)
    ours = setup.base / "t" / "a.csv"
    if change == "content":
        ours.write_text("the agent edited this\n")
    else:  # same bytes, touched: it may be the agent's now
        os.utime(ours, ns=(ours.stat().st_atime_ns, ours.stat().st_mtime_ns + 1))
    edited = ours.read_bytes()
    setup.change_source("a.csv", "x\n9\n")
    newer = setup.attach("t", "a.csv").files[0]
    assert (newer.name, newer.status, newer.wanted) == ("a-docs.csv", "attached", "a.csv")
    assert ours.read_bytes() == edited and (setup.base / "t" / "a-docs.csv").read_text() == "x\n9\n"
    assert "- a-docs.csv: a.csv from source docs" in newer.manifest_line()
    assert newer.manifest_line().splitlines()[0].endswith("(named so: a.csv is another file)")


def test_a_name_taken_by_a_file_we_did_not_land_gets_the_unique_name(setup: Setup) -> None:
    (setup.base / "t").mkdir(parents=True)
    (setup.base / "t" / "a.csv").write_text("the user's upload\n")
    first = setup.attach("t", "a.csv").files[0]
    assert (first.name, first.wanted) == ("a-docs.csv", "a.csv")
    setup.change_source("a.csv", "x\n7\n")
    newer = setup.attach("t", "a.csv").files[0]
    assert (newer.name, newer.status) == ("a-docs.csv", "replaced")  # ours, never the user's
    assert (setup.base / "t" / "a.csv").read_text() == "the user's upload\n"


def test_across_file_systems_files_are_copied_with_the_same_semantics(other_device: Setup) -> None:
    setup = other_device
    setup.attach("t", "a.csv", create=True)
    assert everything_under(setup.base / "t") == ["a.csv"]
    assert (setup.base / "t" / "a.csv").read_text() == "x\n1\n"
    assert setup.attach("t", "a.csv").files[0].status == "unchanged"
    setup.change_source("a.csv", "x\n3\n")
    assert setup.attach("t", "a.csv").files[0].status == "replaced"
    assert (setup.base / "t" / "a.csv").read_text() == "x\n3\n" and everything_under(setup.base / "t") == ["a.csv"]


def test_a_failed_reference_leaves_no_file_and_no_record(setup: Setup) -> None:
    setup.attach("t", "a.csv", create=True)
    with pytest.raises(Exception, match="missing.csv"):
        setup.attach("t", "b.csv", "missing.csv")
    assert everything_under(setup.base / "t") == ["a.csv"]
    assert [r["attached_as"] for r in ThreadRecords(setup.state, "t").attached()] == ["a.csv"]




def test_a_removed_copy_loses_its_record_and_the_item_comes_back_under_its_name(setup: Setup) -> None:
    setup.attach("t", "a.csv", create=True)
    (setup.base / "t" / "a.csv").unlink()
    setup.change_source("a.csv", "x\n5\n")
    again = setup.attach("t", "a.csv").files[0]
    assert (again.name, again.status) == ("a.csv", "attached")
    assert [r["attached_as"] for r in ThreadRecords(setup.state, "t").attached()] == ["a.csv"]


def test_without_da_state_dir_the_records_go_beside_the_registrys_sources_file(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DA_STATE_DIR")
    setup.state = None  # type: ignore[assignment]
    setup.attach("t", "a.csv", create=True)
    beside = setup.registry.path.with_name("da-sources-state")
    assert (beside / "threads" / "t" / ".lineage" / "a.csv.json").is_file()
    assert oct(beside.stat().st_mode & 0o777) == "0o700"
    shutil.rmtree(setup.base / "t")

    async def janitor_round() -> None:
        await ThreadJanitor(setup.registry, base_dir=setup.base).tick()

    asyncio.run(janitor_round())
    assert os.listdir(beside / "threads") == []
