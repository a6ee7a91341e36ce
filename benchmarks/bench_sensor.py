"""Sensor tick time and cursor size on a source of 100,000 items with 100 new ones.

The exact (cursor) tick is measured: the tick's listing limit (``TICK_LISTING_LIMIT``, over which
a source gets full sync runs instead) is raised above ``--items`` here.

Measures, beside the time of the bare listing (``list_items``):

* the first sync's ticks (bounded work per tick: how many ticks, the slowest);
* a steady-state tick after 100 new items appeared (90 recent, 10 with old
  timestamps), with the lineage record of every one of the items already
  landed (all of them, as the sync runs would have left them; the sensor looks
  versions up there, not in Dagster's event log), so the tick's look-ups run
  against a full workspace;
* a tick with nothing new, and the stored cursor's size.

Every measurement is repeated (``--repetitions``, the first sync included) and
reported as its median, with the fastest and slowest run. All measurements are
in this one process, after imports. Every tick's answer is checked: the first
sync must request every item exactly once, the steady tick exactly the new
items, the quiet tick nothing. The Dagster instance (sqlite) and the local
source's files go under ``$DA_BENCH_DIR``; the report names that file system.

The source is the in-memory connector (``--source memory``, default) or a local
folder of real files (``--source local``, slower to set up). Results are printed
and written to ``benchmarks/results/bench_sensor_<source>.json``. Writing the
100,000 lineage records is set-up, not timed.

Usage:
    .venv/bin/python -m benchmarks.bench_sensor [--items 100000] [--new 100] [--source memory|local]
        [--repetitions 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, build_sensor_context

import da_pipelines.sensors as sensors
from benchmarks.common import describe_filesystem, expect, scratch
from benchmarks.results import begin, write_result
from connectors.base import DataSourceConfig
from connectors.ids import source_slug
from connectors.landing.lineage import write_provenance
from connectors.syncing.aio import run_coroutine
from connectors.syncing.cursor import item_version
from connectors.testing import memory_store
from da_pipelines.definitions import build_definitions
from tests.dagster_location import register_test_connectors

NOW = int(time.time())



def memory_source(items: int) -> tuple[DataSourceConfig, Any]:
    store = memory_store("bench")
    for index in range(items):
        store.put(f"data/{index // 1000:03d}/part-{index:06d}.parquet", b"x", NOW - 30 * 86400 + index * 25,
                  version=f"v{index}")

    def add(index: int, modified_at: int) -> str:
        store.put(f"new/part-{index:06d}.parquet", b"y", modified_at, version=f"n{index}")
        return f"new/part-{index:06d}.parquet"

    return DataSourceConfig(id="bench", type="memory", name="Bench", config={"store": "bench"}), add


def local_source(items: int, folder: Path) -> tuple[DataSourceConfig, Any]:
    for index in range(items):
        path = folder / f"{index // 1000:03d}" / f"part-{index:06d}.csv"
        if index % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        stamp = NOW - 30 * 86400 + index * 25
        os.utime(path, (stamp, stamp))

    def add(index: int, modified_at: int) -> str:
        path = folder / "new" / f"part-{index:06d}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"y")
        os.utime(path, (modified_at, modified_at))
        return f"new/part-{index:06d}.csv"

    return DataSourceConfig(id="bench", type="local_file", name="Bench", config={"root": str(folder)}), add


def record_every_landed_item(folder: Path, source: DataSourceConfig, resource: Any) -> int:
    """Write the lineage record of every item landed so far, as its sync run would have: all of them.

    The sensor looks versions up in the records of the landed items (not in Dagster's event log).
    """
    async def listing() -> list[Any]:
        async with resource.build_connector() as connector:
            return list(await connector.list_items())

    items = [i for i in run_coroutine(listing()) if not i.path.startswith("new/")]
    started = time.perf_counter()
    for count, item in enumerate(items, 1):
        write_provenance(folder, item.path, {"source_id": source.id, "identifier": item.path,
                                             "source_version": item_version(item)}, durable=False)
        if count % 10_000 == 0:
            print(f"  recorded {count:,} landed items in {time.perf_counter() - started:.0f} s", flush=True)
    return len(items)


def timed(function: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def requested_items(data: Any, slug: str) -> list[str]:
    ops = (r.run_config["ops"][f"{slug}_sync_items"] for r in data.run_requests)
    return [item["identifier"] for op in ops for item in op["config"]["items"]]


class Bench:
    """The sensor, its resources and instance, and the measurements (lists of seconds) so far."""

    def __init__(self, defs: Any, source: DataSourceConfig, instance: DagsterInstance) -> None:
        self.slug = source_slug(source.id)
        self.defs, self.instance = defs, instance
        self.resources = dict(defs.resources or {})
        self.sensor = defs.resolve_sensor_def(f"{self.slug}_sensor")
        self.connector_resource = self.resources[f"{self.slug}_source"]
        self.seconds: dict[str, list[float]] = {}

    def tick(self, cursor: str | None, label: str) -> Any:
        context = build_sensor_context(instance=self.instance, cursor=cursor, resources=self.resources,
                                       definitions=self.defs)
        data, seconds = timed(lambda: self.sensor.evaluate_tick(context))
        self.seconds.setdefault(label, []).append(seconds)
        return data

    def bare_listing(self) -> int:
        async def listing() -> int:
            async with self.connector_resource.build_connector() as connector:
                return len(await connector.list_items())

        count, seconds = timed(lambda: run_coroutine(listing()))
        self.seconds.setdefault("bare listing", []).append(seconds)
        return int(count)

    def first_sync(self, items: int) -> tuple[str | None, int]:
        """Ticks from no cursor until nothing is requested; checks every item was requested once."""
        cursor, ticks, requested, slowest = None, 0, [], 0.0
        while True:
            data = self.tick(cursor, "first sync: every tick")
            ticks, slowest = ticks + 1, max(slowest, self.seconds["first sync: every tick"][-1])
            batch = requested_items(data, self.slug)
            requested += batch
            cursor = data.cursor
            if not batch:
                break
        expect(len(requested) == items == len(set(requested)), f"first sync requested {len(requested)} "
               f"items ({len(set(requested))} distinct), not each of {items} once")
        self.seconds.setdefault("first sync: slowest tick", []).append(slowest)
        every = self.seconds["first sync: every tick"]
        self.seconds.setdefault("first sync: all ticks", []).append(sum(every[-ticks:]))
        return cursor, ticks

    def table(self) -> str:
        lines = ["| measurement | median s | fastest s | slowest s | runs |", "| --- | ---: | ---: | ---: | ---: |"]
        for label, values in self.seconds.items():
            lines.append(f"| {label} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} | "
                         f"{len(values)} |")
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--source", choices=["memory", "local"], default="memory")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    begin()
    register_test_connectors()
    # this bench measures the exact (cursor) tick; a source listing more than TICK_LISTING_LIMIT items gets
    # full sync runs instead (its tick: the "sensor tick" row of benchmarks/bench_growth.py)
    sensors.TICK_LISTING_LIMIT = max(sensors.TICK_LISTING_LIMIT, args.items + args.new)
    with scratch("da-bench-sensor-") as root:
        (root / "home").mkdir()
        source, add = (memory_source(args.items) if args.source == "memory"
                       else local_source(args.items, root / "files"))
        defs = build_definitions(sources=[source], workspace=str(root / "ws"))
        with DagsterInstance.local_temp(str(root / "home")) as instance:
            bench = Bench(defs, source, instance)
            for _ in range(args.repetitions):
                listed = bench.bare_listing()
            for _ in range(args.repetitions):  # a fresh deployment: nothing recorded yet
                cursor, first_ticks = bench.first_sync(listed)
            new = [add(index, NOW + index if index % 10 else NOW - 20 * 86400) for index in range(args.new)]
            recorded = record_every_landed_item(root / "ws" / source.id, source, bench.connector_resource)
            for _ in range(args.repetitions):  # the same cursor each time: the same work
                data = bench.tick(cursor, f"tick with {args.new} new items")
                expect(sorted(requested_items(data, bench.slug)) == sorted(new),
                       f"the tick requested {len(requested_items(data, bench.slug))} items, not the {args.new} new")
            for _ in range(args.repetitions):
                quiet = bench.tick(data.cursor, "tick with nothing new")
                expect(not quiet.run_requests, "a tick with nothing new requested runs")
            where = describe_filesystem(root)
    report = {
        "source": args.source, "items": listed, "new_items": args.new, "repetitions": args.repetitions,
        "instance_and_files_on": where, "landed_items_recorded": recorded, "first_sync_ticks": first_ticks,
        "cursor_bytes": len(data.cursor or ""), "cursor_bytes_quiet": len(quiet.cursor or ""),
        "median_seconds": {label: round(statistics.median(v), 3) for label, v in bench.seconds.items()},
    }
    text = (f"## sensor over {listed:,} items ({args.source}), {recorded:,} landed items recorded, "
            f"instance on {where}\n\n{bench.table()}\n\nfirst sync: {first_ticks} ticks; cursor "
            f"{report['cursor_bytes']:,} bytes ({report['cursor_bytes_quiet']:,} after the quiet tick)\n")
    print(text)
    write_result(f"bench_sensor_{args.source}", text, data=report)


if __name__ == "__main__":
    main()
