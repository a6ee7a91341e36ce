"""The sync's spill files (``da-listing-*.sqlite``) are removed on every path: done, failed, cancelled.

The CLI sync (``sync_source``) and the Dagster layer's ``sync_datasets`` spill a full listing to a
temporary SQLite file; the temporary folder is pointed at one of the test's own, so what is there
before and after is this test's alone (other processes share the system's).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import DataItem, DataSourceConfig
from connectors.errors import DataFetchError
from connectors.pipeline_settings import ItemSetSpec
from connectors.plugins import register_connector, unregister_connector
from connectors.syncing.dataset_sync import sync_datasets
from connectors.syncing.datasets import set_datasets
from connectors.syncing.source_sync import SyncReport, sync_source
from connectors.testing import MemoryConnector, memory_store

SEEN: list[list[str]] = []  # the spill files present while the listing ran (proves the test sees them)
MODE: dict[str, bool] = {}  # "fail": break off mid-listing; "stall": wait there until cancelled


class BreakingConnector(MemoryConnector):
    """Lists 5,000 items; MODE["fail"]: breaks off after 4,500; MODE["stall"]: waits there until cancelled."""

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        for index in range(5_000):
            if index == 4_500:
                SEEN.append(sorted(p.name for p in Path(tempfile.gettempdir()).glob("da-listing-*")))
                if MODE.get("fail"):
                    raise DataFetchError("the listing broke off", source_id=self.source_id)
                if MODE.get("stall"):
                    await asyncio.Event().wait()
            yield DataItem(name=f"f{index}", path=f"d/f{index:05d}", size=1, modified_at=1, metadata={"version": "1"})

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        raise DataFetchError("not fetched here", source_id=self.source_id)


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    register_connector("breaking", BreakingConnector, replace=True)
    memory_store("spill-cleanup")
    SEEN.clear()
    yield folder
    unregister_connector("breaking")


def _connector(**how: bool) -> BreakingConnector:
    MODE.clear()
    MODE.update(how)
    return BreakingConnector(DataSourceConfig(id="b", type="breaking", name="B", config={"store": "spill-cleanup"}))


async def _cli(folder: Path, **how: bool) -> None:
    async for _ in sync_source(_connector(**how), folder, report=SyncReport(keep_items=False)):
        pass


async def _dataset(folder: Path, **how: bool) -> None:
    datasets = set_datasets("b", [ItemSetSpec.model_validate({"name": "all"})])
    await sync_datasets(lambda: _connector(**how), folder, datasets)


@pytest.mark.parametrize("path", [_cli, _dataset], ids=["cli", "dataset"])
def test_no_listing_spill_outlives_a_sync_done_failed_or_cancelled(
        temp: Path, tmp_path: Path, path: Callable[..., Coroutine[Any, Any, None]]) -> None:
    run = path

    async def cancelled() -> None:
        before = len(SEEN)
        task = asyncio.ensure_future(run(tmp_path / "ws3", stall=True))
        while len(SEEN) == before:  # the listing is under way, its spill file open
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run(tmp_path / "ws1"))  # every item fails to fetch: the sync itself is done
    with pytest.raises(DataFetchError):
        asyncio.run(run(tmp_path / "ws2", fail=True))
    asyncio.run(cancelled())
    # the listing's spill file, there while listing (and the dataset sync's earlier state, loaded meanwhile)
    spills = 2 if path is _dataset else 1
    assert len(SEEN) == 3 and all(len(seen) == spills for seen in SEEN)
    assert list(temp.iterdir()) == []
