"""GroupCommit when a later group's sync fails: the group before it is already renamed and recorded.

That sync was to make the earlier group durable. Its callers must hear the
truth: "landed" for the files that fsyncs then make durable one by one, an
error for the others, whose record is withdrawn so the next sync fetches them
again. Real files on the real file system; only the file-system sync (and, in
the second test, fsync) answers EIO, since a real EIO cannot be produced on demand.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import connectors.landing.group_commit as group_commit
from connectors import WorkspaceError, read_provenance
from connectors.landing.group_commit import GroupCommit
from connectors.landing.lineage import record_path
from tests.conformance import files_under, run, temporaries

PROVENANCE = {"source_type": "test", "source_uri": "mem://x", "source_version": "v1"}
FIRST = [f"a/first{i}.txt" for i in range(5)]
SECOND = [f"a/second{i}.txt" for i in range(5)]


def eio() -> OSError:
    return OSError(errno.EIO, os.strerror(errno.EIO))


def second_sync_fails(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The first sync works but waits for the returned event; every later one answers EIO."""
    real_sync, calls, release = group_commit.sync_filesystem, [], threading.Event()

    def sync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 1:
            raise eio()
        assert release.wait(30), "the second group never arrived"
        real_sync(fd)

    monkeypatch.setattr(group_commit, "sync_filesystem", sync)
    return release


async def two_groups(workspace: Path, release: threading.Event) -> tuple[list[Any], list[Any]]:
    """FIRST lands as one group; SECOND arrives while FIRST's trip is syncing, so it is the next group."""
    group = GroupCommit()

    def land(name: str) -> asyncio.Future[Any]:
        return asyncio.ensure_future(group.land(str(workspace), name, name.encode(), source_id="s",
                                                provenance=PROVENANCE))

    first = [land(n) for n in FIRST]
    while not temporaries(workspace):  # FIRST's trip has begun: its temporaries are written
        await asyncio.sleep(0.001)
    second = [land(n) for n in SECOND]
    await asyncio.sleep(0.01)  # SECOND is queued behind the running trip
    release.set()
    try:
        return (list(await asyncio.gather(*first, return_exceptions=True)),
                list(await asyncio.gather(*second, return_exceptions=True)))
    finally:
        await group.close()


def test_when_the_next_sync_fails_the_renamed_group_is_made_durable_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = second_sync_fails(monkeypatch)
    fsynced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd))[1])

    first, second = run(two_groups(tmp_path, release))

    # the earlier group: renamed before the failure, made durable one by one, so it did land
    for name, landed in zip(FIRST, first, strict=True):
        assert not isinstance(landed, BaseException), f"{name} was renamed and fsynced, yet reported {landed!r}"
        assert (tmp_path / name).read_bytes() == name.encode()
        assert read_provenance(tmp_path / name)["size"] == len(name.encode())
    assert len(fsynced) >= 4 * len(FIRST)  # data, folder, record, record folder: each file's own
    # the failed sync's own group: not one name leads to its data
    assert all(isinstance(r, WorkspaceError) and "Input/output error" in str(r) for r in second)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files_under(tmp_path)) == sorted(FIRST)
    assert temporaries(tmp_path) == []


def test_a_renamed_group_that_cannot_be_made_durable_fails_and_loses_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = second_sync_fails(monkeypatch)

    def broken_fsync(fd: int) -> None:  # group commit itself never fsyncs; only its fallback does
        raise eio()

    monkeypatch.setattr(os, "fsync", broken_fsync)

    first, second = run(two_groups(tmp_path, release))

    for name, result in zip(FIRST, first, strict=True):
        assert isinstance(result, WorkspaceError) and "Input/output error" in str(result), result
        assert name in str(result)
        # no record: the next sync sees no landed version and fetches the file again
        assert not record_path(tmp_path, name).exists()
    assert all(isinstance(r, WorkspaceError) for r in second)
    assert not any((tmp_path / name).exists() for name in SECOND)
    assert temporaries(tmp_path) == []
