"""Threads end: running fetches cancelled, temporaries swept, pooled connections closed when idle."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import WorkspaceError
from connectors.registry import SourceRegistry
from connectors.threads import ThreadJanitor, attach_to_thread, default_state_dir, end_thread

pytestmark = pytest.mark.integration


async def started(folder: Path, task: asyncio.Task[Any]) -> None:
    """Wait until the attach is fetching (its staging folder, in the state folder, exists)."""
    deadline = time.monotonic() + 20
    staging = default_state_dir() / "threads" / folder.name / "staging"
    while not (staging.exists() and any(staging.iterdir())):
        assert not task.done() and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the query is running


SLOW = [{"source_id": "lake", "path": "readme.txt"},
        {"source_id": "warehouse", "query": "select pg_sleep(60)", "name": "slow"}]


def test_a_removed_thread_folder_cancels_its_fetches_and_leaves_nothing(
    registry: SourceRegistry, tmp_path: Path  # noqa: F811
) -> None:
    base = tmp_path / "workspace"

    async def main() -> None:
        async with registry:
            task = asyncio.create_task(attach_to_thread(registry, base, "t1", SLOW, create=True))
            await started(base / "t1", task)
            shutil.rmtree(base / "t1")  # DeepAnalyze's cleanup of an expired thread
            began = time.monotonic()
            with pytest.raises(WorkspaceError, match="thread 't1' ended while its data was being attached"):
                await task
            assert time.monotonic() - began < 20  # noticed within a second or so, not after the 60 s query

    asyncio.run(main())
    assert list(base.iterdir()) == [] and not (default_state_dir() / "threads" / "t1").exists()  # records swept


def test_end_thread_cancels_and_sweeps_but_keeps_the_threads_files(
    registry: SourceRegistry, tmp_path: Path  # noqa: F811
) -> None:
    base = tmp_path / "workspace"
    (base / "t2").mkdir(parents=True)
    (base / "t2" / "mine.csv").write_text("kept")
    (base / "t2" / ".~da-0123456789abcdef.part").write_text("a temporary of a killed writer")

    async def main() -> int:
        async with registry:
            task = asyncio.create_task(attach_to_thread(registry, base, "t2", SLOW))
            await started(base / "t2", task)
            cancelled = await end_thread(base, "t2")
            with pytest.raises(WorkspaceError, match="ended"):
                await task
            return cancelled

    assert asyncio.run(main()) == 1
    assert sorted(p.name for p in (base / "t2").iterdir()) == ["mine.csv"]
    assert not (default_state_dir() / "threads" / "t2").exists()


def test_pooled_connections_close_after_an_idle_time(registry: SourceRegistry, tmp_path: Path) -> None:  # noqa: F811
    base = tmp_path / "workspace"

    async def main() -> None:
        async with registry, ThreadJanitor(registry, idle_seconds=0.5, interval=0.1):
            await attach_to_thread(registry, base, "t3", [{"source_id": "lake", "path": "readme.txt"}], create=True)
            lake_connector = await registry.connector("lake")
            assert lake_connector.is_connected
            await asyncio.sleep(1.0)
            assert not lake_connector.is_connected and "pooled=[]" in repr(registry)
            await attach_to_thread(registry, base, "t3", [{"source_id": "lake", "path": "readme.txt"}])  # reconnects

    asyncio.run(main())
    assert sorted(p.name for p in (base / "t3").iterdir()) == ["readme.txt"]  # the same version: not copied again
