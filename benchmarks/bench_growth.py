"""Growth: time per item and peak RSS of every sync path at 10,000, 100,000 and 1,000,000 items, in one table.

On one local source of N files of ``--size`` bytes (default 4 KiB), per N, one
child process per path (peak RSS from GNU time, wall time around the child):

* ``cli``: ``da-sources fetch bench --all`` into an empty workspace (a first sync);
* ``cli re-sync``: the same command again, nothing changed;
* ``dagster``: ``dagster job execute -m da_pipelines -j bench_sync`` (default SQLite instance), a first sync;
* ``dagster re-sync``: the same job again, nothing changed;
* ``sensor tick``: one evaluation of ``bench_sensor`` (listing, cursor, run requests), a first tick;
* ``api fetch job``: the API (in process) starts a fetch job of the glob ``000[0-9]/*`` (the 10,000 files
  of the first ten folders: a job holds at most 10,000 items) over the source of N files and waits for
  it; time per *listed* item (the job's work is the same at every N, its glob lists the whole source);
* ``dagster start-up``: ``dagster job execute`` of a source of one file (the start-up a re-sync's
  target leaves out: the target is a re-sync at most 0.05x the first sync beyond start-up).

A path is **flagged** when its time per item at the largest N exceeds 1.3x its
time per item at the smallest, or its peak RSS grows by more than 50 MiB between them.
The machine's load (``uptime``) is recorded with every figure: on a shared
machine the wall times are noisy; the flags compare a path with itself.
Sources and workspaces go under ``--dir`` (made if needed; sources are kept
between runs, so a second run does not rebuild them); results to
``benchmarks/results/bench_growth.md`` and ``bench_growth.json`` (with the
figures of ``benchmarks.bench_listed``, when it ran, appended).

Usage:
    .venv/bin/python -m benchmarks.bench_growth --dir /work/tmp-million [--counts 10000,100000,1000000]
        [--paths cli,cli re-sync,dagster,dagster re-sync,sensor tick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.bench_dagster_sync import BIN, job_env, lands, make_files, reset, sources_file
from benchmarks.common import Candidate, run_once
from benchmarks.results import begin, results_dir, write_result

PATHS = ("cli", "cli re-sync", "dagster", "dagster re-sync", "sensor tick", "api fetch job", "dagster start-up")
TIME_LIMIT, RSS_LIMIT_MIB = 1.3, 50.0
SENSOR_CHILD = """
import sys, time
from dagster import DagsterInstance, build_sensor_context
from da_pipelines.definitions import build_definitions
defs = build_definitions()
sensor = defs.resolve_sensor_def("bench_sensor")
with DagsterInstance.ephemeral() as instance:
    context = build_sensor_context(instance=instance, definitions=defs, resources=dict(defs.resources or {}))
    started = time.perf_counter()
    data = sensor.evaluate_tick(context)
    seconds = time.perf_counter() - started
named = [r for r in data.run_requests if "ops" in r.run_config]  # a full sync run names no items
items = sum(len(r.run_config["ops"]["bench_sync_items"]["config"]["items"]) for r in named)
print(items, "items requested,", len(data.run_requests) - len(named), "full sync run(s) requested")
print(seconds)
"""

API_CHILD = """
import sys, time
from pathlib import Path
from fastapi.testclient import TestClient
from connectors.api import create_app
from connectors.api.api_keys import KeyStore
from connectors.api.policy import ApiPolicy
from connectors.api.api_settings import ApiSettings
from connectors.registry import SourceRegistry
scratch, root = Path(sys.argv[1]), sys.argv[2]
scratch.mkdir(parents=True, exist_ok=True)
settings = ApiSettings(sources_file=scratch / "sources.yaml", keys_file=scratch / "keys.json",
                       audit_log=scratch / "audit.jsonl", workspace_base=scratch / "workspace", timeout_seconds=3600,
                       policy=ApiPolicy.from_mapping({"local_roots": [root], "connector_types": ["local_file"]}))
SourceRegistry(settings.sources_file).add({"id": "bench", "type": "local_file", "name": "Bench",
                                           "config": {"root": root}})
_, manage = KeyStore(settings.keys_file).create("admin")
headers = {"Authorization": f"Bearer {manage}"}
with TestClient(create_app(settings)) as client:
    started = time.perf_counter()
    answer = client.post("/v1/data-sources/bench/fetch", json={"glob": "000[0-9]/*", "workspace": "bench"},
                         headers=headers)
    job = answer.json()
    assert answer.status_code == 202, answer.text
    while job["status"] in ("queued", "running"):
        time.sleep(0.2)
        job = client.get(f"/v1/data-sources/bench/jobs/{job['id']}", headers=headers).json()
    seconds = time.perf_counter() - started
print(job["status"], job["progress"]["items_done"])
print(seconds)
"""

NOTES = [
    "'not run' means not measured on this code; nothing is extrapolated. Earlier figures, on the "
    "code of commits 2689c8a and d6d077e (the CLI sync unchanged since but for the batched removed-at-source "
    "pass): CLI first sync of 1,000,000 files 1,040 s, peak RSS 54 MiB (load ~5); CLI re-sync of them 137 s, "
    "48 MiB (load ~4); CLI sync of 10,000,000 synthetic listed items (bench_listed) 43 MiB.",
    "the sensor tick of a source listing more than 20,000 items reads 20,001 of them and requests one full "
    "sync run (da_pipelines/sensors.py): its work is that run's, the 'dagster re-sync' row when nothing changed",
    "api fetch job: time per listed item of the source (the job lands the same 10,000 files at every N; its "
    "glob lists the whole source through the API's shared listing, spilled to a file under the state folder "
    "and read a batch at a time)",
]


@dataclass
class Figure:
    path: str
    items: int
    seconds: float
    peak_rss_mib: float
    load: str

    @property
    def us_per_item(self) -> float:
        return self.seconds / self.items * 1e6


def load() -> str:
    """The 1-minute load average and the number of cores, e.g. ``"7.9 / 2 cores"``."""
    return f"{os.getloadavg()[0]:.1f} / {os.cpu_count()} cores"


def source(root: Path, count: int, size: int) -> Path:
    """The source of ``count`` files under ``root`` (built once; a marker says it is complete)."""
    folder, done = root / f"src-{count}", root / f"src-{count}.done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        make_files(folder, count, size)
        done.touch()
    return folder


def candidates(root: Path, count: int, size: int) -> dict[str, Candidate]:
    """The paths at ``count`` items; re-syncs run after their first sync, on its workspace."""
    sources = sources_file(root / f"bench-{count}.yaml", "bench", source(root, count, size))
    cli_ws = root / f"ws-cli-{count}"
    cli_cmd = [str(BIN / "da-sources"), "--sources", str(sources), "fetch", "bench", "--all", "--workspace",
               str(cli_ws)]
    env = job_env(root, sources, f"dagster-{count}")
    dagster_cmd = [str(BIN / "dagster"), "job", "execute", "-m", "da_pipelines", "-j", "bench_sync"]
    sensor_env = {"DA_SOURCES_FILE": str(sources), "DA_WORKSPACE": str(root / f"ws-sensor-{count}")}
    return {
        "cli": Candidate("cli", cli_cmd, "first sync", lands(cli_ws / "bench", count),
                         prepare=lambda: shutil.rmtree(cli_ws, ignore_errors=True)),
        "cli re-sync": Candidate("cli re-sync", cli_cmd, "nothing changed", lands(cli_ws / "bench", count)),
        "dagster": Candidate("dagster", dagster_cmd, "first sync, SQLite instance",
                             lands(Path(env["DA_WORKSPACE"]) / "bench", count), env=env, prepare=lambda: reset(env)),
        "dagster re-sync": Candidate("dagster re-sync", dagster_cmd, "nothing changed",
                                     lands(Path(env["DA_WORKSPACE"]) / "bench", count), env=env),
        "sensor tick": Candidate("sensor tick", [sys.executable, "-c", SENSOR_CHILD], "first tick",
                                 lambda out: None, env=sensor_env, reports_seconds=True),
        "api fetch job": Candidate("api fetch job", [sys.executable, "-c", API_CHILD, str(root / f"api-{count}"),
                                                     str(source(root, count, size))], "glob of 10,000 files",
                                   _job_done(min(count, 10_000)), reports_seconds=True,
                                   prepare=lambda: shutil.rmtree(root / f"api-{count}", ignore_errors=True)),
        "dagster start-up": _startup(root, size),
    }


def _job_done(items: int) -> Callable[[str], None]:
    def verify(out: str) -> None:
        assert out.splitlines()[0] == f"succeeded {items}", out
    return verify


def _startup(root: Path, size: int) -> Candidate:
    """``dagster job execute`` of a one-file source: the fixed cost every Dagster run pays."""
    sources = sources_file(root / "bench-startup.yaml", "bench", source(root, 1, size))
    env = job_env(root, sources, "dagster-startup")
    return Candidate("dagster start-up", [str(BIN / "dagster"), "job", "execute", "-m", "da_pipelines", "-j",
                                          "bench_sync"], "one file", lands(Path(env["DA_WORKSPACE"]) / "bench", 1),
                     env=env, prepare=lambda: reset(env))


def measure(root: Path, count: int, size: int, paths: list[str]) -> list[Figure]:
    figures = []
    for name, candidate in candidates(root, count, size).items():
        if name not in paths:
            continue
        if candidate.prepare:
            candidate.prepare()
        started_load = load()
        sample, stdout = run_once(candidate)
        candidate.verify(stdout)
        figures.append(Figure(name, count, sample.seconds, round(sample.peak_rss_mib, 1), started_load))
        print(f"{name} @ {count:,}: {sample.seconds:.1f} s, {figures[-1].us_per_item:.0f} us/item, "
              f"{sample.peak_rss_mib:.0f} MiB peak RSS (load {started_load})", flush=True)
    return figures


def flags(figures: list[Figure]) -> dict[str, list[str]]:
    """Per path, why it is flagged (time per item or peak RSS growth from its smallest N to its largest)."""
    found: dict[str, list[str]] = {}
    for path in PATHS:
        if path == "dagster start-up":  # a fixed cost, not per item
            continue
        mine = sorted((f for f in figures if f.path == path), key=lambda f: f.items)
        if len(mine) < 2:
            continue
        small, big = mine[0], mine[-1]
        why = []
        if big.us_per_item > TIME_LIMIT * small.us_per_item:
            why.append(f"time/item x{big.us_per_item / small.us_per_item:.2f} ({small.items:,} -> {big.items:,})")
        if big.peak_rss_mib - small.peak_rss_mib > RSS_LIMIT_MIB:
            why.append(f"peak RSS +{big.peak_rss_mib - small.peak_rss_mib:.0f} MiB")
        found[path] = why
    return found


def table(figures: list[Figure], found: dict[str, list[str]]) -> str:
    counts = sorted({f.items for f in figures})
    lines = ["## Growth per path", "",
             "| path | " + " | ".join(f"{n:,}: us/item, peak MiB, load" for n in counts) + " | flag |",
             "| --- |" + " ---: |" * len(counts) + " --- |"]
    for path in PATHS:
        cells = []
        for n in counts:
            f = next((f for f in figures if f.path == path and f.items == n), None)
            if f is not None and path == "dagster start-up":
                cells.append(f"{f.seconds:.1f} s (one file), {f.peak_rss_mib:.0f}, {f.load}")
            else:
                cells.append(f"{f.us_per_item:.0f}, {f.peak_rss_mib:.0f}, {f.load}" if f else "not run")
        if any(c != "not run" for c in cells):
            flag = "; ".join(found.get(path, [])) or ("ok" if path in found else "-")
            lines.append(f"| {path} | " + " | ".join(cells) + f" | {flag} |")
    ratios = _ratios(figures)
    return "\n".join([*lines, "", *ratios]) + "\n"


def _ratios(figures: list[Figure]) -> list[str]:
    """The targets per N: Dagster first sync / CLI (<= 1.2x), Dagster re-sync / first sync beyond
    start-up (<= 0.05x), the sensor tick (< 10 s)."""
    def find(path: str, n: int) -> Figure | None:
        return next((f for f in figures if f.path == path and f.items == n), None)

    lines = []
    for n in sorted({f.items for f in figures}):
        cli, dag, again, tick = find("cli", n), find("dagster", n), find("dagster re-sync", n), find("sensor tick", n)
        # the start-up does not depend on N: the one measured at N, else any
        start = find("dagster start-up", n) or next((f for f in figures if f.path == "dagster start-up"), None)
        if cli and dag:
            lines.append(f"- dagster / cli at {n:,}: {dag.seconds / cli.seconds:.2f}x (target <= 1.2x)")
        if dag and again and start:
            beyond = (again.seconds - start.seconds) / max(dag.seconds - start.seconds, 1e-9)
            lines.append(f"- dagster re-sync / first sync at {n:,}, beyond a start-up of {start.seconds:.1f} s: "
                         f"{beyond:.3f}x (target <= 0.05x)")
        if tick:
            lines.append(f"- sensor tick at {n:,}: {tick.seconds:.2f} s (target < 10 s)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="sources and workspaces (outside the repo)")
    parser.add_argument("--counts", default="10000,100000,1000000")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--keep", action="store_true", help="keep the workspaces (sources are always kept)")
    parser.add_argument("--merge", type=Path, help="take the figures of --paths from this result file (a run made "
                        "elsewhere, e.g. another checkout) instead of measuring; with --counts ''")
    args = parser.parse_args()
    begin()
    args.dir.mkdir(parents=True, exist_ok=True)
    paths = [p.strip() for p in args.paths.split(",")]
    saved = results_dir() / "bench_growth.json"
    figures = [Figure(**f) for f in json.loads(saved.read_text())["data"]["figures"]] if saved.exists() else []
    if args.merge:
        taken = [Figure(**f) for f in json.loads(args.merge.read_text())["data"]["figures"] if f["path"] in paths]
        figures = [f for f in figures if f.path not in paths] + taken
    for count in (int(c) for c in args.counts.split(",") if c):
        for path in paths:  # in the order given
            new = measure(args.dir, count, args.size, [path])
            # a run of some counts or paths keeps the other figures of the previous runs; saved after each
            figures = [f for f in figures if not any((g.path, g.items) == (f.path, f.items) for g in new)] + new
            save(figures, saved)
        if not args.keep:
            for ws in args.dir.glob(f"*-{count}"):
                if ws.is_dir() and not ws.name.startswith("src-"):
                    shutil.rmtree(ws, ignore_errors=True)
    print(save(figures, saved))


def save(figures: list[Figure], saved: Path) -> str:
    """Write the figures, their flags and the table (:func:`write_result`); the table's text.

    Figures kept from earlier runs (other counts or paths) name their own load; the header's
    commit and command are this run's.
    """
    found = flags(figures)
    text = table(figures, found)
    write_result(saved.stem, [text, _listed_section(saved.parent / "bench_listed.json")
                              + _listed_section(saved.parent / "bench_listed_dataset.json")
                              + _listed_section(saved.parent / "bench_listed_dataset_resync.json")],
                 ["figures of other counts or paths are kept from earlier runs (their load is in each cell)",
                  *NOTES],
                 {"figures": [asdict(f) for f in figures], "flags": found})
    return text


def _listed_section(path: Path) -> str:
    """The figures of ``benchmarks.bench_listed`` (the CLI sync of a synthetic source, up to 10,000,000 listed)."""
    if not path.exists():
        return ""
    names = {"bench_listed_dataset": "Dagster layer's sync_datasets",
             "bench_listed_dataset_resync": "Dagster layer's sync_datasets re-sync (nothing changed)"}
    which = names.get(path.stem, "CLI sync")
    lines = ["", f"## {which} of a synthetic listing (benchmarks/bench_listed.py: items generated, fetch stubbed)", "",
             "| listed items | s | us/item | peak RSS MiB | load |", "| ---: | ---: | ---: | ---: | --- |"]
    for f in json.loads(path.read_text())["data"]["figures"]:
        lines.append(f"| {f['items']:,} | {f['seconds']} | {f['us_per_item']} | {f['peak_rss_mib']} | {f['load']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
