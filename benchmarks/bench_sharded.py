"""A sharded set against the same set in one step: ``dagster job execute`` first syncs, side by side.

On ``--items`` local files of ``--size`` bytes (default 100,000 x 4 KiB), interleaved:

* ``one step``: the set as declared by default (one step, in the run's process);
* ``N shards``: the same set with ``shards: N`` (``--shards``, default 2): N shard steps in
  processes of their own (the multiprocess executor), the source's pool limit set to N, then
  the merge step.

Both are whole ``dagster job execute`` processes (the same clock), each on a fresh default
instance and an empty workspace; every run's output is checked (all files landed, each with
its lineage record, and the set's manifest whole) before its time counts. Target on a
2-core machine: 2 shards at most 0.65x the one step's time. Outputs go under
``$DA_BENCH_DIR``; results to ``benchmarks/results/bench_sharded.md`` (``bench_sharded_<items>.md``
at another size).

Usage:
    .venv/bin/python -m benchmarks.bench_sharded [--items 100000] [--size 4096] [--shards 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_dagster_sync import BIN, job_env, lands, make_files, reset
from benchmarks.common import Candidate, bench_dir, compare, expect, report, same_clock_ratio
from benchmarks.results import begin, write_result


def sources_file(path: Path, root: Path, shards: int) -> Path:
    """A sources file of one local source ``bench`` whose one set has ``shards`` shards."""
    path.write_text(json.dumps({"sources": [{"id": "bench", "type": "local_file", "name": "Bench",
                                             "config": {"root": str(root)},
                                             "metadata": {"dagster": {"item_sets": [
                                                 {"name": "files", "shards": shards}]}}}]}))
    return path


def fresh(env: dict[str, str], pool_limit: int) -> Callable[[], None]:
    """Before each run: an empty workspace, a fresh instance, the source's pool limit set."""
    def prepare() -> None:
        from dagster import DagsterInstance

        from da_pipelines.deploy import set_pool_limits

        reset(env)
        with DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
            set_pool_limits(instance, ["bench"], pool_limit)
    return prepare


def whole_set(workspace: Path, count: int) -> Callable[[str], None]:
    """A check: every file landed with its record, and the set's manifest names every item."""
    files = lands(workspace, count)

    def verify(stdout: str) -> None:
        from connectors.syncing.dataset_manifest import read_manifest

        files(stdout)
        entries = len(read_manifest(workspace, "files"))
        expect(entries == count, f"the set's manifest holds {entries} items, expected {count}")
    return verify


def candidate(name: str, scratch: Path, source: Path, label: str, count: int, shards: int) -> Candidate:
    env = job_env(scratch, source, label)
    command = [str(BIN / "dagster"), "job", "execute", "-m", "da_pipelines", "-j", "bench_sync"]
    settings = ("one step, in-process executor" if shards == 1 else
                f"{shards} shard steps + merge, multiprocess executor, pool limit {shards}")
    return Candidate(name, command, settings, whole_set(Path(env["DA_WORKSPACE"]) / "bench", count), env=env,
                     prepare=fresh(env, max(shards, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    begin()
    with tempfile.TemporaryDirectory(prefix="da-bench-sharded-", dir=bench_dir()) as temp:
        scratch = Path(temp)
        make_files(scratch / "src", args.items, args.size)
        one = candidate("one step", scratch, sources_file(scratch / "one.yaml", scratch / "src", 1), "one",
                        args.items, 1)
        many = candidate(f"{args.shards} shards", scratch, sources_file(
            scratch / "many.yaml", scratch / "src", args.shards), "many", args.items, args.shards)
        compare([one, many], args.rounds)
        text = report(f"{args.items:,} local files of {args.size} B, first sync", [one, many], items=args.items,
                      baseline=one.name, where=str(scratch))
    ratio = same_clock_ratio(many, one)
    summary = f"{args.shards} shards / one step: {ratio} (target on 2 cores: at most 0.65x)"
    print(summary, flush=True)
    name = "bench_sharded" if args.items == 100_000 else f"bench_sharded_{args.items}"
    write_result(name, [text, summary + "\n"], [
        "whole processes on both sides: each `dagster job execute` pays its start-up (the shards also "
        "start a process per step)"], {"items": args.items, "shards": args.shards,
                                       "shards_over_one": many.median_process_seconds / one.median_process_seconds})


if __name__ == "__main__":
    main()
