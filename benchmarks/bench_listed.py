"""Peak RSS of the CLI sync (``source_sync.sync_source``) as the *listed* item count grows to 10,000,000.

The source is synthetic: a connector type ``synthetic`` (registered in the child
process) whose ``iter_items`` generates ``count`` items on the fly
(``d0000/f00000000.csv`` ..., 1,000 per folder, version ``v1``), so no
listing is ever held by the source itself. The fetch is replaced by a stub
that returns each item's lineage record without writing a file, so what is
measured is our side of a sync: the listing streamed to its spill file, the
plan (one lineage lookup per item, as a re-sync makes), the batches of fetch
calls, and the walk for items removed at the source. Each count runs in its
own child process (peak RSS from GNU time); the CLI's report is the one
``da-sources fetch --all`` uses (records counted, not kept).

Target: peak RSS at most 300 MiB at 10,000,000 listed items, and flat (within
50 MiB of the smallest count). Results to ``benchmarks/results/bench_listed.json``.

Usage:
    .venv/bin/python -m benchmarks.bench_listed --dir /work/tmp-million [--counts 100000,1000000,10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Candidate, run_once
from benchmarks.results import begin, write_result

RSS_LIMIT_MIB = 300.0
HOW_BUILT = ("the synthetic source: a connector type 'synthetic' registered in the child process, whose iter_items "
             "generates the items on the fly (d0000/f00000000.csv ..., 1,000 per folder, size 1, version v1), so the "
             "source never holds its listing; the fetch is a stub that returns each item's lineage record")
RESYNC_NOTE = ("dataset_resync: the prior state (the dataset's manifest of N entries at version v1) is written "
               "directly before the timed re-sync; no landed file exists, so the plan's stat of each landed file "
               "(dataset_sync._intact) answers yes; every item is then unchanged and nothing is fetched")


def synthetic_connector_class() -> type[Any]:
    """The ``synthetic`` connector: ``config.items`` generated items, never held."""
    from connectors.base import DataItem, DataSourceConnector

    class SyntheticConnector(DataSourceConnector):
        async def connect(self) -> bool:
            self._connected = True
            return True

        async def disconnect(self) -> None:
            self._connected = False

        async def test_connection(self) -> bool:
            return True

        async def list_items(self, path: str | None = None) -> list[DataItem]:
            return [item async for item in self.iter_items(path)]

        async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
            for n in range(int(self.config.config["items"])):
                name = f"f{n:08d}.csv"
                yield DataItem(name=name, path=f"d{n // 1000:04d}/{name}", size=1, modified_at=1_700_000_000,
                               metadata={"version": "v1"})
                if n % 4096 == 0:
                    await asyncio.sleep(0)

        async def fetch_data(self, identifier: str, workspace: str) -> str:
            raise NotImplementedError  # the benchmark stubs the fetch

        async def get_metadata(self, identifier: str) -> dict[str, Any]:
            return {"size": 1, "version": "v1"}

    return SyntheticConnector


def dataset_child(count: int, workspace: str) -> None:
    """In the child process: the Dagster layer's ``sync_datasets`` (one plain item set), the fetch stubbed."""
    import connectors.syncing.dataset_sync as dataset_sync
    from connectors.base import DataSourceConfig
    from connectors.pipeline_settings import ItemSetSpec
    from connectors.plugins import get_connector_class, register_connector
    from connectors.syncing.datasets import set_datasets

    register_connector("synthetic", synthetic_connector_class(), replace=True)
    setattr(dataset_sync, "fetch_many_checked", _stub)  # noqa: B010  (the one seam: landing is not measured)
    config = DataSourceConfig(id="synthetic", type="synthetic", name="Synthetic", config={"items": count})
    datasets = set_datasets("synthetic", [ItemSetSpec.model_validate({"name": "files"})])
    started = time.perf_counter()
    run = asyncio.run(dataset_sync.sync_datasets(lambda: get_connector_class("synthetic")(config), Path(workspace),
                                                 datasets))
    seconds = time.perf_counter() - started
    assert run.outcomes[0].landed_count == count, run.outcomes[0].landed_count
    print(seconds)


async def _stub(connector: Any, identifiers: Sequence[str], folder: Any, concurrency: int = 8,
                versions: Mapping[str, str] | None = None) -> list[Any]:
    from connectors.checked_fetch import CheckedResult

    return [CheckedResult(i, path=f"{folder}/{i}", record={
        "identifier": i, "local_path": f"{folder}/{i}", "size": 1, "source_version": "v1", "sha256": "0" * 64})
        for i in identifiers]


def resync_child(count: int, workspace: str) -> None:
    """In the child process: the Dagster layer's ``sync_datasets`` *re-sync* of ``count`` synthetic items,
    nothing changed; prints the re-sync's seconds.

    The prior state a first sync leaves is written directly: the dataset's manifest of ``count`` entries
    (version ``v1``, as the listing shows), streamed in identifier order. Landed files are not written
    (10,000,000 of them would be the benchmark): ``_intact`` (the plan's stat of each landed file) answers
    yes, and the fetch is stubbed (nothing is fetched when nothing changed). What is measured: the listing
    spilled, the prior manifest loaded into the spill, each batch planned against it, the data version
    digested twice (prior, now), the removed-at-source walk.
    """
    import connectors.syncing.dataset_sync as dataset_sync
    from connectors.base import DataSourceConfig
    from connectors.pipeline_settings import ItemSetSpec
    from connectors.plugins import get_connector_class, register_connector
    from connectors.syncing.dataset_manifest import ManifestEntry, write_manifest_sorted
    from connectors.syncing.datasets import set_datasets

    register_connector("synthetic", synthetic_connector_class(), replace=True)
    setattr(dataset_sync, "fetch_many_checked", _stub)  # noqa: B010  (nothing changed: nothing is fetched)
    setattr(dataset_sync, "_intact", lambda *landed, **how: True)  # noqa: B010  (no landed file is written)
    config = DataSourceConfig(id="synthetic", type="synthetic", name="Synthetic", config={"items": count})
    datasets = set_datasets("synthetic", [ItemSetSpec.model_validate({"name": "files"})])
    entries = (ManifestEntry(identifier=p, version="v1", sha256="0" * 64, size=1, path=p)
               for p in (f"d{n // 1000:04d}/f{n:08d}.csv" for n in range(count)))  # already in identifier order
    write_manifest_sorted(Path(workspace), datasets[0].file_name, entries, count,
                          {"dataset": datasets[0].label, "data_version": "prior"})
    started = time.perf_counter()
    run = asyncio.run(dataset_sync.sync_datasets(lambda: get_connector_class("synthetic")(config), Path(workspace),
                                                 datasets))
    seconds = time.perf_counter() - started
    outcome = run.outcomes[0]
    assert outcome.unchanged == count and outcome.landed_count == 0, (outcome.unchanged, outcome.landed_count)
    print(seconds)


def child(count: int, workspace: str) -> None:
    """In the child process: one full sync of ``count`` synthetic items, the fetch stubbed; prints seconds."""
    import connectors.syncing.source_sync as sync
    from connectors.base import DataSourceConfig, DataSourceConnector
    from connectors.checked_fetch import CheckedResult
    from connectors.plugins import register_connector

    register_connector("synthetic", synthetic_connector_class(), replace=True)

    async def stub(connector: DataSourceConnector, identifiers: Sequence[str], folder: Any, concurrency: int = 8,
                   versions: Mapping[str, str] | None = None) -> list[CheckedResult]:
        return [CheckedResult(i, path=f"{folder}/{i}", record={"identifier": i, "local_path": f"{folder}/{i}",
                                                              "size": 1, "source_version": "v1"})
                for i in identifiers]

    setattr(sync, "fetch_many_checked", stub)  # noqa: B010  (the one seam: landing is not measured)
    config = DataSourceConfig(id="synthetic", type="synthetic", name="Synthetic", config={"items": count})
    report = sync.SyncReport(keep_items=False)

    async def run() -> int:
        from connectors.plugins import get_connector_class

        landed = 0
        async for _ in sync.sync_source(get_connector_class("synthetic")(config), Path(workspace), report=report):
            landed += 1
        return landed

    started = time.perf_counter()
    landed = asyncio.run(run())
    seconds = time.perf_counter() - started
    assert landed == count and report.landed_total == count, (landed, report.summary())
    print(report.summary())
    print(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--counts", default="100000,1000000,10000000")
    parser.add_argument("--sync", choices=("cli", "dataset", "dataset_resync"), default="cli",
                        help="cli: source_sync.sync_source; dataset: the Dagster layer's sync_datasets; "
                             "dataset_resync: its re-sync, nothing changed (see resync_child)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        children = {"cli": child, "dataset": dataset_child, "dataset_resync": resync_child}
        children[args.sync](args.child, str(args.dir))
        return
    begin()
    figures: list[dict[str, Any]] = []
    for count in (int(c) for c in args.counts.split(",")):
        workspace = args.dir / f"ws-listed-{count}"
        workspace.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.bench_listed", "--dir", str(workspace), "--sync", args.sync,
                   "--child", str(count)]
        load = f"{os.getloadavg()[0]:.1f} / {os.cpu_count()} cores"
        sample, _ = run_once(Candidate(f"listed {count:,}", command, "", lambda out: None, reports_seconds=True))
        shutil.rmtree(workspace, ignore_errors=True)
        figures.append({"sync": args.sync, "items": count, "seconds": round(sample.seconds, 1),
                        "us_per_item": round(sample.seconds / count * 1e6, 1),
                        "peak_rss_mib": round(sample.peak_rss_mib, 1), "load": load})
        print(figures[-1], flush=True)
    smallest = min(figures, key=lambda f: f["items"])
    peaks = [float(f["peak_rss_mib"]) for f in figures]
    verdict = max(peaks) <= RSS_LIMIT_MIB and max(peaks) - float(smallest["peak_rss_mib"]) <= 50
    print(f"flat and under {RSS_LIMIT_MIB:.0f} MiB: {verdict}")
    lines = ["| listed items | s | us/item | peak RSS MiB | load at start |", "| ---: | ---: | ---: | ---: | --- |"]
    lines += [f"| {f['items']:,} | {f['seconds']} | {f['us_per_item']} | {f['peak_rss_mib']} | {f['load']} |"
              for f in figures]
    write_result("bench_listed" if args.sync == "cli" else f"bench_listed_{args.sync}",
                 f"## {args.sync} sync of a synthetic listing (items generated, fetch stubbed)\n\n"
                 + "\n".join(lines) + f"\n\nflat and under {RSS_LIMIT_MIB:.0f} MiB: {verdict}\n",
                 [HOW_BUILT, *([RESYNC_NOTE] if args.sync == "dataset_resync" else [])],
                 data={"figures": figures, "flat_and_under_300_mib": verdict})


if __name__ == "__main__":
    main()
