"""The Dagster sync job against the connector's own CLI, on the same local files, side by side.

On ``--items`` local files of ``--size`` bytes (default 10,000 x 4 KiB), in one run, interleaved:

* ``da-sources fetch bench --all`` (the same connector, no Dagster);
* ``dagster job execute -m da_pipelines -j bench_sync``, first sync, default (SQLite) instance;
* the same job again with nothing changed (a re-sync);
* the same job on an empty source: the job's fixed start-up.

Targets: the first sync at most 1.5x the CLI's time; the re-sync, beyond the
job's fixed start-up (the empty source's run), at most 0.2x the first sync.
With ``--big N`` (e.g. 100000) it also syncs N files once and reports time, peak
RSS and the number of events Dagster stored. Outputs go under ``$DA_BENCH_DIR``
(default: the system temporary folder); results to ``benchmarks/results/bench_dagster_sync.md`` (and ``.json``).

Usage:
    .venv/bin/python -m benchmarks.bench_dagster_sync [--items 10000] [--size 4096] [--rounds 1] [--big 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Candidate, expect, report, run_once
from benchmarks.results import begin, write_result

BIN = Path(sys.executable).parent


def make_files(root: Path, count: int, size: int) -> None:
    """``count`` files of ``size`` random bytes, 1,000 per folder."""
    for index in range(count):
        folder = root / f"{index // 1000:04d}"
        if index % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part-{index:06d}.bin").write_bytes(os.urandom(size))


def sources_file(path: Path, source_id: str, root: Path) -> Path:
    path.write_text(f"sources:\n  - id: {source_id}\n    type: local_file\n    name: Bench\n"
                    f"    config: {{root: {json.dumps(str(root))}}}\n")
    return path


def job_env(scratch: Path, sources: Path, name: str) -> dict[str, str]:
    home = scratch / f"home-{name}"
    return {"DA_SOURCES_FILE": str(sources), "DA_WORKSPACE": str(scratch / f"ws-{name}"), "DAGSTER_HOME": str(home)}


def reset(env: dict[str, str]) -> None:
    """A fresh workspace and a fresh default instance (SQLite under DAGSTER_HOME)."""
    for key in ("DA_WORKSPACE", "DAGSTER_HOME"):
        shutil.rmtree(env[key], ignore_errors=True)
    Path(env["DAGSTER_HOME"]).mkdir(parents=True)


def events_stored(home: Path) -> int:
    """Event log rows of every run in a default instance (one SQLite file per run).

    The instance's ``index.db`` (which repeats asset events for look-ups) is not a run's and is
    not counted; call this with one run in the instance to count that run's events.
    """
    total = 0
    for db in (home / "history" / "runs").glob("*.db"):
        if db.stem == "index":
            continue
        with sqlite3.connect(db) as conn:
            total += conn.execute("SELECT COUNT(*) FROM event_logs").fetchone()[0]
    return total


def landed_files(workspace: Path) -> int:
    """Landed data files under ``workspace`` (lineage records and locks, in ``.lineage``, not counted)."""
    return sum(1 for path in workspace.rglob("*") if path.is_file() and ".lineage" not in path.parts)


def lands(workspace: Path, count: int) -> Callable[[str], None]:
    """A check: ``count`` files landed under ``workspace``, each with its lineage record."""
    def verify(_: str) -> None:
        files = landed_files(workspace)
        expect(files == count, f"{workspace}: {files} files landed, expected {count}")
        records = sum(1 for _ in workspace.rglob(".lineage/**/*.json"))
        expect(records >= count, f"{workspace}: {records} lineage records for {count} files")
    return verify


def job(name: str, source_id: str, env: dict[str, str], prepare: bool, expected: int) -> Candidate:
    command = [str(BIN / "dagster"), "job", "execute", "-m", "da_pipelines", "-j", f"{source_id}_sync"]
    settings = "default SQLite instance" + (", fresh" if prepare else ", kept from the last run")
    return Candidate(name, command, settings, lands(Path(env["DA_WORKSPACE"]) / source_id, expected), env=env,
                     prepare=(lambda: reset(env)) if prepare else None)


def compare_with_cpu(candidates: list[Candidate], rounds: int) -> dict[str, float]:
    """``benchmarks.common.compare``, also measuring each run's CPU time (user + sys of the process tree).

    On a shared machine wall time depends on the neighbours; CPU time says what the run itself costs.
    """
    cpu: dict[str, list[float]] = {c.name: [] for c in candidates}
    for _ in range(rounds):
        for candidate in candidates:
            if candidate.prepare:
                candidate.prepare()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            sample, stdout = run_once(candidate)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            candidate.verify(stdout)
            candidate.samples.append(sample)
            cpu[candidate.name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {name: sorted(values)[len(values) // 2] for name, values in cpu.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--big", type=int, default=0, help="also sync this many files once (e.g. 100000)")
    args = parser.parse_args()
    begin()
    results: dict[str, object] = {"items": args.items, "size": args.size}
    with tempfile.TemporaryDirectory(dir=os.environ.get("DA_BENCH_DIR")) as temp:
        scratch = Path(temp)
        make_files(scratch / "src", args.items, args.size)
        (scratch / "empty").mkdir()
        bench = sources_file(scratch / "bench.yaml", "bench", scratch / "src")
        empty = sources_file(scratch / "empty.yaml", "empty", scratch / "empty")
        first_env, resync_env, empty_env = (job_env(scratch, bench, "first"), job_env(scratch, bench, "resync"),
                                            job_env(scratch, empty, "empty"))
        reset(resync_env)
        run_once(job("warm", "bench", resync_env, False, args.items))  # the re-sync's first sync
        cli_ws = scratch / "ws-cli"
        cli = Candidate("da-sources fetch --all", [str(BIN / "da-sources"), "--sources", str(bench), "fetch", "bench",
                                                   "--all", "--workspace", str(cli_ws)],
                        "same connector, no Dagster", lands(cli_ws / "bench", args.items),
                        prepare=lambda: shutil.rmtree(cli_ws, ignore_errors=True))
        candidates = [cli, job("dagster job execute (first sync)", "bench", first_env, True, args.items),
                      job("dagster job execute (re-sync, nothing changed)", "bench", resync_env, False, args.items),
                      job("dagster job execute (empty source: start-up)", "empty", empty_env, True, 0)]
        cpu = compare_with_cpu(candidates, args.rounds)
        text = report(f"{args.items:,} local files of {args.size} B", candidates, items=args.items,
                      baseline=cli.name)
        first, resync, start = (c.median_seconds for c in candidates[1:])
        print("CPU seconds (user + sys, median): " + ", ".join(f"{c.name}: {cpu[c.name]:.1f}" for c in candidates))
        results.update({
            "cpu_s": cpu, "cpu_first_vs_cli": round(cpu[candidates[1].name] / cpu[cli.name], 3),
            "table": text, "cli_s": cli.median_seconds, "first_sync_s": first, "resync_s": resync, "startup_s": start,
            "first_vs_cli": round(first / cli.median_seconds, 3),
            "resync_beyond_startup_vs_first": round(max(resync - start, 0) / first, 3),
            "events_first_sync": events_stored(Path(first_env["DAGSTER_HOME"])),
        })
        print(f"first sync / CLI: {results['first_vs_cli']} (target <= 1.5); (re-sync - start-up) / first sync: "
              f"{results['resync_beyond_startup_vs_first']} (target <= 0.2); events stored by the first sync: "
              f"{results['events_first_sync']}", flush=True)
        if args.big:
            results["big"] = big_run(scratch, args.big, args.size)
    tables = [str(results.pop("table")), _summary(results)]
    write_result("bench_dagster_sync", tables, [
        "whole processes on both sides: the CLI and `dagster job execute` each pay their start-up",
        "events: event-log rows of one first-sync run (the instance's index.db not counted)"], results)


def _summary(results: dict[str, object]) -> str:
    lines = ["| figure | value |", "| --- | ---: |"]
    for key, value in results.items():
        inner = value.items() if isinstance(value, dict) else [("", value)]
        lines += [f"| {key}{': ' + str(name) if name else ''} | {figure} |" for name, figure in inner]
    return "## Figures (medians; CPU = user + sys of the process tree)\n\n" + "\n".join(lines) + "\n"


def big_run(scratch: Path, count: int, size: int) -> dict[str, object]:
    """One first sync of ``count`` files: time, peak RSS, events stored."""
    make_files(scratch / "big", count, size)
    env = job_env(scratch, sources_file(scratch / "big.yaml", "big", scratch / "big"), "big")
    reset(env)
    big = job("big", "big", env, False, count)
    sample, stdout = run_once(big)
    big.verify(stdout)
    events = events_stored(Path(env["DAGSTER_HOME"]))  # the first sync's alone
    again, stdout = run_once(big)
    big.verify(stdout)
    facts: dict[str, object] = {
        "items": count, "first_sync_s": round(sample.seconds, 1), "peak_rss_mib": round(sample.peak_rss_mib),
        "resync_s": round(again.seconds, 1), "events_first_sync": events}
    print(f"{count:,} files: " + ", ".join(f"{k} {v}" for k, v in facts.items()), flush=True)
    return facts


if __name__ == "__main__":
    main()
