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
    .venv/bin/python -m benchmarks.bench_postgres [--rows 10000000] [--wide-rows 60000] [--wide-columns 900]
        [--small-rows 1000000] [--repetitions 3] [--tables big,wide,small]

The state-of-the-art anchors run on the big table and on the wide
one: adbc-driver-postgresql (binary COPY into Arrow, written with
``pyarrow.parquet`` batch by batch) and connectorx (two partitions on ``id``),
each as a whole process beside ours. The wide table (``--wide-columns``
columns: ``id`` then int8, float8, numeric(12,2), text, timestamptz and
boolean in turn; ``--wide-rows`` rows, about 10 kB of CSV each, so 60,000 rows
make about 0.6 GB) is built the same way. A summary line per table gives ours
over the faster anchor on the whole-process clock. Our Parquet must keep
``numeric(p,s)`` as decimals; the other tools' numeric types are stated
(ADBC returns them as strings). Tables are created once per benchmark process.

The third table (``--small-rows``) compares Parquet writers that hold the
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
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
WIDE_TYPES = (  # (expression of g and the column's number k, its type), in turn
    ("((g * {k}) % 1000003)::int8", "int8"),
    ("((g + {k}) / 7.0)::float8", "float8"),
    ("(((g * {k}) % 1000000) / 100.0)::numeric(12,2)", "numeric(12,2)"),
    ("'v' || ((g + {k}) % 9973)", "text"),
    ("timestamptz '2024-01-01 00:00:00+00' + (g + {k}) * interval '1 second'", "timestamptz"),
    ("(g + {k}) % 3 = 0", "boolean"),
)
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


ADBC_IMPORTS = ["adbc_driver_postgresql.dbapi", "pyarrow", "pyarrow.parquet"]


def run_adbc(table: str, out: str) -> None:
    """adbc-driver-postgresql: its binary COPY into Arrow batches, each written with pyarrow's ParquetWriter."""
    def work() -> None:
        import adbc_driver_postgresql.dbapi as adbc
        import pyarrow.parquet as pq

        with adbc.connect(_uri()) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table}")  # noqa: S608 - benchmark table
            reader = cur.fetch_record_batch()
            with pq.ParquetWriter(out, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)

    timed_child(ADBC_IMPORTS, work)


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
    "fetch": run_fetch, "reference": run_reference, "connectorx": run_connectorx, "adbc": run_adbc,
    "pandas": run_pandas, "dlt": run_dlt}


# --- the driver ------------------------------------------------------------------


def wide_sql(name: str, rows: int, columns: int) -> str:
    """The wide table: ``id``, then ``columns - 1`` columns cycling through :data:`WIDE_TYPES`."""
    exprs = ["g::bigint AS id"] + [
        f"{WIDE_TYPES[k % len(WIDE_TYPES)][0].format(k=k)} AS c{k:04d}" for k in range(1, columns)]
    return f"CREATE UNLOGGED TABLE {name} AS SELECT {', '.join(exprs)} FROM generate_series(1, {int(rows)}) AS g"


def wide_decimals(columns: int) -> list[str]:
    """The wide table's numeric(12,2) columns."""
    return [f"c{k:04d}" for k in range(1, columns) if WIDE_TYPES[k % len(WIDE_TYPES)][1].startswith("numeric")]


def build_table(server: Any, name: str, rows: int, create: str | None = None) -> int:
    """Create the table once; its size on disk in bytes (which decides how many streams ours uses)."""
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(create or TABLE_SQL.format(name=name, rows=int(rows)))  # type: ignore[arg-type]
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

TYPES_SEEN: dict[str, str] = {}  # candidate -> the Arrow type its Parquet gave a numeric(12,2) column


def copy_reported(rows: int) -> Any:
    def verify(stdout: str) -> None:
        expect(f"COPY {rows}" in stdout, f"the server's COPY reported {stdout.strip()[-80:]!r}, not {rows} rows")
    return verify


def parquet_rows(path: Path, rows: int, table: str = "", columns: list[str] | None = None,
                 decimals: list[str] | None = None, seen_as: str = "", numeric: str = "amount") -> Any:
    """A check: the Parquet file(s) at ``path`` hold exactly ids 1..rows, with the table's columns.

    A folder (dlt's, or our dataset folder of parts) is searched for the files of ``table``.
    ``decimals``: columns that must be Arrow decimals (ours: exact types). ``seen_as``: record, under
    this name, the type the file gave the numeric column ``numeric``.
    """
    expected = columns or COLUMNS

    def verify(_: str) -> None:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds
        import pyarrow.types as pat

        files = sorted(str(p) for p in path.rglob("*.parquet") if not table or f"/{table}/" in str(p)) \
            if path.is_dir() else [str(path)]
        expect(bool(files), f"no Parquet file under {path}")
        data = ds.dataset(files, format="parquet")
        missing = set(expected) - set(data.schema.names)
        expect(not missing, f"{path}: columns {sorted(missing)[:5]} missing")
        for name in decimals or []:
            kind = data.schema.field(name).type
            expect(pat.is_decimal(kind), f"{path}: column {name} is {kind}, not a decimal")
        if seen_as and numeric in data.schema.names:
            TYPES_SEEN[seen_as] = str(data.schema.field(numeric).type)
        ids = data.to_table(columns=["id"]).column("id")
        expect(len(ids) == rows and pc.count_distinct(ids).as_py() == rows, f"{path}: {len(ids)} rows, not {rows}")
        expect(pc.min(ids).as_py() == 1 and pc.max(ids).as_py() == rows, f"{path}: ids are not 1..{rows}")
    return verify


def landed(workspace: Path, name: str, check: Any) -> Any:
    """A check for ours: ``check`` (a sha256 the file must have, or a check), and a record naming its sha256.

    A dataset folder (a big table in Parquet) must have a record whose row count is the table's and
    whose parts' records name their sha256.
    """
    path = workspace / name
    content = same_file(path, check) if isinstance(check, str) else check

    def verify(stdout: str) -> None:
        from connectors import read_provenance

        if not path.exists() and path.with_suffix("").is_dir():  # public.big.parquet -> public.big/
            folder = path.with_suffix("")
            content(stdout)
            record = read_provenance(folder)
            for part in record["parts"]:
                expect(file_sha256(folder / part["name"]) == part["sha256"], f"{folder}: part record and bytes "
                       "disagree")
            return
        content(stdout)
        expect(read_provenance(path)["sha256"] == file_sha256(path), f"{path}: record and bytes disagree")
    return verify


LABELS = {"connectorx": "connectorx (2 partitions) -> parquet", "dlt": "dlt sql_table (pyarrow) -> parquet",
          "pandas": "pandas read_sql -> parquet", "adbc": "adbc-driver-postgresql -> parquet"}
SETTINGS = {
    "connectorx": "2 partitions on id, Arrow result, pq.write_table defaults",
    "adbc": "one binary COPY into Arrow batches, ParquetWriter per batch (defaults)",
    "dlt": f"sql_table backend=pyarrow, chunk_size {DLT_CHUNK:,}, filesystem destination, Parquet",
    "pandas": "read_sql over SQLAlchemy + psycopg 3, to_parquet (pyarrow) defaults",
}
ANCHORS = ("adbc", "connectorx")  # the state of the art: ours must be 1.3x the faster


@dataclass
class Table:
    """A benchmark table: its name, rows, columns, numeric columns, and its CSV's size and sha256 (psql's)."""

    name: str
    rows: int
    columns: list[str]
    decimals: list[str]
    streams: int = 1
    csv_size: int = 0
    csv_sha256: str = ""


def table_candidates(server: Any, out: Path, env: dict[str, str], table: Table,
                     reference: bool) -> list[Candidate]:
    """Every candidate on ``table``: the server's COPY, psql, ours (CSV, Parquet), the anchors, the reference."""
    name, rows = table.name, table.rows

    def ours(fmt: str, settings: str, check: Any) -> Candidate:
        ws = out / f"ws-{name}-{fmt}"
        return python_candidate(f"ours fetch_data {fmt}", settings, "fetch", fmt, name, str(ws), env=env,
                                output=ws, verify=landed(ws, f"public.{name}.{fmt}", check))

    def parquet(path: Path, seen_as: str, decimals: bool = False) -> Any:
        return parquet_rows(path, rows, columns=table.columns, decimals=table.decimals if decimals else None,
                            seen_as=seen_as, numeric=table.decimals[0])

    candidates = [
        Candidate("server COPY TO '/dev/null'", psql(server, f"COPY {name} TO '/dev/null' (FORMAT csv, HEADER)",
                                                     quiet=False), "in the server; nothing crosses the wire",
                  copy_reported(rows), env=env),
        Candidate("psql \\copy TO file", psql(server, f"\\copy {name} TO '{out}/psql.csv' CSV HEADER"),
                  "one COPY stream, CSV HEADER, to a file; no hash, no fsync",
                  same_file(out / "psql.csv", table.csv_sha256), env=env, prepare=remover(out / "psql.csv")),
        ours("csv", f"COPY CSV HEADER, {table.streams} stream(s) (2 from 64 MB, PostgreSQL 14+); sha256, fsync, "
             "lineage, profile", table.csv_sha256),
        ours("parquet", "COPY -> typed Arrow (decimals as decimals), row groups of 8 MiB (32 KiB a column when "
             "wide), dictionaries for repeating columns only, threads: read, parse, encode; parts of 128 MiB "
             "from 128 MiB on disk; sha256, fsync, lineage, profile",
             parquet(out / f"ws-{name}-parquet", "ours", True)),
    ]
    if reference:
        candidates.append(python_candidate(
            "reference COPY->pyarrow csv->parquet", "one COPY stream, pyarrow CSV 16 MiB blocks, ParquetWriter per "
            "batch", "reference", name, str(out / "ref.parquet"), env=env, output=out / "ref.parquet",
            verify=parquet(out / "ref.parquet", "reference")))
    for tool in ANCHORS:
        if importlib.util.find_spec(TOOL_MODULES[tool]) is None:
            continue
        target = out / f"{tool}-{name}.parquet"
        candidates.append(python_candidate(LABELS[tool], SETTINGS[tool], tool, name, str(target), env=env,
                                           output=target, verify=parquet(target, tool)))
    return candidates


TOOL_MODULES = {"connectorx": "connectorx", "adbc": "adbc_driver_postgresql", "dlt": "dlt", "pandas": "pandas"}


def small_candidates(out: Path, env: dict[str, str], rows: int) -> tuple[list[Candidate], list[str]]:
    ws = out / "ws-small"
    small = [python_candidate("ours fetch_data parquet", "one COPY stream -> typed Arrow, 8 MiB row groups; "
                              "sha256, fsync, lineage", "fetch", "parquet", "small", str(ws), env=env, output=ws,
                              verify=landed(ws, "public.small.parquet", parquet_rows(ws / "public.small.parquet",
                                                                                      rows)))]
    missing = []
    for name in ("connectorx", "adbc", "dlt", "pandas"):
        if importlib.util.find_spec(TOOL_MODULES[name]) is None:
            missing.append(name)
            continue
        target = out / f"{name}.parquet"
        small.append(python_candidate(LABELS[name], SETTINGS[name], name, "small", str(target), env=env,
                                      output=target, verify=parquet_rows(target, rows, table="small")))
    return small, missing


def anchor_summary(table: Table, candidates: list[Candidate]) -> str:
    """Ours against the faster anchor (Parquet, target 1.3x) and psql (CSV, target 1.2x), whole processes."""
    by_name = {c.name: c for c in candidates}
    lines = []
    anchors = [by_name[LABELS[tool]] for tool in ANCHORS if LABELS[tool] in by_name]
    parquet = by_name["ours fetch_data parquet"]
    if anchors:
        best = min(anchors, key=lambda c: c.median_process_seconds)
        lines.append(f"- Parquet, {table.name}: ours {parquet.median_process_seconds:.2f} s, the faster anchor "
                     f"({best.name}) {best.median_process_seconds:.2f} s: "
                     f"**{best.median_process_seconds / parquet.median_process_seconds:.2f}x** (whole processes; "
                     f"target 1.3x); peak RSS ours {parquet.peak_rss_mib:.0f} MiB, theirs {best.peak_rss_mib:.0f} MiB")
    else:
        lines.append(f"- Parquet, {table.name}: ours {parquet.median_process_seconds:.2f} s; no anchor installed "
                     "(adbc-driver-postgresql, connectorx: the bench extra)")
    csv, psql_copy = by_name["ours fetch_data csv"], by_name["psql \\copy TO file"]
    lines.append(f"- CSV, {table.name}: ours {csv.median_process_seconds:.2f} s, psql \\copy "
                 f"{psql_copy.median_process_seconds:.2f} s: "
                 f"**{psql_copy.median_process_seconds / csv.median_process_seconds:.2f}x** (whole processes; "
                 f"target 1.2x); byte-identical files")
    numeric = ", ".join(f"{who}: {kind}" for who, kind in sorted(TYPES_SEEN.items()))
    lines.append(f"- numeric(12,2) in Parquet: {numeric}")
    TYPES_SEEN.clear()
    text = "\n".join(lines) + "\n\n"
    print(text, flush=True)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--wide-rows", type=int, default=60_000)
    parser.add_argument("--wide-columns", type=int, default=900)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--tables", default="big,wide,small", help="which tables to run, comma-separated")
    args = parser.parse_args()
    chosen = set(args.tables.split(","))
    begin()
    from tests.harness import start_postgres

    text, missing = "", [tool for tool, module in TOOL_MODULES.items() if importlib.util.find_spec(module) is None]
    with start_postgres(password="bench-pw") as server, scratch("da-bench-pg-") as out:
        env = {ENV_PASSWORD: server.password, "PGPASSWORD": server.password,
               ENV_CONFIG: json.dumps({"host": server.host, "port": server.port, "dbname": server.dbname,
                                       "user": server.user, "schemas": ["public"]})}
        # every scan from the table's first block: a synchronized scan starts where another left off, so two
        # plain COPYs of a table over a quarter of shared_buffers could give the same rows in another order
        subprocess.run(psql(server, "ALTER SYSTEM SET synchronize_seqscans = off"), env={**os.environ, **env},
                       check=True)
        subprocess.run(psql(server, "SELECT pg_reload_conf()"), env={**os.environ, **env}, check=True,
                       stdout=subprocess.DEVNULL)
        tables = []
        if "big" in chosen:
            tables.append(Table("big", args.rows, COLUMNS, ["amount"]))
        if "wide" in chosen:
            names = ["id"] + [f"c{k:04d}" for k in range(1, args.wide_columns)]
            tables.append(Table("wide", args.wide_rows, names, wide_decimals(args.wide_columns)))
        for table in tables:
            print(f"building {table.name}: {table.rows:,} rows x {len(table.columns)} columns ...", flush=True)
            create = wide_sql(table.name, table.rows, len(table.columns)) if table.name == "wide" else None
            table.streams = 2 if build_table(server, table.name, table.rows, create) >= PARALLEL_MIN_BYTES else 1
            table.csv_size, table.csv_sha256 = _csv_reference(server, env, out, table.name)
            done = compare(table_candidates(server, out, env, table, reference=table.name == "big"),
                           args.repetitions)
            shape = f"{table.rows:,} rows x {len(table.columns)} columns"
            text += report(f"{table.name}: {shape} (CSV {table.csv_size / 1e6:,.0f} MB)", done,
                           size_bytes=table.csv_size, baseline="psql \\copy TO file", where=str(out))
            text += anchor_summary(table, done)
            remover(*out.iterdir())()  # the next table's outputs start from an empty folder
        if "small" in chosen:
            build_table(server, "small", args.small_rows)
            small, _ = small_candidates(out, env, args.small_rows)
            compare(small, args.repetitions)
            text += report(f"{args.small_rows:,} rows to Parquet", small, items=args.small_rows,
                           baseline=small[-1].name, ours="ours fetch_data parquet", where=str(out))
    if missing:
        print(f"not installed, left out: {', '.join(missing)}")
    write_result("bench_postgres", text, [f"not installed, left out: {', '.join(missing)}"] if missing else [])


def _csv_reference(server: Any, env: dict[str, str], out: Path, table: str) -> tuple[int, str]:
    """psql's CSV of ``table``, once: its size (for throughput) and sha256 (every CSV must match)."""
    probe = out / "reference.csv"
    subprocess.run(psql(server, f"\\copy {table} TO '{probe}' CSV HEADER"), env={**os.environ, **env}, check=True)
    size, digest = probe.stat().st_size, file_sha256(probe)
    probe.unlink()
    return size, digest


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
    else:
        main()
