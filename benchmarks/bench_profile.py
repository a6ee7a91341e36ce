"""What profiling costs an export (the budget: at most 10%), side by side at 5M rows.

Our connector exports the benchmark table of :mod:`benchmarks.bench_postgres` (bigint, timestamptz,
text, numeric(12,2), boolean, jsonb) as CSV and as Parquet, each with the profile on (the default)
and off (``profile: false``), and the CSV with ``profile: exact`` too, interleaved in one run; the ratio
on/off is the profile's cost. Every output is checked: the row count, and a profile exactly when it was
asked for, with the exact row count; the share of rows the CSV profile's figures describe is reported
(the default leaves chunks out while its parser, at the lowest CPU priority, is behind).

Wall time on a shared machine follows its load, so each run also records CPU seconds: the child's
(user + system, from GNU time) and the PostgreSQL server's (the backends' CPU, which the postmaster
collects as they exit). The CSV profile is a second parse of what the server formats, so under a
saturated CPU its wall cost tends to its share of the export's whole CPU (child + server), shown too.

Usage:
    .venv/bin/python -m benchmarks.bench_profile [--rows 5000000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_postgres import ENV_CONFIG, ENV_PASSWORD, OURS_IMPORTS, build_table, remover
from benchmarks.common import PYTHON, Candidate, compare, expect, report, scratch, timed_child
from benchmarks.results import begin, write_result


def run_fetch(fmt: str, profile: str, workspace: str) -> None:
    """One export of ``public.big`` as ``fmt`` with the profile on, off or exact."""
    from connectors import DataSourceConfig
    from connectors.postgresql import PostgreSQLConnector

    config = json.loads(os.environ[ENV_CONFIG])
    config.update(password={"env": ENV_PASSWORD}, format=fmt, profile=PROFILE_SETTING[profile])

    async def main() -> None:
        source = DataSourceConfig(id="bench", type="postgresql", name="bench", config=config)
        async with PostgreSQLConnector(source) as pg:
            landed = await pg.fetch_data("public.big", workspace)
        print(landed, flush=True)  # a file, or a dataset folder of Parquet parts (a big table)

    timed_child(OURS_IMPORTS, lambda: asyncio.run(main()))


PROFILE_SETTING: dict[str, bool | str] = {"off": False, "on": True, "exact": "exact"}
PROFILED_SHARE: dict[str, list[float]] = {}  # per candidate: the share of rows its profile's figures describe


def landed_rows(workspace: Path, rows: int, profiled: bool, name: str) -> Any:
    def verify(stdout: str) -> None:
        from connectors import read_provenance

        path = Path(stdout.strip().splitlines()[0])  # what fetch_data returned
        record = read_provenance(path, workspace)
        expect(record["row_count"] == rows, f"{path}: {record['row_count']} rows, not {rows}")
        expect(("profile" in record) == profiled, f"{path}: profile {'missing' if profiled else 'present'}")
        if profiled:
            expect(record["profile"].get("rows") == rows, f"{path}: the profile counts {record['profile']}")
            PROFILED_SHARE.setdefault(name, []).append(record["profile"].get("profiled_rows", rows) / rows)
    return verify


class ServerCpu:
    """CPU seconds of a PostgreSQL server's exited backends, per candidate run (user + system)."""

    def __init__(self, data_dir: Path) -> None:
        self._postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        self._started = 0.0
        self.runs: dict[str, list[float]] = {}

    def _seconds(self) -> float:
        fields = Path(f"/proc/{self._postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime

    def start(self) -> None:
        self._started = self._seconds()

    def stop(self, name: str) -> None:
        time.sleep(0.5)  # the run's backends have exited: let the postmaster reap them
        self.runs.setdefault(name, []).append(self._seconds() - self._started)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])


def candidates(out: Path, env: dict[str, str], rows: int, server_cpu: ServerCpu) -> list[Candidate]:
    made = []
    for fmt, profiles in (("csv", ("off", "on", "exact")), ("parquet", ("off", "on"))):
        for profile in profiles:
            workspace = out / f"{fmt}-{profile}"
            name = f"{fmt} profile {profile}"
            made.append(Candidate(name, child_command(fmt, profile, workspace),
                                  f"fetch_data, format {fmt}, profile {PROFILE_SETTING[profile]}",
                                  metered(server_cpu, name, landed_rows(workspace, rows, profile != "off", name)),
                                  env=env,
                                  prepare=started(server_cpu, remover(workspace)), reports_seconds=True))
    return made


def started(server_cpu: ServerCpu, prepare: Any) -> Any:
    def both() -> None:
        prepare()
        server_cpu.start()
    return both


def metered(server_cpu: ServerCpu, name: str, verify: Any) -> Any:
    def both(stdout: str) -> None:
        server_cpu.stop(name)
        verify(stdout)
    return both


def cpu_table(runs: list[Candidate], server_cpu: ServerCpu) -> tuple[str, dict[str, float]]:
    """Child, server and whole CPU seconds (medians) per candidate, and whole CPU on/off per format."""
    lines = ["## CPU seconds: the child's, the server's and both (medians)", "",
             "| candidate | child CPU s | server CPU s | child + server CPU s | child + server / profile off |",
             "| --- | ---: | ---: | ---: | ---: |"]
    whole = {c.name: c.median_cpu_seconds + server_cpu.median(c.name) for c in runs}
    for c in runs:
        off = whole[c.name.rsplit(" ", 1)[0] + " off"]
        lines.append(f"| {c.name} | {c.median_cpu_seconds:.2f} | {server_cpu.median(c.name):.2f} | "
                     f"{whole[c.name]:.2f} | {whole[c.name] / off:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text, whole


def child_command(fmt: str, profile: str, workspace: Path) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_profile", "fetch", fmt, profile, str(workspace)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    begin()
    from tests.harness import start_postgres

    with start_postgres(password="bench-pw") as server, scratch("da-bench-profile-") as out:
        env = {ENV_PASSWORD: server.password,
               ENV_CONFIG: json.dumps({"host": server.host, "port": server.port, "dbname": server.dbname,
                                       "user": server.user, "schemas": ["public"]})}
        print(f"building the table: {args.rows:,} rows ...", flush=True)
        build_table(server, "big", args.rows)
        server_cpu = ServerCpu(server.data_dir)
        runs = compare(candidates(out, env, args.rows, server_cpu), args.repetitions)
        tables = [report(f"{args.rows:,} rows as {fmt}: the profile's cost",
                         [c for c in runs if c.name.startswith(fmt)], items=args.rows,
                         baseline=f"{fmt} profile off", where=str(out), cpu=True) for fmt in ("csv", "parquet")]
        cpu_text, whole = cpu_table(runs, server_cpu)
        by_name = {c.name: c for c in runs}

        def on_over_off(fmt: str, seconds: Any) -> float:
            return float(seconds(by_name[f"{fmt} profile on"]) / seconds(by_name[f"{fmt} profile off"]))

        data: dict[str, Any] = {"rows": args.rows}
        for fmt in ("csv", "parquet"):
            data[f"{fmt}_on_over_off"] = on_over_off(fmt, lambda c: c.median_seconds)
            data[f"{fmt}_cpu_on_over_off"] = on_over_off(fmt, lambda c: c.median_cpu_seconds)
            data[f"{fmt}_whole_cpu_on_over_off"] = on_over_off(fmt, lambda c: whole[c.name])
            data[f"{fmt}_profiled_share"] = statistics.median(PROFILED_SHARE[f"{fmt} profile on"])
        exact = by_name["csv profile exact"]
        data["csv_exact_over_off"] = exact.median_seconds / by_name["csv profile off"].median_seconds
        summary = "\n".join(
            f"profile on / off, {fmt}: wall {data[f'{fmt}_on_over_off']:.3f} (after imports), child CPU "
            f"{data[f'{fmt}_cpu_on_over_off']:.3f}, child + server CPU {data[f'{fmt}_whole_cpu_on_over_off']:.3f}; "
            f"its figures describe {data[f'{fmt}_profiled_share']:.0%} of the rows (median)"
            for fmt in ("csv", "parquet")) + " (the bound, on wall time: 1.10)"
        summary += (f"\nprofile exact / off, csv: wall {data['csv_exact_over_off']:.3f} (after imports): every row "
                    "parsed, the export waiting for its parser")
        print(summary)
        write_result("bench_profile", [*tables, cpu_text, summary + "\n"], data=data)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fetch":
        run_fetch(*sys.argv[2:])
    else:
        main()
