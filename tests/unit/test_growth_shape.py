"""The shape of a sync's work as the source grows: counted, not timed.

A synthetic memory source of 100,000 items goes through the CLI sync and the
Dagster dataset sync with the fetch replaced by a counter, so only the work of
our loops is measured: per chunk, the items handed to the fetch (the chunk and
its versions). Linear work visits each item a bounded number of times; a
mapping over the whole plan rebuilt per chunk (the bug of issue 29) visits
N * N / CHUNK items and fails here, without any clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import connectors.sync as cli_sync
import da_pipelines.dataset_sync as dataset_sync
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.checked_fetch import CheckedResult
from connectors.testing import MemoryConnector, MemoryObject, MemoryStore
from da_pipelines.datasets import Dataset, set_datasets
from da_pipelines.settings import ItemSetSpec
from tests.unit.test_dagster_layer import store

__all__ = ["store"]  # fixture

ITEMS = 100_000


@dataclass
class Counter:
    """Per fetch call: the identifiers handed over and the versions mapping's size."""

    calls: int = 0
    visited: int = 0
    largest: int = 0
    seen: list[int] = field(default_factory=list)

    async def fetch(self, connector: DataSourceConnector, identifiers: Sequence[str], workspace: Any,
                    concurrency: int = 8, versions: Mapping[str, str] | None = None) -> list[CheckedResult]:
        work = len(identifiers) + len(versions or {})
        self.calls, self.visited, self.largest = self.calls + 1, self.visited + work, max(self.largest, work)
        folder = Path(workspace)
        return [CheckedResult(i, path=str(folder / i), record={
            "identifier": i, "local_path": str(folder / i), "sha256": "0" * 64, "size": 1,
            "source_version": (versions or {}).get(i, "")}) for i in identifiers]


def filled(store: MemoryStore, count: int) -> DataSourceConfig:
    shared = MemoryObject(b"x", 1_700_000_000, "v1")
    store.objects.update({f"d{n // 1000:03d}/f{n:06d}.csv": shared for n in range(count)})
    return DataSourceConfig(id="grow", type="memory", name="Grow", config={"store": store.name})  # type: ignore[attr-defined]


def assert_linear(counter: Counter, items: int) -> None:
    chunk = dataset_sync.CHUNK
    assert counter.calls == -(-items // chunk)
    # each item is handed over once, with its version: at most 2 visits per item, 2 * CHUNK per call
    assert counter.largest <= 2 * chunk, f"one chunk visited {counter.largest} items (quadratic)"
    assert counter.visited <= 2 * items


def test_the_dataset_sync_visits_each_item_a_bounded_number_of_times(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, counter = filled(store, ITEMS), Counter()
    monkeypatch.setattr(dataset_sync, "fetch_many_checked", counter.fetch)
    datasets: list[Dataset] = set_datasets("grow", [ItemSetSpec(name="files"),
                                                    ItemSetSpec(name="first", prefix="d000/")])
    run = asyncio.run(dataset_sync.sync_datasets(lambda: MemoryConnector(config), tmp_path / "ws", datasets))
    assert_linear(counter, ITEMS)
    assert [len(o.landed) for o in run.outcomes] == [ITEMS, 1000]


def test_the_cli_sync_visits_each_item_a_bounded_number_of_times(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, counter = filled(store, ITEMS), Counter()
    monkeypatch.setattr(cli_sync, "fetch_many_checked", counter.fetch)
    report = cli_sync.SyncReport()

    async def drain() -> int:
        return sum([1 async for _ in cli_sync.sync_source(MemoryConnector(config), tmp_path / "ws", report=report)])

    assert asyncio.run(drain()) == ITEMS
    assert_linear(counter, ITEMS)
