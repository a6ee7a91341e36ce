"""Sensor tick time and cursor size on a source of 100,000 items with 100 new ones.

Measures, beside the time of the bare listing (``list_items``):

* the first sync's ticks (bounded work per tick: how many ticks, the slowest);
* a steady-state tick after 100 new items appeared (90 recent, 10 with old timestamps);
* the stored cursor's size.

The source is the in-memory connector (``--source memory``, default) or a local
folder of real files (``--source local``, slower to set up). Results are printed
and written to ``benchmarks/results/bench_sensor_<source>.json``.

Usage:
    .venv/bin/python benchmarks/bench_sensor.py [--items 100000] [--new 100] [--source memory|local]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, build_sensor_context

from connectors.base import DataSourceConfig
from connectors.landing.lineage import write_provenance
from connectors.testing import memory_store
from da_pipelines.aio import run_coroutine
from da_pipelines.cursor import bucket_of, item_version
from da_pipelines.definitions import build_definitions
from da_pipelines.names import source_slug
from tests.dagster_location import register_test_connectors

NOW = int(time.time())
RESULTS = Path(__file__).resolve().parent / "results"


def memory_source(items: int) -> tuple[DataSourceConfig, Any]:
    store = memory_store("bench")
    for index in range(items):
        store.put(f"data/{index // 1000:03d}/part-{index:06d}.parquet", b"x", NOW - 30 * 86400 + index * 25,
                  version=f"v{index}")

    def add(index: int, modified_at: int) -> None:
        store.put(f"new/part-{index:06d}.parquet", b"y", modified_at, version=f"n{index}")

    return DataSourceConfig(id="bench", type="memory", name="Bench", config={"store": "bench"}), add


def local_source(items: int, folder: Path) -> tuple[DataSourceConfig, Any]:
    for index in range(items):
        path = folder / f"{index // 1000:03d}" / f"part-{index:06d}.csv"
        if index % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        stamp = NOW - 30 * 86400 + index * 25
        os.utime(path, (stamp, stamp))

    def add(index: int, modified_at: int) -> None:
        path = folder / "new" / f"part-{index:06d}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"y")
        os.utime(path, (modified_at, modified_at))

    return DataSourceConfig(id="bench", type="local_file", name="Bench", config={"root": str(folder)}), add


def record_landed_bucket_mates(folder: Path, source: DataSourceConfig, resource: Any) -> int:
    """Write lineage records for the items sharing a bucket with the new old-timestamp items.

    In production every landed item has one (written by its sync run); landing all 100,000 here
    would take minutes, and only these are looked up by the tick, so only these are written.
    """
    async def listing() -> list[Any]:
        async with resource.build_connector() as connector:
            return await connector.list_items()

    items = run_coroutine(listing())
    buckets = {bucket_of(i.path) for i in items if i.path.startswith("new/") and i.modified_at < NOW - 86400}
    mates = [i for i in items if bucket_of(i.path) in buckets and not i.path.startswith("new/")]
    for item in mates:
        write_provenance(folder, item.path, {"source_id": source.id, "identifier": item.path,
                                             "source_version": item_version(item)}, durable=False)
    return len(mates)


def timed(function: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--source", choices=["memory", "local"], default="memory")
    args = parser.parse_args()
    register_test_connectors()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "home").mkdir()
        source, add = (memory_source(args.items) if args.source == "memory"
                       else local_source(args.items, root / "files"))
        defs = build_definitions(sources=[source], workspace=str(root / "ws"))
        resources = dict(defs.resources or {})
        sensor = defs.resolve_sensor_def(f"{source_slug(source.id)}_sensor")
        connector_resource = resources[f"{source_slug(source.id)}_source"]
        with DagsterInstance.local_temp(str(root / "home")) as instance:

            def tick(cursor: str | None) -> Any:
                context = build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                               definitions=defs)
                return sensor.evaluate_tick(context)

            async def bare_listing() -> int:
                async with connector_resource.build_connector() as connector:
                    return len(await connector.list_items())

            listed, listing_s = timed(lambda: run_coroutine(bare_listing()))
            cursor, first_ticks, slowest, requested = None, 0, 0.0, 0
            while True:
                data, seconds = timed(lambda c=cursor: tick(c))
                first_ticks, slowest = first_ticks + 1, max(slowest, seconds)
                count = sum(len(r.run_config["ops"][f"{source_slug(source.id)}_sync_items"]["config"]["items"])
                            for r in data.run_requests)
                requested, cursor = requested + count, data.cursor
                if count == 0:
                    break
            for index in range(args.new):
                add(index, NOW + index if index % 10 else NOW - 20 * 86400)  # 1 in 10: old timestamp
            landed = record_landed_bucket_mates(root / "ws" / source.id, source, connector_resource)
            data, steady_s = timed(lambda: tick(cursor))
            steady_requested = sum(len(r.run_config["ops"][f"{source_slug(source.id)}_sync_items"]["config"]["items"])
                                   for r in data.run_requests)
            quiet, quiet_s = timed(lambda: tick(data.cursor))
    report = {
        "source": args.source, "items": listed, "new_items": args.new,
        "bare_listing_s": round(listing_s, 3),
        "first_sync_ticks": first_ticks, "first_sync_items_requested": requested,
        "first_sync_slowest_tick_s": round(slowest, 3),
        "landed_bucket_mates_recorded": landed,
        "tick_with_new_items_s": round(steady_s, 3), "tick_with_new_items_requested": steady_requested,
        "tick_nothing_new_s": round(quiet_s, 3), "tick_nothing_new_requested": len(quiet.run_requests),
        "cursor_bytes": len(data.cursor or ""), "cursor_bytes_quiet": len(quiet.cursor or ""),
    }
    for key, value in report.items():
        print(f"{key:32} {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"bench_sensor_{args.source}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
