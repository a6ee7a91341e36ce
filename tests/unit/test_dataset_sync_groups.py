"""A set's small files land in few large groups: few file-system syncs, each flushing the whole file system.

Each ``syncfs`` writes back every dirty page of the file system (in a sharded set, the other
shard steps' too, and they queue behind one another), so a sync of many small files must not
pay two per handful of files (measured: at 64 files per group, 3,126 syncs took 14-26 s of a
100,000-file sync). Real local files, real syncs: only counted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.base import DataSourceConfig
from connectors.landing import small_group
from connectors.landing.lineage import read_record
from connectors.landing.root import workspace_root
from connectors.local_file import LocalFileConnector
from connectors.syncing.dataset_manifest import read_manifest
from connectors.syncing.dataset_sync import SyncRun, sync_datasets
from connectors.syncing.datasets import Dataset

FILES = 200  # fewer than one group holds under a 1,024-descriptor limit (256)


def test_a_set_of_a_few_hundred_small_files_lands_with_two_file_system_syncs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"d{i % 4}/f{i:03d}.bin" for i in range(FILES)]
    for index, name in enumerate(names):
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(b"x" * (index + 1))
    real_sync, syncs = small_group.sync_filesystem, []

    def counted(fd: int) -> None:
        syncs.append(fd)
        real_sync(fd)

    monkeypatch.setattr(small_group, "sync_filesystem", counted)
    config = DataSourceConfig(id="src", type="local_file", name="S",  # type: ignore[arg-type]
                              config={"root": str(tmp_path / "src")})
    files = Dataset(path=("src", "files"), name="files", kind="set")

    async def run() -> SyncRun:
        with workspace_root(tmp_path / "ws"):
            return await sync_datasets(lambda: LocalFileConnector(config), tmp_path / "ws" / "src", [files])

    outcome = asyncio.run(run()).outcomes[0]
    folder = tmp_path / "ws" / "src"
    assert outcome.landed_count == FILES and len(read_manifest(folder, "files")) == FILES
    assert all((folder / n).stat().st_size == i + 1 and read_record(folder, n) for i, n in enumerate(names))
    assert len(syncs) == 2  # one group: its data, then its names and records (64 files a group: 8)
