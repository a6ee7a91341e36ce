"""The shape of a sync's work as the source grows: counted, not timed.

A synthetic memory source of 100,000 items goes through the CLI sync and the
Dagster dataset sync with the fetch replaced by a counter, so only the work of
our loops is measured: per chunk, the items handed to the fetch (the chunk and
its versions). Linear work visits each item a bounded number of times; a
mapping over the whole plan rebuilt per chunk (a bug this test guards against) visits
N * N / CHUNK items and fails here, without any clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import connectors.syncing.dataset_sync as dataset_sync
import connectors.syncing.source_sync as cli_sync
from connectors.base import DataItem, DataSourceConfig, DataSourceConnector
from connectors.checked_fetch import CheckedResult
from connectors.local_file import LocalFileConnector
from connectors.pipeline_settings import ItemSetSpec
from connectors.syncing.datasets import Dataset, set_datasets
from connectors.testing import MemoryConnector, MemoryObject, MemoryStore

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


def assert_linear(counter: Counter, items: int, chunk: int = dataset_sync.CHUNK) -> None:
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
    assert [o.landed_count for o in run.outcomes] == [ITEMS, 1000]


def test_the_cli_sync_visits_each_item_a_bounded_number_of_times(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, counter = filled(store, ITEMS), Counter()
    monkeypatch.setattr(cli_sync, "fetch_many_checked", counter.fetch)
    report = cli_sync.SyncReport()

    async def drain() -> int:
        return sum([1 async for _ in cli_sync.sync_source(MemoryConnector(config), tmp_path / "ws", report=report)])

    assert asyncio.run(drain()) == ITEMS
    assert_linear(counter, ITEMS, cli_sync.CHUNK)  # the CLI hands the fetch bigger chunks than Dagster's sync


class StreamOnly(MemoryConnector):
    """A memory source that can only be streamed: a sync that holds the whole listing calls list_items."""

    @classmethod
    def type_name(cls) -> str:
        return "memory"

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        raise AssertionError("the whole listing was asked for")

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        for path_, stored in sorted(self._objects().items()):
            yield DataItem(name=path_, path=path_, size=len(stored.data), modified_at=stored.modified_at,
                           metadata={"version": stored.version})


def test_the_cli_sync_streams_the_listing_and_counts_what_it_does_not_keep(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, counter = filled(store, 10_000), Counter()
    monkeypatch.setattr(cli_sync, "fetch_many_checked", counter.fetch)
    report = cli_sync.SyncReport(keep_items=False)

    async def drain() -> int:
        return sum([1 async for _ in cli_sync.sync_source(StreamOnly(config), tmp_path / "ws", report=report)])

    assert asyncio.run(drain()) == 10_000
    assert report.landed == [] and report.landed_total == 10_000
    assert report.summary().startswith("10000 landed, 0 unchanged")


def test_a_local_source_streams_its_items_in_the_order_of_its_listing(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for name in ["a.csv", "a/x", "a-b", "a/b/c.txt", "z", "a0/y", ".lineage/q", "b/.lineage/r", "b/s"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    (root / "link.csv").symlink_to("a.csv")
    (root / "dirlink").symlink_to("a")
    (root / "out").symlink_to("/etc/hostname")
    config = DataSourceConfig(id="local", type="local_file", name="Local", config={"root": str(root)})

    async def both(path: str | None) -> tuple[list[str], list[str], list[str], list[str]]:
        async with LocalFileConnector(config) as connector:
            listed, refused = [i.path for i in await connector.list_items(path)], list(connector.refused)
            streamed = [i.path async for i in connector.iter_items(path)]
            return listed, streamed, refused, list(connector.refused)

    listed, streamed, refused, refused_streaming = asyncio.run(both(None))
    assert listed == ["a-b", "a.csv", "a/b/c.txt", "a/x", "a0/y", "b/s", "link.csv", "z"]
    assert streamed == listed and refused_streaming == refused == ["out"]
    listed, streamed, _, _ = asyncio.run(both("a"))
    assert streamed == listed == ["a/b/c.txt", "a/x"]


def test_progress_keeps_running_sums_not_an_entry_per_finished_item() -> None:
    """The CLI bar redraws ten times a second and summed every item's bytes at each draw."""
    import io

    from connectors.cli.progress_bar import ProgressBar
    from connectors.syncing.progress_log import ProgressLog

    bar, lines = ProgressBar(io.StringIO(), items=ITEMS, width=200), []
    log = ProgressLog(lines.append, total_items=ITEMS, interval=1e9)
    for n in range(ITEMS):
        for listener in (bar, log.on_bytes):
            listener(f"f{n}", 2, 4)
            listener(f"f{n}", 4, 4)
        bar.item_done("")
        log.item_done()
    bar("big", 1, None)
    assert bar._bytes == {"big": (1, None)} and log._bytes == {}
    assert "100000/100000 items 390.6 KiB/390.6 KiB" in bar.render()
    assert log.summary().startswith("100000/100000 items, 390.6 KB")


@dataclass
class Planned:
    """Per planned batch of the dataset sync: the items planned and the prior entries read for them."""

    batches: int = 0
    largest: int = 0
    priors: int = 0


def counting_plan(monkeypatch: pytest.MonkeyPatch) -> Planned:
    planned, plan = Planned(), dataset_sync._plan

    def counted(sync: Any, wanted: Sequence[Any], *args: Any) -> Any:
        batch = plan(sync, wanted, *args)
        planned.batches += 1
        planned.largest = max(planned.largest, len(wanted), len(batch.members))
        planned.priors = max(planned.priors, sum(len(p) for p in batch.priors.values()))
        return batch

    monkeypatch.setattr(dataset_sync, "_plan", counted)
    return planned


def test_the_dataset_sync_holds_a_batch_of_items_not_the_source(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once 990 MiB at 1,000,000 items: its plan, prior manifests and landed records spanning the set.

    Counted: every batch planned holds at most ``BATCH`` items and their prior entries; a plain set keeps
    counts, not records or entries (its manifest, streamed from disk, holds them); a re-sync reads its prior
    manifest a batch at a time and fetches nothing.
    """
    config, counter = filled(store, ITEMS), Counter()
    monkeypatch.setattr(dataset_sync, "fetch_many_checked", counter.fetch)
    planned = counting_plan(monkeypatch)
    datasets = set_datasets("grow", [ItemSetSpec(name="files"), ItemSetSpec(name="first", prefix="d000/")])
    folder = tmp_path / "ws"
    run = asyncio.run(dataset_sync.sync_datasets(lambda: MemoryConnector(config), folder, datasets))
    batch = cli_sync.BATCH
    assert planned.batches == -(-ITEMS // batch) and planned.largest <= batch
    files, first = run.outcomes
    assert (files.landed_count, files.items, first.items) == (ITEMS, ITEMS, 1000)
    assert files.landed == [] and files.entries == {}  # nothing per item held for a plain set
    assert files.manifest is not None and sum(1 for _ in files.manifest.open()) == ITEMS + 1

    monkeypatch.setattr(dataset_sync, "_intact", lambda *landed: True)  # the stub landed no files
    again, resynced = Planned(), counter.calls
    planned.__dict__.update(again.__dict__)
    rerun = asyncio.run(dataset_sync.sync_datasets(lambda: MemoryConnector(config), folder, datasets))
    assert counter.calls == resynced, "a re-sync with nothing changed fetched"
    assert [o.unchanged for o in rerun.outcomes] == [ITEMS, 1000]
    assert planned.batches == -(-ITEMS // batch) and 0 < planned.priors <= 2 * batch  # two datasets at most
    assert [o.version for o in rerun.outcomes] == [o.version for o in run.outcomes]


def test_the_removed_at_source_pass_asks_the_listing_in_batches(tmp_path: Path) -> None:
    """One SQLite query per landed item (34% of a 100,000-item re-sync); now one anti-join per batch."""
    import json

    folder, count = tmp_path / "ws", 20_000
    records = folder / ".lineage" / "d"
    records.mkdir(parents=True)
    names = [f"d/f{n:06d}.csv" for n in range(count)]
    for name in names:
        (folder / ".lineage" / f"{name}.json").write_text(
            json.dumps({"source_id": "grow", "identifier": name}))
    gone = {names[7], names[12_345], names[-1]}
    statements: list[str] = []
    with cli_sync._Spill() as listed:
        listed.add([(name, "v1", True) for name in names if name not in gone])
        listed.db.set_trace_callback(statements.append)
        found = cli_sync.LineageIndex(folder, "grow", "local_file").landed_except(listed)
    assert sorted(found) == sorted(gone)
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]  # (executemany traces rows)
    assert len(queries) <= -(-count // cli_sync.BATCH), f"{len(queries)} queries for {count} landed items"


def test_a_sensor_tick_on_a_large_source_reads_a_bounded_part_of_the_listing(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick on 1,000,000 items took 442 s and 700 MiB (the whole listing, planned item by item).

    Counted: the tick pulls at most ``TICK_LISTING_LIMIT + 1`` items of a 100,000-item listing, requests one
    full sync run (no items named: the run lists), and requests none while that run is running.
    """
    from dagster import DagsterInstance, DagsterRunStatus

    import da_pipelines.sensors as sensors
    from tests.helpers.dagster_layer import SOURCE_ID, N, defs_for, evaluate

    shared = MemoryObject(b"x", 1_700_000_000, "v1")
    store.objects.update({f"d{n // 1000:03d}/f{n:06d}.csv": shared for n in range(ITEMS)})
    pulled = Counter()
    listing = MemoryConnector.iter_items

    async def counted(self: MemoryConnector, path: str | None = None) -> AsyncIterator[DataItem]:
        async for item in listing(self, path):
            pulled.visited += 1
            yield item

    monkeypatch.setattr(MemoryConnector, "iter_items", counted)
    defs = defs_for(store, tmp_path / "ws")
    with DagsterInstance.ephemeral() as instance:
        first = evaluate(defs, instance, None)
        assert pulled.visited == sensors.TICK_LISTING_LIMIT + 1
        [request] = first.run_requests
        assert request.run_config == {} and request.tags[sensors.FULL_SYNC_TAG] == "true"
        assert request.tags["da/source"] == SOURCE_ID
        job = defs.resolve_job_def(f"{N}_sync")
        instance.create_run_for_job(job, run_id=None, tags=request.tags, status=DagsterRunStatus.STARTED)
        assert evaluate(defs, instance, first.cursor).run_requests == []  # that run is running: nothing more
