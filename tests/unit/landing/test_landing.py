"""Landing files: atomicity, cleanup on every failure, stale temporaries, collisions.

docs/RELIABILITY.md rows 6, 21-22.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import (
    DataSourceConfig,
    IntegrityError,
    NameCollisionError,
    WorkspaceError,
    on_progress,
    read_provenance,
)
from connectors.landing.atomic import landing
from connectors.landing.names import TEMP_PREFIX
from connectors.local_file import LocalFileConnector
from tests.helpers.tmpfs import tmpfs

PROVENANCE = {"source_type": "local_file", "source_uri": "file:///x", "source_version": "v1"}


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def land(workspace: Path, name: str, data: bytes, identifier: str | None = None) -> Path:
    with landing(workspace, name, source_id="s", identifier=identifier) as target:
        target.write(data)
        return target.commit(provenance=PROVENANCE, expected_size=len(data)).path


def test_commit_lands_the_file_and_its_record(tmp_path: Path) -> None:
    path = land(tmp_path, "a/b.csv", b"x,y\n")
    assert path.read_bytes() == b"x,y\n"
    record = read_provenance(path)
    assert record["sha256"] == hashlib.sha256(b"x,y\n").hexdigest() and record["size"] == 4
    assert record["run_id"] is None and record["identifier"] == "a/b.csv"
    assert temporaries(tmp_path) == []


def test_size_mismatch_is_an_integrity_error_and_keeps_the_old_version(tmp_path: Path) -> None:
    land(tmp_path, "f.bin", b"old")
    with pytest.raises(IntegrityError, match="received 3 bytes"), \
            landing(tmp_path, "f.bin", source_id="s") as target:
        target.write(b"new")
        target.commit(provenance=PROVENANCE, expected_size=10)
    assert (tmp_path / "f.bin").read_bytes() == b"old"
    assert read_provenance(tmp_path / "f.bin")["size"] == 3 and temporaries(tmp_path) == []


def test_an_exception_while_writing_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), landing(tmp_path, "g.bin", source_id="s") as target:
        target.write(b"partial")
        raise RuntimeError("network went away")
    assert list(tmp_path.rglob("g.bin")) == [] and temporaries(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), so ENOSPC is the kernel's, not a fake."""
    with tmpfs(tmp_path / "tiny") as mount:
        yield mount


@pytest.mark.root
def test_disk_full_is_a_clear_error_and_removes_the_partial(tiny_disk: Path) -> None:
    land(tiny_disk, "keep.bin", b"previous")
    with pytest.raises(WorkspaceError, match="disk full"):
        land(tiny_disk, "keep.bin", b"\1" * (2 * 1024 * 1024))
    assert (tiny_disk / "keep.bin").read_bytes() == b"previous"
    assert temporaries(tiny_disk) == []


@pytest.mark.root
def test_no_room_for_the_record_fails_before_the_file_changes(tiny_disk: Path) -> None:
    land(tiny_disk, "keep.bin", b"previous")
    page = os.statvfs(tiny_disk).f_bsize
    with open(tiny_disk / "filler", "wb") as filler:  # leave exactly one page: the new data fits, its record not
        filler.write(b"\0" * ((os.statvfs(tiny_disk).f_bavail - 1) * page))
    with pytest.raises(WorkspaceError, match="disk full"):
        land(tiny_disk, "keep.bin", b"\2" * page)
    assert (tiny_disk / "keep.bin").read_bytes() == b"previous"
    assert read_provenance(tiny_disk / "keep.bin")["size"] == len(b"previous")
    assert temporaries(tiny_disk) == []


def test_two_names_folding_to_one_file_are_refused(tmp_path: Path) -> None:
    # what a case- or normalization-insensitive file system does to 'X.CSV' vs 'x.csv'
    land(tmp_path, "x.csv", b"one", identifier="X.CSV")
    with pytest.raises(NameCollisionError, match="would overwrite"):
        land(tmp_path, "x.csv", b"two", identifier="x.csv")
    assert (tmp_path / "x.csv").read_bytes() == b"one"


def test_a_file_where_a_folder_is_needed_is_a_collision(tmp_path: Path) -> None:
    land(tmp_path, "a", b"file")
    with pytest.raises(NameCollisionError, match="folder is needed"):
        land(tmp_path, "a/b", b"nested")
    land(tmp_path, "d/e", b"nested")
    with pytest.raises(NameCollisionError, match="is a folder"):
        land(tmp_path, "d", b"file")


def test_stale_temporaries_are_swept_but_live_ones_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    stale = folder / f"{TEMP_PREFIX}dead.part"
    stale.write_bytes(b"left by a killed process")
    live = folder / f"{TEMP_PREFIX}live.part"
    live.write_bytes(b"being written")
    with open(live, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        land(tmp_path, "sub/new.bin", b"x")
    assert not stale.exists() and live.exists()


def test_record_temporaries_left_by_a_killed_writer_are_swept(tmp_path: Path) -> None:
    records = tmp_path / ".lineage" / "sub"
    records.mkdir(parents=True)
    stale = records / f"{TEMP_PREFIX}dead.part"
    stale.write_text('{"half": ')
    land(tmp_path, "sub/new.bin", b"x")
    assert not stale.exists() and read_provenance(tmp_path / "sub" / "new.bin")["size"] == 1
    assert temporaries(tmp_path) == []


def _big_source(tmp_path: Path, size: int) -> LocalFileConnector:
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "big.bin", "wb") as out:
        out.truncate(size)  # sparse: quick to make, copied for real
    return LocalFileConnector(DataSourceConfig(id="s", type="local_file", name="S", config={"root": str(root)}))


def test_cancelling_a_fetch_leaves_nothing(tmp_path: Path) -> None:
    connector = _big_source(tmp_path, 512 * 1024 * 1024)
    workspace = tmp_path / "ws"

    async def fetch_then_cancel() -> None:
        # connected throughout (disconnected only after every thread has ended): a copy that ignored the
        # cancellation would land its file, rather than fail for want of a connection
        await connector.connect()
        loop = asyncio.get_running_loop()
        first, cancelled = threading.Event(), threading.Event()

        def progress(identifier: str, done: int, total: int | None) -> None:
            if not first.is_set():  # the copy is under way: one chunk is in, more are to come
                first.set()
                loop.call_soon_threadsafe(fetch.cancel)
                # hold the copy until the cancellation has reached fetch_data (its task ends with it)
                assert cancelled.wait(30), "the cancellation never reached the fetch"

        with on_progress(progress):
            fetch = asyncio.ensure_future(connector.fetch_data("big.bin", str(workspace)))
        fetch.add_done_callback(lambda _: cancelled.set())
        with pytest.raises(asyncio.CancelledError):
            await fetch

    asyncio.run(fetch_then_cancel())  # returns once the default executor's threads (the copy) have ended
    try:
        assert not (workspace / "big.bin").exists() and temporaries(workspace) == []
    finally:
        asyncio.run(connector.disconnect())


KILL_MID_FETCH = """
import asyncio, os, signal, sys
from connectors import DataSourceConfig, on_progress
from connectors.local_file import LocalFileConnector
config = DataSourceConfig(id="s", type="local_file", name="S", config={"root": sys.argv[1]})
def die(identifier, done, total):
    os.kill(os.getpid(), signal.SIGKILL)
async def main():
    async with LocalFileConnector(config) as c:
        with on_progress(die):
            await c.fetch_data("big.bin", sys.argv[2])
asyncio.run(main())
"""


def test_a_fetch_killed_with_sigkill_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    connector = _big_source(tmp_path, 200 * 1024 * 1024)
    workspace = tmp_path / "ws"
    killed = subprocess.run([sys.executable, "-c", KILL_MID_FETCH, str(tmp_path / "root"), str(workspace)])
    assert killed.returncode == -9
    assert len(temporaries(workspace)) == 1  # the killed run's partial is there...

    async def fetch_again() -> str:
        async with connector:
            return await connector.fetch_data("big.bin", str(workspace))

    path = Path(asyncio.run(fetch_again()))
    assert temporaries(workspace) == []  # ...and the next landing swept it
    assert os.path.getsize(path) == 200 * 1024 * 1024
    records = list((workspace / ".lineage").rglob("*.json"))
    assert len(records) == 1 and read_provenance(path)["size"] == 200 * 1024 * 1024
