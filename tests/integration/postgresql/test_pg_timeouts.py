"""No read waits forever on a table another session has locked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from connectors import DataFetchError, DataSourceError
from connectors.settings import PostgreSQLSettings
from tests.conformance import run, temporaries
from tests.harness import PostgresServer
from tests.helpers.postgresql import TABLES, admin, create_reader, drop_reader, pg_connector

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    from tests.helpers.postgresql import create_schema, drop_schema

    name = create_schema(postgres_server, TABLES)
    yield name
    drop_schema(postgres_server, name)


@pytest.fixture
def locked(postgres_server: PostgresServer, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """Another session holding ACCESS EXCLUSIVE on ``people`` (as ALTER TABLE or TRUNCATE would)."""
    conn = psycopg.connect(postgres_server.dsn)
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, "people")))
    yield conn
    conn.rollback()
    conn.close()


async def attempt(coro: Any) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        await coro
    except DataSourceError as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def test_a_locked_table_fails_after_lock_timeout_with_a_retryable_error(
    postgres_server: PostgresServer, schema: str, locked: psycopg.Connection[Any], tmp_path: Path
) -> None:
    async def body() -> list[tuple[BaseException | None, float]]:
        async with pg_connector(postgres_server, [schema], lock_timeout=1) as pg:
            return [await attempt(pg.fetch_data(f"{schema}.people", str(tmp_path))),
                    await attempt(pg.fetch_data(f"{schema}.people_view", str(tmp_path))),
                    await attempt(pg.get_metadata(f"{schema}.people", exact_count=True)),
                    await attempt(pg.list_items())]

    for error, seconds in run(body()):
        assert isinstance(error, DataFetchError) and error.retryable, error
        assert "lock_timeout (1 s) reached" in str(error) and "another session holds a lock" in str(error)
        assert seconds < 8  # lock_timeout is 1 s; the rest is a loaded CI machine
    assert temporaries(tmp_path) == [] and not list(tmp_path.glob("*.csv"))
    locked.rollback()  # the lock goes: the same connector reads it at once

    async def again() -> bytes:
        async with pg_connector(postgres_server, [schema], lock_timeout=1) as pg:
            return Path(await pg.fetch_data(f"{schema}.people", str(tmp_path))).read_bytes()

    assert run(again()) == TABLES["people"][2]


def test_every_read_has_a_bounded_statement_and_lock_timeout_by_default(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    defaults = PostgreSQLSettings(host="h")
    assert defaults.statement_timeout == 3600 and defaults.lock_timeout == 30
    reader = create_reader(postgres_server, schema)

    async def body() -> str:
        async with pg_connector(postgres_server, [schema], **reader) as pg:
            query = "SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l"
            return Path(await pg.fetch_query(query, str(tmp_path), "timeouts")).read_text()

    try:
        assert run(body()) == "s,l\n1h,30s\n"
    finally:
        drop_reader(postgres_server, reader)
    with admin(postgres_server) as conn:  # the server itself has none: the connector must bring them
        assert conn.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
                            ).fetchone() == ("0", "0")


def test_dagster_resources_carry_the_timeouts_and_the_other_postgresql_settings() -> None:
    from connectors import DataSourceConfig
    from da_pipelines.sources import resource_for

    config = {"host": "db", "password": {"env": "PGPASSWORD"}, "lock_timeout": 5, "statement_timeout": 60,
              "csv_values": "postgresql", "allow_privileged_queries": True, "pool_max_size": 2}
    resource = resource_for(DataSourceConfig(id="pg", type="postgresql", name="PG", config=config))
    carried = resource.connector_config()
    assert {key: carried.get(key) for key in config if key != "password"} == {
        key: value for key, value in config.items() if key != "password"}


def test_table_reads_pin_search_path_jit_and_timeouts_for_their_transaction(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    """What a view sees of its session while it is exported: the pinned settings, not the server's."""
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT current_setting('search_path') AS path, "
                             "current_setting('jit') AS jit, current_setting('lock_timeout') AS lock, "
                             "current_setting('transaction_read_only') AS ro").format(sql.Identifier(schema, "seen")))

    async def body() -> str:
        async with pg_connector(postgres_server, [schema], lock_timeout=7) as pg:
            return Path(await pg.fetch_data(f"{schema}.seen", str(tmp_path))).read_text()

    assert run(body()) == 'path,jit,lock,ro\n"pg_catalog, pg_temp",off,7s,on\n'
