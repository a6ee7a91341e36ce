"""Shards of a set split the source between them (``sync_datasets(bucket=...)``), real local files.

Each shard keeps only its hash bucket of the listing: it never stores, plans or lands another
shard's item, reports as removed (and prunes) only the landed items of its bucket, and the
shards together land, report and prune exactly what one sync of the whole set does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.base import DataSourceConfig
from connectors.landing.lineage import read_record
from connectors.landing.root import workspace_root
from connectors.local_file import LocalFileConnector
from connectors.syncing import source_sync
from connectors.syncing.dataset_manifest import read_manifest
from connectors.syncing.dataset_sync import SyncRun, sync_datasets
from connectors.syncing.datasets import Dataset
from connectors.syncing.shard_plan import shard_of

SHARDS = 2
NAMES = [f"d{i % 3}/f{i:03d}.txt" for i in range(40)]


def make_source(root: Path, names: list[str]) -> None:
    for index, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"file {index}\n")


def sync(root: Path, workspace: Path, shard: int | None, *, prune: bool = False, run_id: str = "run") -> SyncRun:
    """One shard of the set ``files`` (None: the whole set in one sync), as the shard step runs it."""
    config = DataSourceConfig(id="src", type="local_file", name="S",  # type: ignore[arg-type]
                              config={"root": str(root)}, metadata={"sync": {"prune": prune}})
    whole = Dataset(path=("src", "files"), name="files", kind="set", shards=1 if shard is None else SHARDS)
    part = whole if shard is None else whole.shard_of_set(shard)
    bucket: Callable[[str], bool] | None = None if shard is None else (lambda i: shard_of(i, SHARDS) == shard)

    async def run() -> SyncRun:
        with workspace_root(workspace):
            return await sync_datasets(lambda: LocalFileConnector(config), workspace / "src", [part],
                                       run_id=run_id, bucket=bucket)

    return asyncio.run(run())


def landed(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".lineage" not in p.parts}


def test_each_shard_lists_and_lands_only_its_bucket_and_together_they_are_the_whole_set(tmp_path: Path) -> None:
    make_source(tmp_path / "src", NAMES)
    whole = sync(tmp_path / "src", tmp_path / "one", None)
    runs = [sync(tmp_path / "src", tmp_path / "many", k, run_id=f"run-{k}") for k in range(SHARDS)]
    buckets = [{n for n in NAMES if shard_of(n, SHARDS) == k} for k in range(SHARDS)]
    assert all(buckets) and [r.listed for r in runs] == [len(b) for b in buckets]  # not the whole listing each
    assert [r.outcomes[0].landed_count for r in runs] == [len(b) for b in buckets]
    folder = tmp_path / "many" / "src"
    for k, bucket in enumerate(buckets):  # landed by its own shard only: its record names that shard's run
        assert {i for i in NAMES if (read_record(folder, i) or {}).get("run_id") == f"run-{k}"} == bucket
        assert set(read_manifest(folder, f"files.shard-{k}-of-{SHARDS}")) == bucket
    assert landed(folder) == landed(tmp_path / "one" / "src") == set(NAMES)
    assert whole.listed == len(NAMES)


def test_each_shard_reports_and_prunes_the_gone_items_of_its_bucket(tmp_path: Path) -> None:
    make_source(tmp_path / "src", NAMES)
    for k in range(SHARDS):
        sync(tmp_path / "src", tmp_path / "ws", k, prune=True)
    gone = [n for n in NAMES[:12]]
    assert {shard_of(n, SHARDS) for n in gone} == set(range(SHARDS))  # some in each bucket
    for name in gone:
        (tmp_path / "src" / name).unlink()
    runs = [sync(tmp_path / "src", tmp_path / "ws", k, prune=True) for k in range(SHARDS)]
    for k, run in enumerate(runs):
        mine = sorted(n for n in gone if shard_of(n, SHARDS) == k)
        assert run.outcomes[0].removed == mine and sorted(run.pruned) == mine  # its own, never another's
    assert landed(tmp_path / "ws" / "src") == set(NAMES) - set(gone)
    assert not any((tmp_path / "ws" / "src" / ".lineage" / f"{n}.json").exists() for n in gone)


def test_a_first_sync_does_not_walk_the_records_it_just_wrote(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    make_source(tmp_path / "src", NAMES)

    def walked(*_: object) -> None:
        raise AssertionError("a first sync walked the lineage records")

    with monkeypatch.context() as patch:  # nothing had landed: every record is of an item just listed
        patch.setattr(source_sync.LineageIndex, "landed_except", walked)
        first = sync(tmp_path / "src", tmp_path / "ws", None)
    assert first.outcomes[0].landed_count == len(NAMES) and first.outcomes[0].removed == []
    (tmp_path / "src" / NAMES[0]).unlink()
    assert sync(tmp_path / "src", tmp_path / "ws", None).outcomes[0].removed == [NAMES[0]]  # then it does
