"""A sharded set against the same set in one step: ``dagster job execute`` first syncs, side by side.

On ``--items`` local files of ``--size`` bytes (default 100,000 x 4 KiB), interleaved:

* ``one step``: the set as declared by default (one step, in the run's process);
* ``N shards``: the same set with ``shards: N`` (``--shards``, default 2): N shard steps in
  processes of their own (the multiprocess executor, forked from a fork server), the source's
  pool limit set to N, then the merge step (which also runs the set's integrity check).

Both are whole ``dagster job execute`` processes (the same clock), each on a fresh default
instance and an empty workspace; every run's output is checked (all files landed, each with
its lineage record, and the set's manifest whole) before its time counts. Target on a
2-core machine: 2 shards at most 0.65x the one step's time.

Fair and stable on one machine:

* nothing is deleted between the timed runs: each run lands into a new folder and instance
  (all removed at the end). On ext4 without a journal (this machine's root file system) a
  new inode is not given the number of one freed in the last ~30 s: each file created then
  scans past the freed ones (``recently_deleted`` in the kernel's ``find_inode_bit``: a
  third of a run's CPU in ``perf``), so a run right after the previous run's outputs were
  removed was up to a third slower, and by how much depended on the order;
  the file system is synced before each run (the previous run's write-back is not billed to
  the next);
* besides GNU time's figures (the largest single process's peak RSS), the whole process tree
  is sampled (``benchmarks.tree_usage``): the peak of the summed PSS and the CPU seconds of
  the run's process, the fork server and the step processes it forks;
* each run's phases come from its event log: start-up (process start to the first step),
  the steps (the shard steps, then the merge), and the exit after the last step.

Outputs go under ``$DA_BENCH_DIR``; results to ``benchmarks/results/bench_sharded.md``
(``bench_sharded_<items>.md`` at another size).

Usage:
    .venv/bin/python -m benchmarks.bench_sharded [--items 100000] [--size 4096] [--shards 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench_dagster_sync import BIN, job_env, lands, make_files
from benchmarks.common import Candidate, Sample, bench_dir, compare, expect, report, run_once, same_clock_ratio
from benchmarks.results import begin, write_result
from benchmarks.tree_usage import TreeUsage


@dataclass
class TreeFigures:
    """Per run of one candidate: the tree's peak PSS and CPU, and the phases of the run (seconds)."""

    peak_mib: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)


def sources_file(path: Path, root: Path, shards: int) -> Path:
    """A sources file of one local source ``bench`` whose one set has ``shards`` shards."""
    path.write_text(json.dumps({"sources": [{"id": "bench", "type": "local_file", "name": "Bench",
                                             "config": {"root": str(root)},
                                             "metadata": {"dagster": {"item_sets": [
                                                 {"name": "files", "shards": shards}]}}}]}))
    return path


def fresh(env: dict[str, str], scratch: Path, label: str, pool_limit: int) -> Callable[[], None]:
    """Before each run: a new workspace and instance (nothing deleted: see the module), the pool limit set."""
    numbers = itertools.count()

    def prepare() -> None:
        from dagster import DagsterInstance

        from da_pipelines.deploy import set_pool_limits

        number = next(numbers)
        env["DA_WORKSPACE"] = str(scratch / f"ws-{label}-{number}")
        env["DAGSTER_HOME"] = str(scratch / f"home-{label}-{number}")
        Path(env["DAGSTER_HOME"]).mkdir(parents=True)
        with DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
            set_pool_limits(instance, ["bench"], pool_limit)
        os.sync()  # the previous run's write-back is not billed to this one
    return prepare


def whole_set(env: dict[str, str], count: int) -> Callable[[str], None]:
    """A check of the run's workspace: every file landed with its record, and the set's manifest names every item."""
    def verify(stdout: str) -> None:
        from connectors.syncing.dataset_manifest import read_manifest

        workspace = Path(env["DA_WORKSPACE"]) / "bench"
        lands(workspace, count)(stdout)
        entries = len(read_manifest(workspace, "files"))
        expect(entries == count, f"the set's manifest holds {entries} items, expected {count}")
    return verify


def candidate(name: str, scratch: Path, source: Path, label: str, count: int, shards: int) -> Candidate:
    env = job_env(scratch, source, label)
    command = [str(BIN / "dagster"), "job", "execute", "-m", "da_pipelines", "-j", "bench_sync"]
    settings = ("one step, in-process executor" if shards == 1 else
                f"{shards} shard steps + merge (and check), multiprocess executor (fork server), pool limit {shards}")
    return Candidate(name, command, settings, whole_set(env, count), env=env,
                     prepare=fresh(env, scratch, label, max(shards, 1)))


def phases(home: str, started: float, ended: float) -> dict[str, float]:
    """The run's phases from its event log: start-up, shard steps (or the one step), merge, exit (seconds)."""
    from dagster import DagsterEventType, DagsterInstance

    spans: dict[str, list[float]] = {}
    with DagsterInstance.local_temp(home) as instance:
        (run,) = instance.get_runs()
        for event in instance.all_logs(run.run_id):
            if event.step_key and event.dagster_event_type in (DagsterEventType.STEP_WORKER_STARTING,
                                                               DagsterEventType.STEP_START,
                                                               DagsterEventType.STEP_SUCCESS):
                spans.setdefault(event.step_key, []).append(event.timestamp)
    merge = [times for key, times in spans.items() if key.endswith("_merge")]
    work = [times for key, times in spans.items() if not key.endswith("_merge")]
    first, last_work = min(min(t) for t in work), max(max(t) for t in work)
    last = max(max(t) for t in spans.values())
    return {"start-up": first - started, "steps": last_work - first,
            "merge": (max(merge[0]) - last_work) if merge else 0.0, "exit": ended - last}


def compare_trees(candidates: list[Candidate], rounds: int) -> dict[str, TreeFigures]:
    """``benchmarks.common.compare``, each run also sampled as a process tree and split into its phases."""
    figures = {c.name: TreeFigures() for c in candidates}

    def observed(c: Candidate) -> tuple[Sample, str]:
        started = time.time()
        with TreeUsage() as usage:
            sample, stdout = run_once(c)
        tree = figures[c.name]
        tree.peak_mib.append(usage.peak_mib)
        tree.cpu_seconds.append(usage.cpu_seconds)
        tree.phases.append(phases((c.env or {})["DAGSTER_HOME"], started, started + sample.process_seconds))
        print(f"{c.name}: {sample.process_seconds:.1f} s, tree {usage.cpu_seconds:.1f} CPU s, "
              f"{usage.peak_mib:.0f} MiB; " + ", ".join(f"{k} {v:.1f} s" for k, v in tree.phases[-1].items()),
              flush=True)
        return sample, stdout

    compare(candidates, rounds, run=observed)
    return figures


def tree_table(candidates: list[Candidate], figures: dict[str, TreeFigures]) -> str:
    """Medians per candidate: every run's seconds, the tree's CPU and peak PSS, the phases."""
    names = list(figures[candidates[0].name].phases[0])
    lines = ["| candidate | runs s | process tree CPU s | process tree peak PSS MiB | "
             + " | ".join(f"{n} s" for n in names) + " |", "| --- | --- | ---: | ---: |" + " ---: |" * len(names)]
    for c in candidates:
        tree = figures[c.name]
        runs = ", ".join(f"{s.process_seconds:.1f}" for s in c.samples)
        lines.append(f"| {c.name} | {runs} | {statistics.median(tree.cpu_seconds):.1f} | {max(tree.peak_mib):.0f} | "
                     + " | ".join(f"{statistics.median(p[n] for p in tree.phases):.1f}" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def round_ratios(many: Candidate, one: Candidate) -> Iterator[float]:
    """The ratio of each round (the same round's runs side by side)."""
    for a, b in zip(many.samples, one.samples, strict=True):
        yield a.process_seconds / b.process_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    begin()
    with tempfile.TemporaryDirectory(prefix="da-bench-sharded-", dir=bench_dir()) as temp:
        scratch = Path(temp)
        make_files(scratch / "src", args.items, args.size)
        one = candidate("one step", scratch, sources_file(scratch / "one.yaml", scratch / "src", 1), "one",
                        args.items, 1)
        many = candidate(f"{args.shards} shards", scratch, sources_file(
            scratch / "many.yaml", scratch / "src", args.shards), "many", args.items, args.shards)
        figures = compare_trees([one, many], args.rounds)
        text = report(f"{args.items:,} local files of {args.size} B, first sync", [one, many], items=args.items,
                      baseline=one.name, where=str(scratch))
        trees = tree_table([one, many], figures)
    ratio = same_clock_ratio(many, one)
    rounds = [round(r, 2) for r in round_ratios(many, one)]
    summary = (f"{args.shards} shards / one step: {ratio}; per round: {', '.join(f'{r:.2f}x' for r in rounds)} "
               f"(target on 2 cores: at most 0.65x)")
    print(summary, flush=True)
    name = "bench_sharded" if args.items == 100_000 else f"bench_sharded_{args.items}"
    write_result(name, [text, "### The process trees (medians; peak: the largest)\n\n" + trees, summary + "\n"], [
        "whole processes on both sides: each `dagster job execute` pays its start-up (the shards also "
        "start a fork server and a process per step)",
        "peak RSS (GNU time) is the largest single process's; the process tree's peak PSS counts the fork "
        "server and its step processes too (pages they share counted once)",
        "nothing deleted between timed runs (ext4 without a journal scans recently freed inodes on each "
        "create), the file system synced before each run"],
        {"items": args.items, "shards": args.shards,
         "shards_over_one": many.median_process_seconds / one.median_process_seconds, "round_ratios": rounds,
         "tree": {n: {"cpu_s": statistics.median(f.cpu_seconds), "peak_pss_mib": max(f.peak_mib),
                      "phases": f.phases} for n, f in figures.items()}})


if __name__ == "__main__":
    main()
