"""An incremental re-sync against a full export, side by side (the budget: at most 5% at 10M rows, 10k changed).

A table of ``--rows`` rows (the columns of :mod:`benchmarks.bench_postgres` plus ``updated_at``, indexed)
is synced by ``sync_table`` into its Parquet dataset folder: ``full`` exports it whole and replaces the
folder; ``increment`` runs after ``--changed`` rows got a new ``updated_at`` (untimed) and lands only
those. Both run interleaved in one run; every output is checked (rows in the dataset, rows synced).

Usage:
    .venv/bin/python -m benchmarks.bench_incremental [--rows 10000000] [--changed 10000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.bench_postgres import ENV_CONFIG, ENV_PASSWORD, OURS_IMPORTS
from benchmarks.common import PYTHON, Candidate, compare, expect, report, scratch, timed_child
from benchmarks.results import begin, write_result

TABLE_SQL = """
CREATE TABLE {name} AS
SELECT g::bigint AS id,
       md5(g::text) AS label,
       ((g % 1000000) / 100.0)::numeric(12,2) AS amount,
       g % 3 = 0 AS flag,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS updated_at
FROM generate_series(1, {rows}) AS g;
ALTER TABLE {name} ADD PRIMARY KEY (id);
CREATE INDEX ON {name} (updated_at);
VACUUM ANALYZE {name};
"""


def run_sync(mode: str, workspace: str) -> None:
    from connectors import DataSourceConfig
    from connectors.postgresql import PostgreSQLConnector

    config = json.loads(os.environ[ENV_CONFIG])
    config.update(password={"env": ENV_PASSWORD},
                  incremental={"public.orders": {"cursor": "updated_at", "lookback": 0}})

    async def main() -> None:
        source = DataSourceConfig(id="bench", type="postgresql", name="bench", config=config)
        async with PostgreSQLConnector(source) as pg:
            await pg.sync_table("public.orders", workspace, full=mode == "full")

    timed_child([*OURS_IMPORTS, "pyarrow.dataset", "connectors.postgresql.parts"], lambda: asyncio.run(main()))


class Changer:
    """Before each increment (untimed): give ``changed`` rows a new, higher ``updated_at``."""

    def __init__(self, dsn: str, rows: int, changed: int) -> None:
        self.dsn, self.step, self.round = dsn, max(1, rows // changed), 0

    def __call__(self) -> None:
        import psycopg

        self.round += 1
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("UPDATE orders SET amount = amount + 1, updated_at = now() + %s * interval '1 day' "
                         "WHERE id %% %s = 0", [self.round, self.step])


def checked(folder: Path, rows: int, synced: int | None) -> Any:
    def verify(_: str) -> None:
        from connectors import read_provenance

        record = read_provenance(folder)
        if synced is None:
            expect(record["row_count"] == rows and record["last_sync"] == "full", f"{folder}: {record['row_count']}")
        else:
            expect(record["rows_synced"] == synced, f"{folder}: {record['rows_synced']} rows synced, not {synced}")
    return verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    begin()
    from tests.harness import start_postgres

    with start_postgres(password="bench-pw") as server, scratch("da-bench-incremental-") as out:
        import psycopg

        env = {ENV_PASSWORD: server.password,
               ENV_CONFIG: json.dumps({"host": server.host, "port": server.port, "dbname": server.dbname,
                                       "user": server.user, "schemas": ["public"]})}
        print(f"building the table: {args.rows:,} rows ...", flush=True)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            for statement in TABLE_SQL.format(name="orders", rows=int(args.rows)).split(";"):
                if statement.strip():
                    conn.execute(statement)
        folder = out / "public.orders"
        changed = args.rows // max(1, args.rows // args.changed)  # every step-th row: exactly this many
        command = [PYTHON, "-m", "benchmarks.bench_incremental", "sync"]
        full = Candidate("full export (sync_table full)", [*command, "full", str(out)], "all rows, parts of 128 MiB",
                         checked(folder, args.rows, None), env=env, reports_seconds=True)
        step = Candidate(f"re-sync, {args.changed:,} rows changed", [*command, "increment", str(out)],
                         "cursor updated_at (indexed), look-back 0", checked(folder, args.rows, changed),
                         env=env, prepare=Changer(server.dsn, args.rows, args.changed), reports_seconds=True)
        runs = compare([full, step], args.repetitions)
        text = report(f"{args.rows:,} rows, {args.changed:,} changed", runs, items=args.rows,
                      baseline="full export (sync_table full)", where=str(out))
        ratio = step.median_seconds / full.median_seconds
        print(f"re-sync / full export: {ratio:.3f} (the bound: 0.05)")
        write_result("bench_incremental", [text, f"re-sync / full export: {ratio:.3f} (after imports, both; "
                                                 "the bound: 0.05)\n"],
                     data={"rows": args.rows, "changed": args.changed, "increment_over_full": ratio})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sync":
        run_sync(*sys.argv[2:])
    else:
        main()
