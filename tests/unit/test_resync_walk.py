"""The re-sync's one walk of a source's folder (records and landed files' sizes), in a child process or not."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import connectors.syncing.earlier_state as earlier_state
from connectors.landing.names import LINEAGE_DIR, LOCK_DIR, RECORD_SUFFIX, TEMP_PREFIX
from connectors.pipeline_settings import ItemSetSpec
from connectors.syncing.dataset_sync import DatasetOutcome, sync_datasets
from connectors.syncing.datasets import set_datasets
from connectors.syncing.landed_walk import Names, start_walk, walk
from connectors.syncing.progress_log import ProgressLog
from tests.unit.local_sources import csv_source

N = 60


def _walked(path: Path) -> tuple[set[str], dict[str, int]]:
    db = sqlite3.connect(path)
    try:
        records = {raw.decode("utf-8", "surrogatepass") for (raw,) in db.execute("SELECT path FROM recorded")}
        rows = db.execute("SELECT path, size FROM landed")
        landed = {raw.decode("utf-8", "surrogatepass"): size for raw, size in rows}
    finally:
        db.close()
    return records, landed


def _tree(folder: Path, outside: Path) -> None:
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "one.csv").write_bytes(b"12345")
    (folder / "a" / "b" / "two.csv").write_bytes(b"")
    (folder / "caf\u00e9 \udcff.csv").write_bytes(b"xy")  # a name that is no valid UTF-8
    (folder / f"{TEMP_PREFIX}x.part").write_bytes(b"tmp")
    (folder / "fifo").mkdir()
    os.mkfifo(folder / "fifo" / "pipe")
    outside.mkdir()
    (outside / "far.csv").write_bytes(b"far")
    (folder / "link.csv").symlink_to(outside / "far.csv")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    records = folder / LINEAGE_DIR
    (records / "a" / "b").mkdir(parents=True)
    (records / "a" / f"one.csv{RECORD_SUFFIX}").write_text("{}")
    (records / "a" / "b" / f"two.csv{RECORD_SUFFIX}").write_text("{}")
    (records / f"gone.csv{RECORD_SUFFIX}").write_text("{}")
    (records / f"{TEMP_PREFIX}y{RECORD_SUFFIX}").write_text("{}")
    (records / "a" / f"link.csv{RECORD_SUFFIX}").symlink_to(outside / "far.csv")
    (records / LOCK_DIR).mkdir()
    (records / LOCK_DIR / f"lock{RECORD_SUFFIX}").write_text("")


NAMES = Names(LINEAGE_DIR, LOCK_DIR, RECORD_SUFFIX, TEMP_PREFIX)


@pytest.mark.parametrize("where", ["child", "here"])
def test_the_walk_lists_records_and_regular_landed_files_and_follows_no_link(tmp_path: Path, where: str) -> None:
    """Failed before: no such walk (the records were walked alone, each landed file stat'ed by its full path)."""
    folder, out = tmp_path / "ws" / "src", tmp_path / "walked.sqlite"
    _tree(folder, tmp_path / "outside")
    if where == "child":
        assert start_walk(str(out), str(folder), NAMES).wait() == 0
    else:
        db = sqlite3.connect(out)
        walk(db, str(folder), NAMES)
        db.close()
    records, landed = _walked(out)
    assert records == {"a/one.csv", "a/b/two.csv", "gone.csv"}
    assert landed == {"a/one.csv": 5, "a/b/two.csv": 0, "caf\u00e9 \udcff.csv": 2}


def test_the_names_given_to_the_walk_are_the_workspace_names() -> None:
    assert earlier_state.NAMES == NAMES


def test_a_missing_folder_walks_to_empty_tables(tmp_path: Path) -> None:
    out = tmp_path / "walked.sqlite"
    assert start_walk(str(out), str(tmp_path / "none"), NAMES).wait() == 0
    assert _walked(out) == (set(), {})


def _source(tmp_path: Path) -> tuple[Any, Path, Path]:
    return csv_source(tmp_path, N, 20)


def _sync(connector: Any, folder: Path) -> DatasetOutcome:
    datasets = set_datasets("files", [ItemSetSpec.model_validate({"name": "all"})])
    run = asyncio.run(sync_datasets(connector, folder, datasets))
    assert not run.errors
    return run.outcomes[0]


def _children(monkeypatch: pytest.MonkeyPatch, failing: bool = False) -> list[subprocess.Popen[bytes]]:
    """Every walk in a child process (whatever the manifest's size); the children started, kept to be looked at."""
    started: list[subprocess.Popen[bytes]] = []

    def start(path: str, folder: str, names: Names) -> subprocess.Popen[bytes]:
        child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]) if failing \
            else start_walk(path, folder, names)
        started.append(child)
        return child

    monkeypatch.setattr(earlier_state, "CHILD_FROM_BYTES", -1)
    monkeypatch.setattr(earlier_state, "start_walk", start)
    return started


def test_a_walk_whose_child_cannot_start_is_done_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed before this check: the sync failed when no child process could start (e.g. no interpreter path)."""
    connector, _, folder = _source(tmp_path)
    _sync(connector, folder)
    monkeypatch.setattr(earlier_state, "CHILD_FROM_BYTES", -1)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    (folder / "d0" / "f0003.csv").unlink()
    again = _sync(connector, folder)
    assert (again.repaired, again.unchanged) == (["d0/f0003.csv"], N - 1)


@pytest.mark.parametrize("failing", [False, True], ids=["child", "child failing"])
def test_a_resync_walked_by_a_child_sees_every_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      failing: bool) -> None:
    """A changed file is fetched; a landed file deleted, resized, swapped for a link of its size, or whose record
    was deleted is repaired; a removal is reported: with the walk in a child process, or (it failed) here
    (docs/RELIABILITY.md row 73)."""
    connector, root, folder = _source(tmp_path)
    _sync(connector, folder)
    children = _children(monkeypatch, failing)
    changed = root / "d1" / "f0030.csv"
    changed.write_text("x\n30, changed\n")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000_000))
    (root / "d2" / "f0050.csv").unlink()  # removed at the source
    (folder / "d0" / "f0001.csv").unlink()  # deleted in the workspace
    with (folder / "d2" / "f0041.csv").open("a") as landed:
        landed.write("appended\n")  # altered in the workspace: another size
    (folder / LINEAGE_DIR / "d2" / "f0045.csv.json").unlink()  # its record deleted
    swapped = folder / "d0" / "f0002.csv"
    (tmp_path / "same.csv").write_bytes(b"y" * swapped.stat().st_size)
    swapped.unlink()
    swapped.symlink_to(tmp_path / "same.csv")  # a link to a file of the recorded size
    again = _sync(connector, folder)
    assert [c.returncode for c in children] == [3 if failing else 0]
    assert sorted(again.repaired) == ["d0/f0001.csv", "d0/f0002.csv", "d2/f0041.csv", "d2/f0045.csv"]
    assert (again.landed_count, again.unchanged, again.removed) == (5, N - 6, ["d2/f0050.csv"])
    assert not swapped.is_symlink() and swapped.read_text() == "x\n2\n"
    third = _sync(connector, folder)
    assert (third.landed_count, third.unchanged) == (0, N - 1)


def test_a_resync_reports_its_unchanged_items_in_counts_not_one_call_each(tmp_path: Path) -> None:
    """Failed before: no ``on_items_done`` (the plan called ``on_item_done`` once per unchanged item)."""
    connector, root, folder = _source(tmp_path)
    _sync(connector, folder)
    (root / "d1" / "f0030.csv").unlink()
    (folder / "d0" / "f0001.csv").unlink()  # a repair: fetched, so reported item by item
    datasets = set_datasets("files", [ItemSetSpec.model_validate({"name": "all"})])
    log = ProgressLog(lambda line: None, total_items=0, interval=3600)
    singles: list[int] = []
    counts: list[int] = []

    def one() -> None:
        singles.append(1)
        log.item_done()

    def many(count: int) -> None:
        counts.append(count)
        log.items_done(count)

    asyncio.run(sync_datasets(connector, folder, datasets, on_item_done=one, on_items_done=many))
    assert (len(singles), sum(counts), len(counts)) == (1, N - 2, 1)  # one batch: one count
    assert log.summary().startswith(f"{N - 1}/")
