"""GroupCommit's batching: the last group made durable in its own trip, folders opened once per group.

Real files on the real file system; only the file-system sync is wrapped (to count it, or to answer EIO,
since a real EIO cannot be produced on demand).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import connectors.landing.group_commit as group_commit
from connectors import NameCollisionError, WorkspaceError, read_provenance
from connectors.landing.atomic import landing
from connectors.landing.group_commit import GroupCommit
from connectors.landing.lineage import record_path
from connectors.landing.names import LINEAGE_DIR
from connectors.landing.root import folders_held, open_workspace_folder
from tests.conformance import files_under, run, temporaries

PROVENANCE = {"source_type": "test", "source_uri": "mem://x", "source_version": "v1"}
NAMES = [f"d{i % 4}/f{i:03d}.txt" for i in range(40)]


async def land_at_once(workspace: Path, names: list[str]) -> list[Any]:
    group = GroupCommit()
    try:
        return await asyncio.gather(
            *(group.land(str(workspace), name, name.encode(), source_id="s", provenance=PROVENANCE)
              for name in names),
            return_exceptions=True,
        )
    finally:
        await group.close()


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every trip to a thread and every file-system sync, in order."""
    events: list[str] = []
    real_finish, real_sync = group_commit.finish_in_thread, group_commit.sync_filesystem

    async def finish(function: Any, executor: Any = None) -> Any:
        events.append("trip")
        return await real_finish(function, executor)

    def sync(fd: int) -> None:
        real_sync(fd)
        events.append("sync")

    monkeypatch.setattr(group_commit, "finish_in_thread", finish)
    monkeypatch.setattr(group_commit, "sync_filesystem", sync)
    return events


def test_the_last_group_is_made_durable_in_its_own_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = count_trips(monkeypatch)
    results = run(land_at_once(tmp_path, NAMES))
    assert events == ["trip", "sync", "sync"]  # data synced, renamed and recorded, synced again: one trip
    for name, landed in zip(NAMES, results, strict=True):
        assert landed.path == tmp_path / name and (tmp_path / name).read_bytes() == name.encode()
        record = read_provenance(tmp_path / name)
        assert record["sha256"] == hashlib.sha256(name.encode()).hexdigest()
    assert sorted(files_under(tmp_path)) == sorted(tmp_path / name for name in NAMES)
    assert temporaries(tmp_path) == []


def test_a_failed_last_sync_makes_each_file_durable_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_sync, calls = group_commit.sync_filesystem, []

    def sync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 1:  # the data's sync works; the one after the renames answers EIO
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_sync(fd)

    monkeypatch.setattr(group_commit, "sync_filesystem", sync)
    results = run(land_at_once(tmp_path, NAMES))
    assert len(calls) == 2
    assert all(landed.path == tmp_path / name for name, landed in zip(NAMES, results, strict=True))
    assert all(read_provenance(tmp_path / name)["size"] == len(name) for name in NAMES)  # a record per file


def test_a_file_that_cannot_be_made_durable_fails_and_its_record_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sync, real_fsync, calls = group_commit.sync_filesystem, os.fsync, []

    def sync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_sync(fd)

    def fsync(fd: int) -> None:
        if len(calls) > 1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(group_commit, "sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", fsync)
    results = run(land_at_once(tmp_path, NAMES[:5]))
    assert all(isinstance(result, WorkspaceError) for result in results)
    # never a record without a durable file: each failed file's record is withdrawn
    assert not any(record_path(tmp_path, name).exists() for name in NAMES[:5])
    assert temporaries(tmp_path) == []


def test_a_held_folder_removed_by_a_landing_is_not_handed_out_again(tmp_path: Path) -> None:
    (tmp_path / LINEAGE_DIR / "d.json").mkdir(parents=True)  # an empty record folder, left behind
    with folders_held():
        os.close(open_workspace_folder(tmp_path, [LINEAGE_DIR, "d.json"], create=False))  # now held
        with landing(tmp_path, "d", source_id="s") as land:  # removes the empty folder: d's record goes there
            land.write(b"d")
            land.commit(provenance=PROVENANCE, durable=False)
        with pytest.raises(NameCollisionError):  # a file now: never the removed folder's descriptor
            os.close(open_workspace_folder(tmp_path, [LINEAGE_DIR, "d.json"], create=False))
    assert read_provenance(tmp_path / "d")["size"] == 1


def test_folders_held_opens_each_folder_once_and_closes_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECTORY:
            opened.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.setattr(os, "open", counting_open)
    before = len(os.listdir("/proc/self/fd"))
    with folders_held():
        for _ in range(5):
            os.close(open_workspace_folder(tmp_path, ["a", "b"], create=True))
    assert opened.count("b") == 1  # one walk from the root, then copies
    assert len(os.listdir("/proc/self/fd")) == before  # nothing held after the block
