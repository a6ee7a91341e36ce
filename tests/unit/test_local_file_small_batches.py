"""local_file's small files: read and landed a batch per trip to a thread, with every guarantee of one by one.

Real files, real syncs; the crash test kills a real process (``os._exit``) in the middle of a batch.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectors.local_file as local_file
import connectors.syncing.source_sync as source_sync
from connectors import DataSourceConfig, NameCollisionError, read_provenance
from connectors.base import FetchResult
from connectors.landing.lineage import find_provenance
from connectors.landing.names import TEMP_PREFIX
from connectors.local_file import LocalFileConnector
from connectors.syncing.source_sync import SyncReport, sync_source
from tests.conformance import files_under, run, temporaries


def make_files(root: Path, count: int) -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i:03d}.txt": f"file {i}\n".encode() * (i % 7 + 1) for i in range(count)}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def connector(root: Path) -> LocalFileConnector:
    return LocalFileConnector(DataSourceConfig(id="src", type="local_file", name="s", config={"root": str(root)}))


def fetch_many(root: Path, workspace: Path, wanted: list[str]) -> list[FetchResult]:
    async def body() -> list[FetchResult]:
        async with connector(root) as conn:
            return await conn.fetch_many(wanted, str(workspace))

    return run(body())


def test_a_batch_is_one_trip_and_each_file_keeps_its_record_and_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make_files(tmp_path / "root", 100)
    workspace = tmp_path / "ws"
    (workspace / "d1" / "f004.txt").mkdir(parents=True)  # a folder where one file should land
    trips = []
    real_finish = local_file.finish_in_thread

    async def finish(function: Any, executor: Any = None) -> Any:
        trips.append(function)
        return await real_finish(function, executor)

    monkeypatch.setattr(local_file, "finish_in_thread", finish)
    monkeypatch.setattr(local_file, "GROUP_FILES", 64)
    groups = []
    real_land_group = local_file.land_small_group
    monkeypatch.setattr(local_file, "land_small_group",
                        lambda files: (groups.append(len(files)), real_land_group(files))[1])
    results = fetch_many(tmp_path / "root", workspace, list(files))
    assert len(trips) == 2 and groups == [64, 36]  # 100 small files: two trips of GROUP_FILES, not one per file
    assert isinstance(results[4].error, NameCollisionError)  # fails alone
    for result in results[:4] + results[5:]:
        record = read_provenance(result.path)
        assert record["sha256"] == hashlib.sha256(files[result.identifier]).hexdigest()
        assert record["identifier"] == result.identifier and Path(result.path).read_bytes() == files[result.identifier]
    assert len(list(find_provenance(workspace))) == 99 and temporaries(workspace) == []


def test_groups_are_bounded_by_bytes_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = make_files(tmp_path / "root", 30)
    monkeypatch.setattr(local_file, "GROUP_BYTES", 100)  # each file is 7 to 49 bytes
    groups = []
    real_land_group = local_file.land_small_group
    monkeypatch.setattr(local_file, "land_small_group",
                        lambda files: (groups.append(len(files)), real_land_group(files))[1])
    results = fetch_many(tmp_path / "root", tmp_path / "ws", list(files))
    assert all(r.ok for r in results) and len(list(find_provenance(tmp_path / "ws"))) == 30
    assert len(groups) > 3 and sum(groups) == 30  # several groups in one trip, memory held bounded


def test_a_first_sync_reads_no_record_and_a_second_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path / "root", 30)
    reads = []
    real_read = source_sync._read_json
    monkeypatch.setattr(source_sync, "_read_json", lambda *a: (reads.append(a), real_read(*a))[1])

    def sync() -> SyncReport:
        report = SyncReport()

        async def body() -> None:
            async for _ in sync_source(connector(tmp_path / "root"), tmp_path / "ws" / "src", report=report):
                pass

        run(body())
        return report

    first = sync()
    assert len(first.landed) == 30 and reads == []  # no record folder yet: nothing to read per item
    second = sync()
    assert second.unchanged_total == 30 and len(reads) == 30  # the records are read once they exist


CRASHER = """
import os, sys, asyncio
from pathlib import Path
import connectors.landing.atomic as atomic
from connectors import DataSourceConfig
from connectors.local_file import LocalFileConnector

root, workspace, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
renames, real_rename = [], os.rename
def rename(*args, **kwargs):
    renames.append(args)
    if len(renames) == kill_at:
        os._exit(3)  # killed in the middle of a batch, between two renames
    return real_rename(*args, **kwargs)
os.rename = rename
names = sys.argv[4:]
async def main():
    config = DataSourceConfig(id="src", type="local_file", name="s", config={"root": root})
    async with LocalFileConnector(config) as conn:
        await conn.fetch_many(names, workspace)
asyncio.run(main())
"""


@pytest.mark.parametrize("kill_at", [1, 2, 9, 40])
def test_a_process_killed_mid_batch_leaves_no_record_without_its_file(tmp_path: Path, kill_at: int) -> None:
    files = make_files(tmp_path / "root", 30)
    workspace = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path / "root"), str(workspace), str(kill_at),
                           *files], capture_output=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr.decode()[-2000:]
    records = list(find_provenance(workspace))
    assert len(records) == (kill_at - 1) // 2  # a data rename, then its record's: the files before the kill
    for record in records:  # every record that exists names a file that is there, whole
        landed = Path(record["local_path"])
        assert hashlib.sha256(landed.read_bytes()).hexdigest() == record["sha256"], json.dumps(record)
    landed_names = {p.relative_to(workspace).as_posix() for p in files_under(workspace)
                    if not p.name.startswith(TEMP_PREFIX)}  # the killed process's temporaries: swept below
    assert landed_names <= set(files) and len(landed_names) == kill_at // 2  # each renamed file is whole
    # a later fetch lands every file with its record, the killed one's temporaries swept
    results = fetch_many(tmp_path / "root", workspace, list(files))
    assert all(r.ok for r in results) and len(list(find_provenance(workspace))) == len(files)
    assert temporaries(workspace) == []


def test_the_framework_takes_the_records_our_landing_wrote_without_reading_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.checked_fetch as checked_fetch
    from connectors.checked_fetch import fetch_many_checked

    files = make_files(tmp_path / "root", 20)
    (tmp_path / "ws" / "d1" / "f004.txt").mkdir(parents=True)  # one file cannot land: its error stays its own
    reads = []
    real_read = checked_fetch.lineage.read_record
    monkeypatch.setattr(checked_fetch.lineage, "read_record", lambda *a: (reads.append(a), real_read(*a))[1])

    async def body() -> list[Any]:
        async with connector(tmp_path / "root") as conn:
            return await fetch_many_checked(conn, list(files), tmp_path / "ws")

    results = run(body())
    assert reads == []  # 19 records taken as written, none read back
    assert isinstance(results[4].error, NameCollisionError) and results[4].record is None
    for result in results[:4] + results[5:]:
        assert result.record == read_provenance(result.path)  # what is on disk, byte for byte the same facts
        assert result.record["sha256"] == hashlib.sha256(files[result.identifier]).hexdigest()


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), min_size=1, max_size=4),
       st.sampled_from(["/", "/srv/data", "/tmp/a b/ü%20x"]))
@settings(max_examples=300, deadline=None)
def test_a_files_uri_is_what_pathlib_gives(parts: list[str], root: str) -> None:
    identifier = "/".join(parts)
    if not identifier or identifier.startswith("/"):
        return  # not a relative identifier
    assert local_file._file_uri(Path(root), identifier) == (Path(root) / identifier).as_uri()
