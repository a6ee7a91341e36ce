"""PostgreSQL export, side by side: the server's own COPY, psql, our connector, and other tools.

Starts its own throwaway server (``tests.harness.start_postgres``), builds the
issue's table once with ``generate_series`` (bigint, timestamptz, text,
numeric(12,2), boolean, small jsonb) and times every candidate as a child
process (``benchmarks.common``): medians, throughput, ratios, peak RSS.

Usage:
    .venv/bin/python -m benchmarks.bench_postgres [--rows 10000000] [--small-rows 1000000] [--repetitions 3]

The second table (``--small-rows``) compares Parquet writers that hold the
whole result in memory (pandas, connectorx); each optional tool is skipped,
and said so, when it is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, Candidate, compare, report

TABLE_SQL = """
CREATE UNLOGGED TABLE {name} AS
SELECT g::bigint AS id,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS ts,
       md5(g::text) AS label,
       ((g % 1000000) / 100.0)::numeric(12,2) AS amount,
       g % 3 = 0 AS flag,
       jsonb_build_object('k', g % 10, 'tag', 't' || (g % 7)) AS doc
FROM generate_series(1, {rows}) AS g
"""
ENV_CONFIG = "BENCH_PG_CONFIG"
ENV_PASSWORD = "BENCH_PG_PASSWORD"


# --- child commands: one run each ----------------------------------------------


def run_fetch(fmt: str, table: str, workspace: str) -> None:
    """Our connector: fetch ``public.<table>`` as ``fmt`` into ``workspace``."""
    from connectors import DataSourceConfig
    from connectors.postgresql import PostgreSQLConnector

    config = json.loads(os.environ[ENV_CONFIG])
    config.update(password={"env": ENV_PASSWORD}, format=fmt)

    async def main() -> None:
        source = DataSourceConfig(id="bench", type="postgresql", name="bench", config=config)
        async with PostgreSQLConnector(source) as pg:
            await pg.fetch_data(f"public.{table}", workspace)

    started = time.perf_counter()
    asyncio.run(main())
    print(time.perf_counter() - started)


def run_reference(table: str, out: str) -> None:
    """Reference: psycopg's COPY CSV stream into pyarrow's CSV reader, then ParquetWriter."""
    import io

    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    # written out here, not imported from connectors.postgresql.export: the reference must not move when ours does
    class CopyFile(io.RawIOBase):
        def __init__(self, copy: Any) -> None:
            self.copy, self.pending = copy, memoryview(b"")

        def readable(self) -> bool:
            return True

        def readinto(self, target: Any) -> int:
            view = memoryview(target).cast("B")
            filled = 0
            while filled < len(view):
                if not self.pending:
                    data = self.copy.read()
                    if not data:
                        break
                    self.pending = memoryview(bytes(data))
                count = min(len(view) - filled, len(self.pending))
                view[filled:filled + count] = self.pending[:count]
                self.pending = self.pending[count:]
                filled += count
            return filled

    types = {"id": pa.int64(), "ts": pa.timestamp("us", tz="UTC"), "label": pa.string(),
             "amount": pa.decimal128(12, 2), "flag": pa.bool_(), "doc": pa.string()}
    convert = pacsv.ConvertOptions(column_types=types, true_values=["t"], false_values=["f"])
    config = json.loads(os.environ[ENV_CONFIG])
    started = time.perf_counter()
    with psycopg.connect(**_libpq(config)) as conn, conn.cursor() as cur, \
            cur.copy(f"COPY {table} TO STDOUT (FORMAT csv)") as copy:  # noqa: S608 - benchmark table
        reader = pacsv.open_csv(CopyFile(copy), read_options=pacsv.ReadOptions(
            column_names=list(types), block_size=16 << 20), convert_options=convert)
        with pq.ParquetWriter(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    print(time.perf_counter() - started)


def run_connectorx(table: str, out: str) -> None:
    """connectorx, two partitions on id, Arrow result, written with pyarrow."""
    import connectorx as cx
    import pyarrow.parquet as pq

    started = time.perf_counter()
    result = cx.read_sql(_uri(), f"SELECT * FROM {table}", partition_on="id", partition_num=2,  # noqa: S608
                         return_type="arrow")
    pq.write_table(result, out)
    print(time.perf_counter() - started)


def run_pandas(table: str, out: str) -> None:
    """pandas.read_sql over SQLAlchemy (psycopg 3), then DataFrame.to_parquet."""
    import pandas as pd
    import sqlalchemy

    started = time.perf_counter()
    engine = sqlalchemy.create_engine(_uri().replace("postgresql://", "postgresql+psycopg://"))
    frame = pd.read_sql(f"SELECT * FROM {table}", engine)  # noqa: S608
    frame.to_parquet(out)
    print(time.perf_counter() - started)


def _libpq(config: dict[str, Any]) -> dict[str, Any]:
    return {"host": config["host"], "port": config["port"], "dbname": config["dbname"],
            "user": config["user"], "password": os.environ[ENV_PASSWORD]}


def _uri() -> str:
    c = _libpq(json.loads(os.environ[ENV_CONFIG]))
    return f"postgresql://{c['user']}:{c['password']}@{c['host']}:{c['port']}/{c['dbname']}"


def run_dlt(table: str, out: str) -> None:
    """dlt's sql_database source, pyarrow backend, to Parquet files on the local filesystem."""
    import dlt
    from dlt.sources.sql_database import sql_table

    Path(out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    source = sql_table(credentials=_uri().replace("postgresql://", "postgresql+psycopg://"), table=table,
                       backend="pyarrow", chunk_size=100_000)
    pipeline = dlt.pipeline(pipeline_name="bench", pipelines_dir=f"{out}/.dlt", dataset_name="bench",
                            destination=dlt.destinations.filesystem(bucket_url=f"file://{out}/data"))
    pipeline.run(source, loader_file_format="parquet")
    print(time.perf_counter() - started)


CHILDREN = {"fetch": run_fetch, "reference": run_reference, "connectorx": run_connectorx, "pandas": run_pandas,
            "dlt": run_dlt}


# --- the driver ------------------------------------------------------------------


def build_table(server: Any, name: str, rows: int) -> int:
    """Create the table once; its CSV size in bytes (for throughput)."""
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(TABLE_SQL.format(name=name, rows=int(rows)))
        conn.execute(f"VACUUM ANALYZE {name}")
        conn.execute("CHECKPOINT")
    return 0


def psql(server: Any, command: str) -> list[str]:
    return ["psql", "-X", "-q", "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", server.dbname,
            "-c", command]


def child(*args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_postgres", *args]


def python_candidate(name: str, *args: str, env: dict[str, str], output: Path) -> Candidate:
    """A Python child timed by itself: connect + export + close, not interpreter start-up and imports."""
    return Candidate(name, child(*args), env=env, prepare=remover(output), reports_seconds=True)


def remover(*paths: Path) -> Any:
    def prepare() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    return prepare


LABELS = {"connectorx": "connectorx (2 partitions) -> parquet", "dlt": "dlt sql_table (pyarrow) -> parquet",
          "pandas": "pandas read_sql -> parquet"}


LABELS = {"connectorx": "connectorx (2 partitions) -> parquet", "dlt": "dlt sql_table (pyarrow) -> parquet",
          "pandas": "pandas read_sql -> parquet"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    from tests.harness import start_postgres

    with start_postgres(password="bench-pw") as server, tempfile.TemporaryDirectory(prefix="da-bench-") as tmp:
        out = Path(tmp)
        env = {ENV_PASSWORD: server.password, "PGPASSWORD": server.password,
               ENV_CONFIG: json.dumps({"host": server.host, "port": server.port, "dbname": server.dbname,
                                       "user": server.user, "schemas": ["public"]})}
        print(f"building tables: big {args.rows:,} rows, small {args.small_rows:,} rows ...", flush=True)
        build_table(server, "big", args.rows)
        build_table(server, "small", args.small_rows)
        csv_size = _csv_size(server, env)
        big = [
            Candidate("server COPY TO '/dev/null'", psql(server, "COPY big TO '/dev/null' (FORMAT csv, HEADER)"),
                      env=env),
            Candidate("psql \\copy TO file", psql(server, f"\\copy big TO '{out}/psql.csv' CSV HEADER"), env=env,
                      prepare=remover(out / "psql.csv")),
            python_candidate("ours fetch_data csv", "fetch", "csv", "big", str(out / "ws-csv"), env=env,
                             output=out / "ws-csv"),
            python_candidate("ours fetch_data parquet", "fetch", "parquet", "big", str(out / "ws-pq"), env=env,
                             output=out / "ws-pq"),
            python_candidate("reference COPY->pyarrow csv->parquet", "reference", "big", str(out / "ref.parquet"),
                             env=env, output=out / "ref.parquet"),
        ]
        if importlib.util.find_spec("connectorx") is not None:  # the reference on this same table
            big.append(python_candidate("connectorx (2 partitions) -> parquet", "connectorx", "big",
                                        str(out / "cx-big.parquet"), env=env, output=out / "cx-big.parquet"))
        compare(big, args.repetitions)
        text = report(f"{args.rows:,} rows (CSV {csv_size / 1e6:,.0f} MB)", big, size_bytes=csv_size,
                      baseline="psql \\copy TO file")
        text += report(f"{args.rows:,} rows, ratios vs the server's own COPY", big, items=args.rows,
                       baseline="server COPY TO '/dev/null'")
        small = [python_candidate("ours fetch_data parquet", "fetch", "parquet", "small", str(out / "ws-small"),
                                  env=env, output=out / "ws-small")]
        missing = []
        for name, module in (("connectorx", "connectorx"), ("dlt", "dlt"), ("pandas", "pandas")):
            if importlib.util.find_spec(module) is None:
                missing.append(name)
                continue
            small.append(python_candidate(LABELS[name], name, "small", str(out / f"{name}.parquet"), env=env,
                                          output=out / f"{name}.parquet"))
        compare(small, args.repetitions)
        text += report(f"{args.small_rows:,} rows to Parquet", small, items=args.small_rows,
                       baseline=small[-1].name)
        if missing:
            print(f"not installed, left out: {', '.join(missing)}")


def _csv_size(server: Any, env: dict[str, str]) -> int:
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".csv") as probe:
        subprocess.run(psql(server, f"\\copy big TO '{probe.name}' CSV HEADER"), env={**os.environ, **env},
                       check=True)
        return os.path.getsize(probe.name)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
    else:
        main()
