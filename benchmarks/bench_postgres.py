"""PostgreSQL export, side by side: the server's own COPY, psql, our connector, and other tools.

Starts its own throwaway server (``tests.harness.start_postgres``), builds the
issue's table once with ``generate_series`` (bigint, timestamptz, text,
numeric(12,2), boolean, small jsonb) and times every candidate as a child
process (``benchmarks.common``): medians, throughput, ratios, peak RSS. psql is
timed as a whole process; every Python candidate (ours, the pyarrow
reference, connectorx, pandas, dlt) after importing what its work uses
(drivers, SQLAlchemy's dialect, pyarrow), so none pays imports inside the
clock. Each row states its settings (streams, partitions, chunk sizes,
format). Every output is checked before its time counts: CSV files must be
byte-identical to ``psql \\copy``'s, Parquet files must hold exactly the ids
1..N with the table's columns, and the server's COPY must report N rows.
Every file goes under ``$DA_BENCH_DIR``.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PYTHON,
    Candidate,
    compare,
    expect,
    file_sha256,
    report,
    same_file,
    scratch,
    timed_child,
)
from benchmarks.results import begin, write_result
from connectors.postgresql.connector import PARALLEL_MIN_BYTES

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
DLT_CHUNK = 100_000
COLUMNS = ["id", "ts", "label", "amount", "flag", "doc"]


# --- child commands: one run each ----------------------------------------------


OURS_IMPORTS = ["connectors.postgresql", "connectors.postgresql.export", "pyarrow.parquet"]
REFERENCE_IMPORTS = ["psycopg", "pyarrow", "pyarrow.csv", "pyarrow.parquet"]
CONNECTORX_IMPORTS = ["connectorx", "pyarrow", "pyarrow.parquet"]
SQLALCHEMY_IMPORTS = ["sqlalchemy", "psycopg", "sqlalchemy.dialects.postgresql.psycopg", "pyarrow.parquet"]
# what pandas.read_sql and DataFrame.to_parquet import on first use (found with DA_BENCH_LATE_IMPORTS)
PANDAS_IMPORTS = ["pandas", "sqlite3", "pyarrow.pandas_compat", "pandas.core.arrays.arrow.extension_types",
                  "pyarrow.vendored.version",
                  *SQLALCHEMY_IMPORTS]
DLT_IMPORTS = ["dlt", "dlt.sources.sql_database", "dlt.destinations", "dlt.common.libs.pyarrow",
               "dlt.common.libs.sql_alchemy_compat", "dlt.common.configuration.plugins", "dlt.sources.helpers.requests",
               "fsspec.implementations.local", "fsspec.implementations.chained", "requests", "numpy.random",
               "numpy.ma", "dateutil.easter", "dlt.__plugins__", "dlt._workspace.cli", "pendulum.locales.en.locale",
               "google", "netrc", "shlex", *PANDAS_IMPORTS]


def run_fetch(fmt: str, table: str, workspace: str) -> None:
    """Our connector: fetch ``public.<table>`` as ``fmt`` into ``workspace``."""
    from connectors import DataSourceConfig
    from connectors.postgresql import PostgreSQLConnector

    config = json.loads(os.environ[ENV_CONFIG])
    # PostgreSQL's own text (t/f, not true/false): the CSV is compared byte for byte with psql's \copy
    config.update(password={"env": ENV_PASSWORD}, format=fmt, csv_values="postgresql")

    async def main() -> None:
        source = DataSourceConfig(id="bench", type="postgresql", name="bench", config=config)
        async with PostgreSQLConnector(source) as pg:
            await pg.fetch_data(f"public.{table}", workspace)

    timed_child(OURS_IMPORTS, lambda: asyncio.run(main()))


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

    def work() -> None:
        with psycopg.connect(**_libpq(config)) as conn, conn.cursor() as cur, \
                cur.copy(f"COPY {table} TO STDOUT (FORMAT csv)") as copy:  # noqa: S608 - benchmark table
            reader = pacsv.open_csv(CopyFile(copy), read_options=pacsv.ReadOptions(
                column_names=list(types), block_size=16 << 20), convert_options=convert)
            with pq.ParquetWriter(out, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)

    timed_child(REFERENCE_IMPORTS, work)


def run_connectorx(table: str, out: str) -> None:
    """connectorx, two partitions on id, Arrow result, written with pyarrow."""
    def work() -> None:
        import connectorx as cx
        import pyarrow.parquet as pq

        result = cx.read_sql(_uri(), f"SELECT * FROM {table}", partition_on="id", partition_num=2,  # noqa: S608
                             return_type="arrow")
        pq.write_table(result, out)

    timed_child(CONNECTORX_IMPORTS, work)


def run_pandas(table: str, out: str) -> None:
    """pandas.read_sql over SQLAlchemy (psycopg 3), then DataFrame.to_parquet."""
    def work() -> None:
        import pandas as pd
        import sqlalchemy

        engine = sqlalchemy.create_engine(_uri().replace("postgresql://", "postgresql+psycopg://"))
        frame = pd.read_sql(f"SELECT * FROM {table}", engine)  # noqa: S608
        frame.to_parquet(out)

    timed_child(PANDAS_IMPORTS, work)


def _libpq(config: dict[str, Any]) -> dict[str, Any]:
    return {"host": config["host"], "port": config["port"], "dbname": config["dbname"],
            "user": config["user"], "password": os.environ[ENV_PASSWORD]}


def _uri() -> str:
    c = _libpq(json.loads(os.environ[ENV_CONFIG]))
    return f"postgresql://{c['user']}:{c['password']}@{c['host']}:{c['port']}/{c['dbname']}"


def run_dlt(table: str, out: str) -> None:
    """dlt's sql_database source, pyarrow backend, to Parquet files on the local filesystem."""
    Path(out).mkdir(parents=True, exist_ok=True)

    def work() -> None:
        import dlt
        from dlt.sources.sql_database import sql_table

        source = sql_table(credentials=_uri().replace("postgresql://", "postgresql+psycopg://"), table=table,
                           backend="pyarrow", chunk_size=DLT_CHUNK)
        pipeline = dlt.pipeline(pipeline_name="bench", pipelines_dir=f"{out}/.dlt", dataset_name="bench",
                                destination=dlt.destinations.filesystem(bucket_url=f"file://{out}/data"))
        pipeline.run(source, loader_file_format="parquet")

    timed_child(DLT_IMPORTS, work)


CHILDREN: dict[str, Callable[..., None]] = {
    "fetch": run_fetch, "reference": run_reference, "connectorx": run_connectorx, "pandas": run_pandas, "dlt": run_dlt}


# --- the driver ------------------------------------------------------------------


def build_table(server: Any, name: str, rows: int) -> int:
    """Create the table once; its size on disk in bytes (which decides how many streams ours uses)."""
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(TABLE_SQL.format(name=name, rows=int(rows)))
        conn.execute(f"VACUUM ANALYZE {name}")
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", [name]).fetchone()
    return int(row[0]) if row else 0


def psql(server: Any, command: str, quiet: bool = True) -> list[str]:
    return ["psql", "-X", *(["-q"] if quiet else []), "-h", server.host, "-p", str(server.port), "-U", server.user,
            "-d", server.dbname, "-c", command]


def child(*args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_postgres", *args]


def python_candidate(name: str, settings: str, *args: str, env: dict[str, str], output: Path,
                     verify: Any) -> Candidate:
    """A Python child timed after its imports: connect + export + close."""
    return Candidate(name, child(*args), settings, verify, env=env, prepare=remover(output), reports_seconds=True)


def remover(*paths: Path) -> Any:
    def prepare() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    return prepare


# --- output checks ---------------------------------------------------------------


def copy_reported(rows: int) -> Any:
    def verify(stdout: str) -> None:
        expect(f"COPY {rows}" in stdout, f"the server's COPY reported {stdout.strip()[-80:]!r}, not {rows} rows")
    return verify


def parquet_rows(path: Path, rows: int, table: str = "") -> Any:
    """A check: the Parquet file(s) at ``path`` hold exactly ids 1..rows, with the table's columns.

    A folder (dlt's) is searched for the files of ``table``.
    """
    def verify(_: str) -> None:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        files = sorted(str(p) for p in path.rglob("*.parquet") if f"/{table}/" in str(p)) if path.is_dir() \
            else [str(path)]
        expect(bool(files), f"no Parquet file under {path}")
        data = ds.dataset(files, format="parquet")
        missing = set(COLUMNS) - set(data.schema.names)
        expect(not missing, f"{path}: columns {sorted(missing)} missing")
        ids = data.to_table(columns=["id"]).column("id")
        expect(len(ids) == rows and pc.count_distinct(ids).as_py() == rows, f"{path}: {len(ids)} rows, not {rows}")
        expect(pc.min(ids).as_py() == 1 and pc.max(ids).as_py() == rows, f"{path}: ids are not 1..{rows}")
    return verify


def landed(workspace: Path, name: str, check: Any) -> Any:
    """A check for ours: ``check`` (a sha256 the file must have, or a check), and a record naming its sha256."""
    path = workspace / name
    content = same_file(path, check) if isinstance(check, str) else check

    def verify(stdout: str) -> None:
        from connectors import read_provenance

        content(stdout)
        expect(read_provenance(path)["sha256"] == file_sha256(path), f"{path}: record and bytes disagree")
    return verify


LABELS = {"connectorx": "connectorx (2 partitions) -> parquet", "dlt": "dlt sql_table (pyarrow) -> parquet",
          "pandas": "pandas read_sql -> parquet"}
SETTINGS = {
    "connectorx": "2 partitions on id, Arrow result, pq.write_table defaults",
    "dlt": f"sql_table backend=pyarrow, chunk_size {DLT_CHUNK:,}, filesystem destination, Parquet",
    "pandas": "read_sql over SQLAlchemy + psycopg 3, to_parquet (pyarrow) defaults",
}


def big_candidates(server: Any, out: Path, env: dict[str, str], rows: int, csv_sha256: str,
                   streams: int) -> list[Candidate]:
    def ours(fmt: str, settings: str, check: Any) -> Candidate:
        ws = out / f"ws-{fmt}"
        return python_candidate(f"ours fetch_data {fmt}", settings, "fetch", fmt, "big", str(ws), env=env,
                                output=ws, verify=landed(ws, f"public.big.{fmt}", check))

    big = [
        Candidate("server COPY TO '/dev/null'", psql(server, "COPY big TO '/dev/null' (FORMAT csv, HEADER)",
                                                     quiet=False), "in the server; nothing crosses the wire",
                  copy_reported(rows), env=env),
        Candidate("psql \\copy TO file", psql(server, f"\\copy big TO '{out}/psql.csv' CSV HEADER"),
                  "one COPY stream, CSV HEADER, to a file; no hash, no fsync",
                  same_file(out / "psql.csv", csv_sha256), env=env, prepare=remover(out / "psql.csv")),
        ours("csv", f"COPY CSV HEADER, {streams} stream(s) (2 from 64 MB, PostgreSQL 14+); sha256, fsync, lineage",
             csv_sha256),
        ours("parquet", "one COPY stream -> typed Arrow, 8 MiB row groups; sha256, fsync, lineage",
             parquet_rows(out / "ws-parquet" / "public.big.parquet", rows)),
        python_candidate("reference COPY->pyarrow csv->parquet", "one COPY stream, pyarrow CSV 16 MiB blocks, "
                         "ParquetWriter per batch", "reference", "big", str(out / "ref.parquet"), env=env,
                         output=out / "ref.parquet", verify=parquet_rows(out / "ref.parquet", rows)),
    ]
    if importlib.util.find_spec("connectorx") is not None:  # the reference on this same table
        big.append(python_candidate(LABELS["connectorx"], SETTINGS["connectorx"], "connectorx", "big",
                                    str(out / "cx-big.parquet"), env=env, output=out / "cx-big.parquet",
                                    verify=parquet_rows(out / "cx-big.parquet", rows)))
    return big


def small_candidates(out: Path, env: dict[str, str], rows: int) -> tuple[list[Candidate], list[str]]:
    ws = out / "ws-small"
    small = [python_candidate("ours fetch_data parquet", "one COPY stream -> typed Arrow, 8 MiB row groups; "
                              "sha256, fsync, lineage", "fetch", "parquet", "small", str(ws), env=env, output=ws,
                              verify=landed(ws, "public.small.parquet", parquet_rows(ws / "public.small.parquet",
                                                                                      rows)))]
    missing = []
    for name, module in (("connectorx", "connectorx"), ("dlt", "dlt"), ("pandas", "pandas")):
        if importlib.util.find_spec(module) is None:
            missing.append(name)
            continue
        target = out / f"{name}.parquet"
        small.append(python_candidate(LABELS[name], SETTINGS[name], name, "small", str(target), env=env,
                                      output=target, verify=parquet_rows(target, rows, table="small")))
    return small, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    begin()
    from tests.harness import start_postgres

    with start_postgres(password="bench-pw") as server, scratch("da-bench-pg-") as out:
        env = {ENV_PASSWORD: server.password, "PGPASSWORD": server.password,
               ENV_CONFIG: json.dumps({"host": server.host, "port": server.port, "dbname": server.dbname,
                                       "user": server.user, "schemas": ["public"]})}
        print(f"building tables: big {args.rows:,} rows, small {args.small_rows:,} rows ...", flush=True)
        streams = 2 if build_table(server, "big", args.rows) >= PARALLEL_MIN_BYTES else 1
        build_table(server, "small", args.small_rows)
        csv_size, csv_sha256 = _csv_reference(server, env, out)
        big = compare(big_candidates(server, out, env, args.rows, csv_sha256, streams), args.repetitions)
        text = report(f"{args.rows:,} rows (CSV {csv_size / 1e6:,.0f} MB)", big, size_bytes=csv_size,
                      baseline="psql \\copy TO file", where=str(out))
        text += report(f"{args.rows:,} rows, ratios vs the server's own COPY", big, items=args.rows,
                       baseline="server COPY TO '/dev/null'", where=str(out))
        small, missing = small_candidates(out, env, args.small_rows)
        compare(small, args.repetitions)
        text += report(f"{args.small_rows:,} rows to Parquet", small, items=args.small_rows,
                       baseline=small[-1].name, ours="ours fetch_data parquet", where=str(out))
        if missing:
            print(f"not installed, left out: {', '.join(missing)}")
    write_result("bench_postgres", text, [f"not installed, left out: {', '.join(missing)}"] if missing else [])


def _csv_reference(server: Any, env: dict[str, str], out: Path) -> tuple[int, str]:
    """psql's CSV of the big table, once: its size (for throughput) and sha256 (every CSV must match)."""
    import subprocess

    probe = out / "reference.csv"
    subprocess.run(psql(server, f"\\copy big TO '{probe}' CSV HEADER"), env={**os.environ, **env}, check=True)
    size, digest = probe.stat().st_size, file_sha256(probe)
    probe.unlink()
    return size, digest


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
    else:
        main()
