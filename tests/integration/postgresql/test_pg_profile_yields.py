"""A CSV export's profile uses idle CPU only: when its parser is behind, rows stay exact and it says of how many.

docs/design/profiling.md: the parser threads run at the lowest priority and, past each stream's first
``ALWAYS_PROFILED_BYTES``, a chunk that finds the parser's queue full is left out of the profile rather
than holding the export. Here the parser is made slow (each block waits) and the chunks small, so the
export outruns it for sure; ``profile: exact`` waits for it instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from connectors import profiling_stream
from connectors.checked_fetch import fetch_checked
from connectors.postgresql.export import CopyOutStream
from connectors.profiling_stream import CsvStreamProfile
from connectors.threads.manifest import columns_text
from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, pg_connector

pytestmark = pytest.mark.integration

ROWS = 3000


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"yield_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(
            "CREATE SCHEMA {0};"
            "CREATE TABLE {0}.events (id int PRIMARY KEY, amount numeric(10,2), note text);"
            "INSERT INTO {0}.events SELECT g, g * 0.25, CASE WHEN g % 10 = 0 THEN NULL ELSE md5(g::text) END"
            " FROM generate_series(1, {1}) g"
        ).format(sql.Identifier(name), sql.Literal(ROWS)))
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def slow_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of ~1 KiB, a queue of 2, 2 KiB always profiled, and a parser that takes 20 ms per block."""
    original_chunks, original_block = CopyOutStream.chunks, CsvStreamProfile._profile_block

    def small_chunks(self: CopyOutStream, size: int = 1024) -> Iterator[Any]:
        return original_chunks(self, 1024)

    def slow_block(self: CsvStreamProfile, data: bytes, skip_header: bool) -> None:
        time.sleep(0.02)
        original_block(self, data, skip_header)

    monkeypatch.setattr(CopyOutStream, "chunks", small_chunks)
    monkeypatch.setattr(CsvStreamProfile, "_profile_block", slow_block)
    monkeypatch.setattr(profiling_stream, "QUEUED_CHUNKS", 2)
    monkeypatch.setattr(profiling_stream, "ALWAYS_PROFILED_BYTES", 2048)
    monkeypatch.setattr(profiling_stream, "BLOCK_BYTES", 4096)


def export(postgres_server: PostgresServer, schema: str, tmp_path: Path, **settings: Any) -> dict[str, Any]:
    connector = pg_connector(postgres_server, [schema], format="csv", **settings)

    async def go() -> dict[str, Any]:
        async with connector:
            return await fetch_checked(connector, f"{schema}.events", tmp_path)

    return run(go())


def test_a_profile_behind_the_export_keeps_the_exact_row_count_and_says_of_how_many_rows(
        postgres_server: PostgresServer, schema: str, tmp_path: Path, slow_parser: None) -> None:
    record = export(postgres_server, schema, tmp_path)
    profile = record["profile"]
    assert record["row_count"] == profile["rows"] == ROWS  # the COPY's count, whatever was profiled
    assert 0 < profile["profiled_rows"] < ROWS
    note = next(c for c in profile["columns"] if c["name"] == "note")
    assert note["nulls"] <= profile["profiled_rows"] // 10 + 1  # figures of the profiled rows only
    assert columns_text(profile).startswith(f"columns (3, values of {profile['profiled_rows']:,} of {ROWS:,} rows): ")
    assert (tmp_path / f"{schema}.events.csv").read_text().count("\n") == ROWS + 1  # the file itself is whole


def test_an_exact_profile_describes_every_row_however_slow_its_parser(
        postgres_server: PostgresServer, schema: str, tmp_path: Path, slow_parser: None) -> None:
    record = export(postgres_server, schema, tmp_path, profile="exact")
    profile = record["profile"]
    assert profile["rows"] == record["row_count"] == ROWS and "profiled_rows" not in profile
    assert next(c for c in profile["columns"] if c["name"] == "note")["nulls"] == ROWS // 10
    assert columns_text(profile).startswith("columns (3): ")
