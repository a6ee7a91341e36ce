"""A plain Parquet export of a large table lands as a dataset folder of bounded parts.

Against the real PostgreSQL: a table at least ``part_bytes`` big lands as ``<schema>.<table>/`` of
several parts, the same layout as an incremental table's full sync, read back as one exactly typed
table by pyarrow, pandas and DuckDB; a re-sync of the unchanged table verifies the parts and
exports nothing; a damaged or extra part is repaired; an interrupted export leaves no half folder;
the Dagster integrity check and a thread attach take the folder as one item.

docs/RELIABILITY.md rows 66-67.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from psycopg import sql

from connectors.checked_fetch import fetch_checked
from connectors.landing.lineage import read_provenance
from connectors.postgresql import PostgreSQLConnector
from connectors.registry import SourceRegistry
from connectors.syncing.dataset_manifest import ManifestEntry
from connectors.syncing.source_sync import SyncReport, sync_source
from connectors.threads.attach import ItemTooLargeError, attach_to_thread, attached_files
from da_pipelines.checks import verify_entries
from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, pg_connector

pytestmark = pytest.mark.integration

PART_BYTES = 1 << 16
ROWS = 20_000


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"parts_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(
            "CREATE SCHEMA {0};"
            "CREATE TABLE {0}.orders (id int PRIMARY KEY, amount numeric(14,3), at timestamptz, day date, note text);"
            "INSERT INTO {0}.orders SELECT g, g * 1.125, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 s', "
            " date '2026-01-01' + (g % 300), md5(g::text) || md5((-g)::text) FROM generate_series(1, {1}) g;"
            "CREATE TABLE {0}.tiny (id int PRIMARY KEY, amount numeric(6,2));"
            "INSERT INTO {0}.tiny VALUES (1, 1.50), (2, NULL)"
        ).format(sql.Identifier(name), sql.Literal(ROWS)))
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def connector(server: PostgresServer, schema: str, part_bytes: int = PART_BYTES) -> PostgreSQLConnector:
    return pg_connector(server, [schema], format="parquet", part_bytes=part_bytes)


def warehouse(server: PostgresServer, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              **config: Any) -> SourceRegistry:
    """A registry with source 'wh': the schema as Parquet parts of PART_BYTES, its DSN from the environment."""
    monkeypatch.setenv("TP_PG", server.dsn)
    registry = SourceRegistry(tmp_path / "sources.yaml")
    registry.add({"id": "wh", "type": "postgresql", "name": "Warehouse",
                  "config": {"dsn": {"env": "TP_PG"}, "schemas": [schema], "format": "parquet",
                             "part_bytes": PART_BYTES, **config}})
    return registry


def fetch(pg: PostgreSQLConnector, identifier: str, workspace: Path) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with pg:
            return await fetch_checked(pg, identifier, workspace)
    return run(go())


def resync(pg: PostgreSQLConnector, workspace: Path) -> SyncReport:
    report = SyncReport()

    async def go() -> None:
        async for _ in sync_source(pg, workspace, report=report):
            pass
    run(go())
    return report


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_large_table_lands_as_bounded_parts_read_as_one_exactly_typed_table(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    record = fetch(connector(postgres_server, schema), f"{schema}.orders", tmp_path)
    folder = tmp_path / f"{schema}.orders"
    assert record["local_path"] == str(folder) and not (tmp_path / f"{schema}.orders.parquet").exists()
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) >= 3 and all(f.startswith("part-") and f.endswith(".parquet") for f in files)
    assert all((folder / f).stat().st_size < 3 * PART_BYTES for f in files)  # the bound, plus under two row groups
    # the dataset record: each part with its rows and sha256, the total rows, the profile
    assert [p["name"] for p in record["parts"]] == files and record["format"] == "parquet dataset"
    assert record["row_count"] == ROWS == sum(p["rows"] for p in record["parts"])
    assert all(p["sha256"] == sha256(folder / p["name"]) for p in record["parts"])
    assert record["profile"]["rows"] == ROWS and len(record["profile"]["columns"]) == 5
    for part in record["parts"]:  # and each part its own lineage record
        own = read_provenance(folder / part["name"], tmp_path)
        assert own["sha256"] == part["sha256"] and own["row_count"] == part["rows"]
    # pyarrow.dataset: exact types, decimals stay decimals, timestamps keep their zone
    table = ds.dataset(str(folder), format="parquet").to_table()
    assert table.num_rows == ROWS
    assert table.schema.field("amount").type == pa.decimal128(14, 3)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("day").type == pa.date32()
    assert table.column("amount")[0].as_py() == decimal.Decimal("1.125")
    # pandas (what the agent's code reads with) takes the folder as one frame, with the same types
    frame = pandas.read_parquet(folder)
    assert len(frame) == ROWS and frame["amount"].sum() == decimal.Decimal("225011250.000")
    assert isinstance(frame["amount"].iloc[0], decimal.Decimal) and str(frame["at"].dtype).endswith("UTC]")
    first = frame.loc[frame["id"] == 1, "at"].iloc[0]
    assert first == datetime.datetime(2026, 1, 1, 0, 0, 1, tzinfo=datetime.UTC)
    # DuckDB too
    answer = duckdb.connect().execute(
        f"SELECT sum(amount), count(*), typeof(any_value(amount)), typeof(any_value(\"at\")) "
        f"FROM read_parquet('{folder}/*.parquet')").fetchall()
    assert answer == [(decimal.Decimal("225011250.000"), ROWS, "DECIMAL(14,3)", "TIMESTAMP WITH TIME ZONE")]


def test_a_small_table_stays_one_file_and_a_table_switching_form_leaves_one_copy(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    tiny = fetch(connector(postgres_server, schema), f"{schema}.tiny", tmp_path)
    assert tiny["local_path"] == str(tmp_path / f"{schema}.tiny.parquet") and "parts" not in tiny
    fetch(connector(postgres_server, schema), f"{schema}.orders", tmp_path)  # a folder
    assert (tmp_path / f"{schema}.orders").is_dir()
    fetch(connector(postgres_server, schema, part_bytes=1 << 30), f"{schema}.orders", tmp_path)  # now one file
    assert (tmp_path / f"{schema}.orders.parquet").is_file() and not (tmp_path / f"{schema}.orders").exists()
    assert not (tmp_path / ".lineage" / f"{schema}.orders").exists()
    fetch(connector(postgres_server, schema), f"{schema}.orders", tmp_path)  # a folder again
    assert (tmp_path / f"{schema}.orders").is_dir() and not (tmp_path / f"{schema}.orders.parquet").exists()
    assert not (tmp_path / ".lineage" / f"{schema}.orders.parquet.json").exists()
    csv = pg_connector(postgres_server, [schema], format="csv", part_bytes=PART_BYTES)
    landed_csv = fetch(csv, f"{schema}.orders", tmp_path / "csv")["local_path"]  # CSV stays one file
    assert landed_csv == str(tmp_path / "csv" / f"{schema}.orders.csv")


def test_a_re_sync_verifies_the_parts_exports_nothing_unchanged_and_repairs_damage(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    pg = connector(postgres_server, schema)
    first = resync(pg, tmp_path)
    assert sorted(r["identifier"] for r in first.landed) == [f"{schema}.orders", f"{schema}.tiny"]
    folder = tmp_path / f"{schema}.orders"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = resync(pg, tmp_path)
    assert again.landed == [] and sorted(again.unchanged) == [f"{schema}.orders", f"{schema}.tiny"]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # not exported again
    victim = sorted(folder.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    repaired = resync(pg, tmp_path)
    assert repaired.repaired == [f"{schema}.orders"]
    assert ds.dataset(str(folder), format="parquet").count_rows() == ROWS
    (folder / "part-99999.parquet").write_bytes((folder / "part-00000.parquet").read_bytes())  # a planted part
    planted = resync(pg, tmp_path)
    assert planted.repaired == [f"{schema}.orders"] and not (folder / "part-99999.parquet").exists()
    assert ds.dataset(str(folder), format="parquet").count_rows() == ROWS  # no row counted twice


def test_an_interrupted_export_leaves_no_half_folder_and_the_old_one_whole(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    pg = connector(postgres_server, schema)
    fetch(pg, f"{schema}.orders", tmp_path)
    folder = tmp_path / f"{schema}.orders"
    before = {p.name: sha256(p) for p in folder.iterdir()}
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("UPDATE {} SET note = 'changed'").format(sql.Identifier(schema, "orders")))

    async def interrupted() -> bool:
        async with pg:
            task = asyncio.ensure_future(pg.fetch_data(f"{schema}.orders", str(tmp_path)))
            while not task.done() and not any(p.is_dir() and any(p.iterdir())
                                              for p in tmp_path.glob(f".{schema}.orders.parts-*")):
                await asyncio.sleep(0.002)
            task.cancel()  # a part is written in staging: the export is half done
            try:
                await task
            except asyncio.CancelledError:
                return True
            return False

    assert run(interrupted()), "the export ended before it could be interrupted"
    assert {p.name: sha256(p) for p in folder.iterdir()} == before  # the old dataset, whole
    assert list(tmp_path.glob(f".{schema}.orders.parts-*")) == []  # no half folder left
    assert read_provenance(folder, tmp_path)["parts"][0]["sha256"] == before["part-00000.parquet"]


def test_the_dagster_integrity_check_verifies_every_part_of_a_dataset_folder(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    record = fetch(connector(postgres_server, schema), f"{schema}.orders", tmp_path)
    entry = ManifestEntry.from_record(record, tmp_path)
    assert entry.path == f"{schema}.orders"
    assert verify_entries(tmp_path, [entry], full=True, sample_size=10)[0] == []
    part = sorted((tmp_path / entry.path).iterdir())[-1]
    part.write_bytes(b"x" * part.stat().st_size)
    damaged, facts = verify_entries(tmp_path, [entry], full=True, sample_size=10)
    assert damaged == [f"{schema}.orders"] and facts["damaged"].value == 1


def test_a_thread_attach_places_the_folder_whole_as_one_manifest_entry(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = warehouse(postgres_server, schema, tmp_path, monkeypatch)
    base = tmp_path / "workspace"

    async def attach() -> Any:
        async with registry:
            return await attach_to_thread(registry, base, "t1", [{"source_id": "wh", "table": f"{schema}.orders"}],
                                          create=True, state_dir=tmp_path / "state")

    attachment = run(attach())
    (entry,) = attachment.files
    placed = base / "t1" / f"{schema}.orders"
    assert entry.name == f"{schema}.orders" and placed.is_dir() and entry.parts == len(list(placed.iterdir())) >= 3
    assert ds.dataset(str(placed), format="parquet").to_table().schema.field("amount").type == pa.decimal128(14, 3)
    manifest = attachment.manifest()
    lines = [line for line in manifest.splitlines() if line.startswith("- ")]
    assert lines == [f"- {schema}.orders: {schema}.orders from source wh, version {entry.version}, {ROWS} rows, "
                     f"{entry.size} bytes, a folder of {entry.parts} Parquet parts read as one table"]
    assert "columns (5): id integer 1..20000; amount numeric(14,3)" in manifest
    again = run(attach())
    assert again.files[0].status == "unchanged" and again.files[0].name == entry.name
    assert sorted(p.name for p in (base / "t1").iterdir()) == [f"{schema}.orders"]  # no temporary left
    listed = attached_files(base, "t1", tmp_path / "state")  # what is attached now, from the records
    assert [(f.name, f.parts, f.row_count) for f in listed.files] == [(entry.name, entry.parts, ROWS)]
    with admin(postgres_server) as conn:  # a newer version: our unmodified folder is replaced in one step
        conn.execute(sql.SQL("DELETE FROM {} WHERE id > 10000").format(sql.Identifier(schema, "orders")))
    newer = run(attach())
    assert newer.files[0].status == "replaced" and newer.files[0].name == entry.name
    assert ds.dataset(str(placed), format="parquet").count_rows() == 10000
    assert sorted(p.name for p in (base / "t1").iterdir()) == [f"{schema}.orders"]  # the old one is gone


def test_a_thread_attach_over_its_byte_limit_stops_while_writing_parts_and_leaves_nothing(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = warehouse(postgres_server, schema, tmp_path, monkeypatch)
    base = tmp_path / "workspace"

    async def attach() -> Any:
        async with registry:
            return await attach_to_thread(registry, base, "t1", [{"source_id": "wh", "table": f"{schema}.orders"}],
                                          max_item_bytes=3 * PART_BYTES, create=True, state_dir=tmp_path / "state")

    with pytest.raises(ItemTooLargeError, match="over the limit of 196608 bytes"):
        run(attach())
    assert list((base / "t1").iterdir()) == []
    assert [p for p in (tmp_path / "state").rglob("*.parquet")] == []  # no part left in the attach's staging


def test_a_large_query_result_lands_as_a_dataset_folder_and_a_small_one_as_a_file(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    pg = pg_connector(postgres_server, [schema], format="parquet", part_bytes=PART_BYTES,
                      allow_privileged_queries=True)  # the harness role is a superuser
    query = f"SELECT id, amount, note FROM {schema}.orders WHERE id > %s"

    async def go() -> tuple[str, str]:
        async with pg:
            return (await pg.fetch_query(query, str(tmp_path), "big", [10]),
                    await pg.fetch_query(query + " LIMIT 2", str(tmp_path), "small", [ROWS - 2]))

    big, small = map(Path, run(go()))
    assert big == tmp_path / "big" and len(list(big.iterdir())) >= 3
    record = read_provenance(big, tmp_path)
    assert record["query"] == query and record["row_count"] == ROWS - 10 and record["identifier"] == "query:big"
    table = ds.dataset(str(big), format="parquet").to_table()
    assert table.num_rows == ROWS - 10 and table.schema.field("amount").type == pa.decimal128(14, 3)
    assert small == tmp_path / "small.parquet" and small.is_file()


def test_an_attach_whose_second_placing_fails_takes_back_the_dataset_folder_it_placed(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/RELIABILITY.md row 71
    from connectors.threads import placing

    registry = warehouse(postgres_server, schema, tmp_path, monkeypatch, allow_privileged_queries=True)
    base = tmp_path / "workspace"
    recorded = placing._recorded
    calls: list[str] = []

    def full_disk_on_the_second(*args: Any) -> None:
        calls.append(str(args[4]))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        recorded(*args)

    monkeypatch.setattr(placing, "_recorded", full_disk_on_the_second)
    references = [{"source_id": "wh", "table": f"{schema}.orders"},
                  {"source_id": "wh", "query": f"SELECT id FROM {schema}.orders WHERE id <= 5", "name": "few"}]

    async def attach() -> Any:
        async with registry:
            return await attach_to_thread(registry, base, "t1", references, create=True, state_dir=tmp_path / "state")

    with pytest.raises(OSError, match="No space left"):
        run(attach())
    assert calls[0] == f"{schema}.orders"  # the folder was placed (and recorded) before the failure
    assert list((base / "t1").iterdir()) == []  # taken back: no folder, no file, no temporary
    assert attached_files(base, "t1", tmp_path / "state").files == []  # and no record
