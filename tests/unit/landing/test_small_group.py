"""land_small_group: a group of small files landed in one tight loop, with every guarantee of one by one.

Real files on the real file system; only the file-system sync is wrapped (to see what is on disk when it
runs, or to answer EIO, which cannot be produced on demand). The crash test kills a real process.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import connectors.landing.small_group as small_group
from connectors import NameCollisionError, UnsafeNameError, WorkspaceError, read_provenance
from connectors.errors import SizeLimitError
from connectors.landing import run_context, workspace_root
from connectors.landing.atomic import landing_byte_cap
from connectors.landing.group_commit import GroupFile
from connectors.landing.lineage import find_provenance, record_path
from connectors.landing.names import TEMP_PREFIX
from connectors.landing.small_group import land_small_group
from tests.conformance import files_under, temporaries
from tests.unit.landing.landing_support import PROVENANCE, snapshot

NAMES = [f"d{i % 3}/f{i:03d}.bin" for i in range(30)]
HOSTILE = ["../escape.bin", "/etc/passwd", "a/../../b.bin", "d0/\x00.bin", ".lineage/d0/f.json", "", "d0/.."]


def body(name: str) -> bytes:
    return name.encode() * 100


def group(workspace: Path, names: list[str]) -> list[GroupFile]:
    return [GroupFile(str(workspace), name, body(name), "s", PROVENANCE) for name in names]


def test_every_file_lands_whole_with_its_record_and_hostile_names_fail_alone(tmp_path: Path) -> None:
    with run_context("run-1"):
        results = land_small_group(group(tmp_path / "ws", NAMES[:10] + HOSTILE + NAMES[10:]))
    landed, refused = results[:10] + results[10 + len(HOSTILE):], results[10:10 + len(HOSTILE)]
    assert all(isinstance(result, UnsafeNameError) for result in refused), refused
    for name, result in zip(NAMES, landed, strict=True):
        assert not isinstance(result, Exception), result
        assert result.path == tmp_path / "ws" / name and result.path.read_bytes() == body(name)
        record = read_provenance(result.path)
        assert record == result.record  # what the caller was told is what is on disk
        assert record["sha256"] == hashlib.sha256(body(name)).hexdigest() and record["size"] == len(body(name))
        assert record["identifier"] == name and record["source_id"] == "s" and record["run_id"] == "run-1"
        assert record["local_path"] == str(tmp_path / "ws" / name)
    assert sorted(files_under(tmp_path / "ws")) == sorted(tmp_path / "ws" / name for name in NAMES)
    assert {p.name for p in tmp_path.iterdir()} == {"ws"}  # nothing outside the workspace
    assert temporaries(tmp_path) == []


def test_a_folder_or_another_items_file_at_the_target_fails_alone(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "d0" / "f000.bin").mkdir(parents=True)  # a folder where a file should land
    land_small_group([GroupFile(str(workspace), "d1/f001.bin", b"other", "other-source", PROVENANCE)])
    results = land_small_group(group(workspace, NAMES[:6]))
    assert isinstance(results[0], NameCollisionError) and isinstance(results[1], NameCollisionError)
    assert (workspace / "d1" / "f001.bin").read_bytes() == b"other"  # the other source's file is kept
    assert all(not isinstance(result, Exception) for result in results[2:])
    assert len(list(find_provenance(workspace))) == 5 and temporaries(workspace) == []


@pytest.mark.parametrize("link_at", ["d0", ".lineage", ".lineage/d0"])
def test_a_symlinked_folder_is_never_followed(tmp_path: Path, link_at: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "d0").mkdir(parents=True)
    (root / "ws" / link_at).parent.mkdir(parents=True, exist_ok=True)
    (root / "ws" / link_at).symlink_to(outside / "d0" if link_at != ".lineage" else outside)
    before = snapshot(outside)
    with workspace_root(root):
        results = land_small_group(group(root / "ws", ["d0/a.bin", "d1/b.bin"]))
    assert isinstance(results[0], UnsafeNameError), results[0]  # refused, typed
    assert snapshot(outside) == before  # nothing written, created or removed outside
    if link_at == "d0":
        assert read_provenance(root / "ws" / "d1" / "b.bin")["size"] == len(body("d1/b.bin"))  # the other lands
    assert temporaries(root) == []


def test_names_appear_only_after_a_sync_and_success_only_after_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, seen = tmp_path / "ws", []
    real_sync = small_group.sync_filesystem

    def sync(fd: int) -> None:
        seen.append(sorted(p.relative_to(workspace).as_posix() for p in files_under(workspace)
                           if not p.name.startswith(TEMP_PREFIX)))
        real_sync(fd)

    monkeypatch.setattr(small_group, "sync_filesystem", sync)
    results = land_small_group(group(workspace, NAMES))
    assert seen[0] == []  # the data is synced before any final name points at it
    assert seen[1] == sorted(NAMES)  # renamed and recorded, then synced again before this returned
    assert len(seen) == 2 and all(not isinstance(result, Exception) for result in results)


def test_a_failed_first_sync_fails_every_file_and_names_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def sync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(small_group, "sync_filesystem", sync)
    results = land_small_group(group(tmp_path / "ws", NAMES[:5]))
    assert all(isinstance(result, WorkspaceError) for result in results)
    assert files_under(tmp_path / "ws") == [] and temporaries(tmp_path) == []
    assert list(find_provenance(tmp_path / "ws")) == []


def test_after_a_failed_last_sync_a_file_that_cannot_be_made_durable_fails_and_its_record_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "ws"
    real_sync, real_fsync, calls = small_group.sync_filesystem, os.fsync, []

    def sync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 1:  # the data's sync works; the one after the renames answers EIO
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_sync(fd)

    def fsync(fd: int) -> None:
        if len(calls) > 1 and os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "f001.bin":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(small_group, "sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", fsync)
    results = land_small_group(group(workspace, NAMES[:4]))
    assert isinstance(results[1], WorkspaceError)
    assert not record_path(workspace, NAMES[1]).exists()  # never a record without a durable file
    for name, result in zip(NAMES[:4], results, strict=True):
        if name != NAMES[1]:  # each of the others made durable alone: landed with its record
            assert not isinstance(result, Exception) and read_provenance(workspace / name)["size"] == len(body(name))
    assert temporaries(workspace) == []


CRASHER = """
import os, sys
import connectors.landing.small_group as small_group
from connectors.errors import SizeLimitError
from connectors.landing.atomic import landing_byte_cap
from connectors.landing.group_commit import GroupFile

workspace, kill_at, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
renames, real_rename = [], os.rename
def rename(*args, **kwargs):
    renames.append(args)
    if len(renames) == kill_at:
        os._exit(3)  # killed in the middle of a group, between two renames
    return real_rename(*args, **kwargs)
os.rename = rename
small_group.land_small_group([GroupFile(workspace, n, n.encode() * 100, "s", {"source_type": "t"}) for n in names])
"""


@pytest.mark.parametrize("kill_at", [1, 2, 7, 30])
def test_a_process_killed_mid_group_leaves_no_partial_file_under_its_name(tmp_path: Path, kill_at: int) -> None:
    workspace = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-c", CRASHER, str(workspace), str(kill_at), *NAMES],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr.decode()[-2000:]
    landed = [p for p in files_under(workspace) if not p.name.startswith(TEMP_PREFIX)]
    assert len(landed) == kill_at // 2  # a data rename, then its record's: only the files renamed before
    for path in landed:  # whole under its final name, its record beside it
        assert path.read_bytes() == body(path.relative_to(workspace).as_posix())
    assert len(list(find_provenance(workspace))) == (kill_at - 1) // 2
    # the next group sweeps the killed process's temporaries and lands every file
    assert all(not isinstance(r, Exception) for r in land_small_group(group(workspace, NAMES)))
    assert temporaries(workspace) == [] and len(list(find_provenance(workspace))) == len(NAMES)


def test_a_temporary_name_planted_ahead_is_skipped_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "ws"
    planted = f"{TEMP_PREFIX}{'0' * 16}.part"
    (workspace / "d0" / planted).mkdir(parents=True)  # a folder: the sweep leaves it, as a name planted later
    real_names, starts = small_group._temporary_names, []

    def names() -> Iterator[str]:  # the first sequence starts at the planted name; the next ones are random
        starts.append(1)
        return iter([planted]) if len(starts) == 1 else real_names()

    monkeypatch.setattr(small_group, "_temporary_names", names)
    results = land_small_group(group(workspace, ["d0/a.bin"]))
    assert not isinstance(results[0], Exception) and (workspace / "d0" / "a.bin").read_bytes() == body("d0/a.bin")
    assert (workspace / "d0" / planted).is_dir() and len(starts) == 2


def test_a_file_over_the_byte_cap_fails_alone_and_nothing_of_it_is_written(tmp_path: Path) -> None:
    small = GroupFile(str(tmp_path / "ws"), "d0/small.bin", b"x" * 10, "s", PROVENANCE)
    with landing_byte_cap(50):
        results = land_small_group([*group(tmp_path / "ws", ["d0/big.bin"]), small])
    assert isinstance(results[0], SizeLimitError) and "over the limit of 50 bytes" in str(results[0])
    assert not isinstance(results[1], Exception) and results[1].size == 10
    assert files_under(tmp_path / "ws") == [tmp_path / "ws" / "d0" / "small.bin"] and temporaries(tmp_path) == []
