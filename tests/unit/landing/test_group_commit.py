"""GroupCommit: many small files land with one sync per group, with the guarantees of landing one by one."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import connectors.landing.group_commit as group_commit
from connectors import IntegrityError, NameCollisionError, UnsafeNameError, WorkspaceError, read_provenance
from connectors.landing.group_commit import GroupCommit
from connectors.landing.lineage import run_context
from tests.conformance import files_under, run, temporaries

PROVENANCE = {"source_type": "test", "source_uri": "mem://x", "source_version": "v1"}


def body_of(index: int) -> bytes:
    return f"file {index}\n".encode() * (index + 1)


async def land_all(workspace: Path, names: list[str], **options: Any) -> list[Any]:
    group = GroupCommit()
    try:
        return await asyncio.gather(
            *(group.land(str(workspace), name, body_of(i), source_id="s", provenance=PROVENANCE, **options)
              for i, name in enumerate(names)),
            return_exceptions=True,
        )
    finally:
        await group.close()


def test_every_file_lands_whole_with_its_record_and_run_id(tmp_path: Path) -> None:
    names = [f"d{i % 3}/f{i:03d}.txt" for i in range(60)]

    async def body() -> list[Any]:
        with run_context("run-42"):
            return await land_all(tmp_path, names)

    results = run(body())
    for i, (name, landed) in enumerate(zip(names, results, strict=True)):
        path = tmp_path / name
        assert landed.path == path and path.read_bytes() == body_of(i)
        record = read_provenance(path)
        assert record["sha256"] == hashlib.sha256(body_of(i)).hexdigest() and record["size"] == len(body_of(i))
        assert record["run_id"] == "run-42" and record["source_uri"] == "mem://x"
    assert temporaries(tmp_path) == []


def test_names_appear_only_after_a_sync_and_callers_hear_only_after_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_sync, real_rename, real_landing = group_commit.sync_filesystem, os.rename, group_commit.landing

    def sync(fd: int) -> None:
        real_sync(fd)
        events.append("sync")

    def rename(source: Any, target: Any, **kwargs: Any) -> None:
        real_rename(source, target, **kwargs)
        if str(target).startswith("f"):
            events.append(f"rename {target}")

    def landing(workspace: str, name: str, **kwargs: Any) -> Any:
        events.append(f"write {name}")
        return real_landing(workspace, name, **kwargs)

    monkeypatch.setattr(group_commit, "sync_filesystem", sync)
    monkeypatch.setattr(group_commit, "landing", landing)
    monkeypatch.setattr(os, "rename", rename)
    names = [f"f{i:02d}" for i in range(40)]

    async def body() -> None:
        group = GroupCommit()

        async def one(i: int, name: str) -> None:
            await asyncio.sleep(i % 5 * 0.001)  # arrivals spread over several groups
            await group.land(str(tmp_path), name, body_of(i), source_id="s", provenance=PROVENANCE)
            events.append(f"landed {name}")

        await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))
        await group.close()

    run(body())
    for name in names:
        write, renamed, landed = (events.index(f"{step} {name}") for step in ("write", "rename", "landed"))
        assert "sync" in events[write:renamed], f"{name} was renamed before its data was synced"
        assert "sync" in events[renamed:landed], f"{name} was reported before its name was synced"
    assert events.count("sync") < len(names)  # grouped: not one sync (let alone three fsyncs) per file


def test_one_bad_file_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where a file should land

    def refuse() -> None:
        raise IntegrityError("checksum mismatch")

    async def body() -> list[Any]:
        group = GroupCommit()
        try:
            return await asyncio.gather(
                group.land(str(tmp_path), "good1.txt", b"1", source_id="s", provenance=PROVENANCE),
                group.land(str(tmp_path), "../escape.txt", b"x", source_id="s", provenance=PROVENANCE),
                group.land(str(tmp_path), "taken", b"x", source_id="s", provenance=PROVENANCE),
                group.land(str(tmp_path), "bad.txt", b"x", source_id="s", provenance=PROVENANCE, check=refuse),
                group.land(str(tmp_path), "good2.txt", b"2", source_id="s", provenance=PROVENANCE),
                return_exceptions=True,
            )
        finally:
            await group.close()

    good1, escape, taken, bad, good2 = run(body())
    assert isinstance(escape, UnsafeNameError) and isinstance(taken, NameCollisionError)
    assert isinstance(bad, IntegrityError) and not (tmp_path / "bad.txt").exists()
    assert good1.path.read_bytes() == b"1" and good2.path.read_bytes() == b"2"
    assert sorted(p.name for p in files_under(tmp_path)) == ["good1.txt", "good2.txt"]
    assert temporaries(tmp_path) == [] and not (tmp_path.parent / "escape.txt").exists()


def test_a_failed_sync_fails_its_files_and_names_none_of_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_disk(fd: int) -> None:  # a real EIO cannot be produced on demand; this is the kernel's answer
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(group_commit, "sync_filesystem", broken_disk)
    results = run(land_all(tmp_path, [f"f{i}.txt" for i in range(10)]))
    assert all(isinstance(r, WorkspaceError) and "Input/output error" in str(r) for r in results)
    assert files_under(tmp_path) == [] and temporaries(tmp_path) == []


def test_callers_that_give_up_leave_a_clean_workspace(tmp_path: Path) -> None:
    names = [f"f{i:02d}.txt" for i in range(30)]

    async def body() -> None:
        group = GroupCommit()
        tasks = [asyncio.ensure_future(group.land(str(tmp_path), n, body_of(i), source_id="s", provenance=PROVENANCE))
                 for i, n in enumerate(names)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await group.close()

    run(body())
    assert temporaries(tmp_path) == []
    for path in files_under(tmp_path):  # whatever landed is whole and recorded
        index = names.index(path.name)
        assert path.read_bytes() == body_of(index) and read_provenance(path)["size"] == len(body_of(index))
