"""What profiling costs an export (the budget: at most 10%), side by side at 5M rows.

Our connector exports the benchmark table of :mod:`benchmarks.bench_postgres` (bigint, timestamptz,
text, numeric(12,2), boolean, jsonb) as CSV and as Parquet, each with the profile on (the default)
and off (``profile: false``), interleaved in one run; the ratio on/off is the profile's cost. Every
output is checked: the row count, and a profile exactly when it was asked for.

Usage:
    .venv/bin/python -m benchmarks.bench_profile [--rows 5000000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.bench_postgres import ENV_CONFIG, ENV_PASSWORD, OURS_IMPORTS, build_table, remover
from benchmarks.common import PYTHON, Candidate, compare, expect, report, scratch, timed_child
from benchmarks.results import begin, write_result


def run_fetch(fmt: str, profile: str, workspace: str) -> None:
    """One export of ``public.big`` as ``fmt`` with the profile on or off."""
    from connectors import DataSourceConfig
    from connectors.postgresql import PostgreSQLConnector

    config = json.loads(os.environ[ENV_CONFIG])
    config.update(password={"env": ENV_PASSWORD}, format=fmt, profile=profile == "on")

    async def main() -> None:
        source = DataSourceConfig(id="bench", type="postgresql", name="bench", config=config)
        async with PostgreSQLConnector(source) as pg:
            await pg.fetch_data("public.big", workspace)

    timed_child(OURS_IMPORTS, lambda: asyncio.run(main()))


def landed_rows(path: Path, rows: int, profiled: bool) -> Any:
    def verify(_: str) -> None:
        from connectors import read_provenance

        record = read_provenance(path)
        expect(record["row_count"] == rows, f"{path}: {record['row_count']} rows, not {rows}")
        expect(("profile" in record) == profiled, f"{path}: profile {'missing' if profiled else 'present'}")
        if profiled:
            expect(record["profile"].get("rows") == rows, f"{path}: the profile counts {record['profile']}")
    return verify


def candidates(out: Path, env: dict[str, str], rows: int) -> list[Candidate]:
    made = []
    for fmt in ("csv", "parquet"):
        for profile in ("off", "on"):
            workspace = out / f"{fmt}-{profile}"
            target = workspace / f"public.big.{fmt}"
            made.append(Candidate(f"{fmt} profile {profile}", child_command(fmt, profile, workspace),
                                  f"fetch_data, format {fmt}, profile {profile}",
                                  landed_rows(target, rows, profile == "on"), env=env,
                                  prepare=remover(target), reports_seconds=True))
    return made


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
        runs = compare(candidates(out, env, args.rows), args.repetitions)
        tables = [report(f"{args.rows:,} rows as {fmt}: the profile's cost",
                         [c for c in runs if c.name.startswith(fmt)], items=args.rows,
                         baseline=f"{fmt} profile off", where=str(out)) for fmt in ("csv", "parquet")]
        by_name = {c.name: c.median_seconds for c in runs}
        ratios = {fmt: by_name[f"{fmt} profile on"] / by_name[f"{fmt} profile off"] for fmt in ("csv", "parquet")}
        summary = f"profile on / off: csv {ratios['csv']:.3f}, parquet {ratios['parquet']:.3f} (the bound: 1.10)"
        print(summary)
        write_result("bench_profile", [*tables, summary + " (after imports, both)\n"],
                     data={"rows": args.rows, "csv_on_over_off": ratios["csv"],
                           "parquet_on_over_off": ratios["parquet"]})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fetch":
        run_fetch(*sys.argv[2:])
    else:
        main()
