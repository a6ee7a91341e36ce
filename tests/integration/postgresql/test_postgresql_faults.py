"""PostgreSQLConnector under faults (docs/RELIABILITY.md rows 14, 16-23, 25-27, 29) against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from connectors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    DataSourceConfig,
    DataSourceError,
    NotFoundError,
    WorkspaceError,
    read_provenance,
)
from connectors.postgresql import PostgreSQLConnector
from tests.conformance import run, temporaries
from tests.harness import REPO, PostgresServer, start_postgres
from tests.helpers.postgresql import TABLES, admin, create_schema, drop_schema, pg_config, pg_connector
from tests.helpers.tmpfs import tmpfs

pytestmark = pytest.mark.integration

CANARY = "canary-Pw-7f3a9c"


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = create_schema(postgres_server, TABLES)
    with admin(postgres_server) as conn:
        # rows come out one every 10 ms: an export that takes a while and can be interrupted
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT g, repeat('x', 100) AS pad, length(pg_sleep(0.01)::text) AS z "
                             "FROM generate_series(1, 300) AS g").format(sql.Identifier(name, "slow")))
    yield name
    drop_schema(postgres_server, name)


def timed(coro: Any) -> tuple[BaseException | None, float]:
    """Run ``coro``; the exception it raised (or None) and the seconds it took."""
    start = time.monotonic()
    try:
        run(coro)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


async def fetch_once(connector: PostgreSQLConnector, identifier: str, workspace: Path) -> str:
    async with connector:
        return await connector.fetch_data(identifier, str(workspace))


# --- 14: missing table / schema ----------------------------------------------------


def test_missing_table_or_schema_is_not_found_at_once(postgres_server: PostgresServer, schema: str,
                                                      tmp_path: Path) -> None:
    for identifier in (f"{schema}.nope", "no_such_schema.people"):
        error, seconds = timed(fetch_once(pg_connector(postgres_server, [schema]), identifier, tmp_path))
        assert isinstance(error, NotFoundError) and not error.retryable
        assert seconds < 3
    with pytest.raises(NotFoundError, match="schema"):
        run(_list(pg_connector(postgres_server, [schema]), "no_such_schema"))


async def _list(connector: PostgreSQLConnector, path: str | None = None) -> list[str]:
    async with connector:
        return [item.path for item in await connector.list_items(path)]


# --- 16, 17: silent server, server down, wrong password ------------------------------


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def raw_config(**config: Any) -> DataSourceConfig:
    return DataSourceConfig(id="pg-fault", type="postgresql", name="PG", config=config)


def test_server_that_never_answers_times_out_within_connect_timeout() -> None:
    with silent_listener() as port:
        connector = PostgreSQLConnector(raw_config(host="127.0.0.1", port=port, user="u", password=CANARY,
                                                   dbname="d", connect_timeout=2))
        error, seconds = timed(connector.connect())
    assert isinstance(error, ConnectionError) and error.retryable
    assert 1.5 <= seconds < 4, seconds
    assert CANARY not in str(error)


def test_closed_port_is_a_connection_error_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        connector = PostgreSQLConnector(raw_config(dsn=f"postgresql://u:{CANARY}@127.0.0.1:{port}/d",
                                                   connect_timeout=5))
        error, seconds = timed(connector.connect())
    assert isinstance(error, ConnectionError) and seconds < 2
    assert CANARY not in str(error) and CANARY not in repr(error)


def test_wrong_password_is_an_authentication_error_at_once(postgres_server: PostgresServer) -> None:
    connector = pg_connector(postgres_server, ["public"], password=CANARY)
    error, seconds = timed(connector.connect())
    assert isinstance(error, AuthenticationError) and not error.retryable
    assert seconds < 3 and CANARY not in str(error)
    assert not connector.is_connected


def test_server_down_at_connect_and_mid_life_then_back() -> None:
    with start_postgres(password=CANARY) as server:
        connector = pg_connector(server, ["public"], connect_timeout=2, pool_max_size=1)

        async def body() -> None:
            async with connector:
                assert await connector.test_connection()
                server.stop()
                start = time.monotonic()
                with pytest.raises(ConnectionError) as caught:
                    await connector.list_items()
                assert time.monotonic() - start < 15 and CANARY not in str(caught.value)
                assert not await connector.test_connection()
                server.start()
                assert await connector.list_items() == []  # the pool recovers by itself

        run(body())
        server.stop()
        error, seconds = timed(pg_connector(server, ["public"], connect_timeout=2).connect())
        assert isinstance(error, ConnectionError) and seconds < 3


# --- 18: backend killed mid-export -----------------------------------------------------


def backend_pids(server: PostgresServer) -> list[int]:
    with admin(server) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'da-sources' "
                            "AND query LIKE 'COPY%%' AND state = 'active'").fetchall()
    return [row[0] for row in rows]


async def copying_backends(server: PostgresServer, *, until_any: bool, seconds: float) -> list[int]:
    """Our COPY backends, polled until there are some (``until_any``) or none, or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while True:
        pids = await asyncio.to_thread(backend_pids, server)
        if bool(pids) == until_any or time.monotonic() > deadline:
            return pids
        await asyncio.sleep(0.05)


async def export_under_way(server: PostgresServer, tmp_path: Path, name: str) -> list[int]:
    """Wait until the server runs our COPY and its landing temporary exists; the backends' pids."""
    for _ in range(200):
        pids = await asyncio.to_thread(backend_pids, server)
        if pids and temporaries(tmp_path):
            return pids
        await asyncio.sleep(0.05)
    raise AssertionError(f"the export of {name} never got under way")


def test_backend_killed_mid_export_removes_temp_and_pool_recovers(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    connector = pg_connector(postgres_server, [schema], pool_max_size=1)

    async def body() -> None:
        async with connector:
            export = asyncio.ensure_future(connector.fetch_data(f"{schema}.slow", str(tmp_path)))
            pids = await export_under_way(postgres_server, tmp_path, "slow")
            with admin(postgres_server) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
            with pytest.raises(ConnectionError):
                await export
            assert temporaries(tmp_path) == []
            # the one pooled connection died: the next fetch gets a fresh one
            path = await connector.fetch_data(f"{schema}.people", str(tmp_path))
            assert Path(path).read_bytes() == TABLES["people"][2]

    run(body())
    assert not (tmp_path / f"{schema}.slow.csv").exists()


def test_cancelled_fetch_leaves_nothing_and_the_connector_still_works(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    async def body() -> None:
        async with pg_connector(postgres_server, [schema], pool_max_size=1) as pg:
            export = asyncio.ensure_future(pg.fetch_data(f"{schema}.slow", str(tmp_path)))
            await export_under_way(postgres_server, tmp_path, "slow")  # cancelled mid-export, not before it
            export.cancel()
            with pytest.raises(asyncio.CancelledError):
                await export
            assert temporaries(tmp_path) == []
            assert Path(await pg.fetch_data(f"{schema}.empty", str(tmp_path))).read_bytes() == b"a,b\n"
            # the cancelled connection is dropped, not handed back mid-COPY: its backend ends soon after
            assert await copying_backends(postgres_server, until_any=False, seconds=5) == []

    run(body())
    assert not (tmp_path / f"{schema}.slow.csv").exists()


def test_cancelled_parquet_fetch_ends_its_read_ahead_thread_before_the_connection_is_reused(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    """A Parquet export reads the COPY in a thread of its own (``prefetched``): cancelled, that thread has
    ended before the connection is abandoned, so nothing reads a connection the pool has taken back."""
    async def body() -> None:
        async with pg_connector(postgres_server, [schema], pool_max_size=1, format="parquet") as pg:
            export = asyncio.ensure_future(pg.fetch_data(f"{schema}.slow", str(tmp_path)))
            await export_under_way(postgres_server, tmp_path, "slow")
            for _ in range(200):  # the COPY may not have sent its first row yet
                if [t for t in threading.enumerate() if t.name == "da-copy-read"]:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no read-ahead thread")
            export.cancel()
            with pytest.raises(asyncio.CancelledError):
                await export
            assert [t for t in threading.enumerate() if t.name in ("da-copy-read", "da-copy-parse")] == []
            assert temporaries(tmp_path) == []
            assert await copying_backends(postgres_server, until_any=False, seconds=5) == []
            landed = Path(await pg.fetch_data(f"{schema}.people", str(tmp_path)))
            assert read_provenance(landed)["row_count"] == pq.read_table(landed).num_rows == 4

    run(body())
    assert not (tmp_path / f"{schema}.slow.parquet").exists()


def test_cancelled_fetch_stops_the_query_on_the_server(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    """A query that works before its first row sends nothing: only a cancel request stops it, not a close."""
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT length(pg_sleep(120)::text) AS z")
                     .format(sql.Identifier(schema, "sleeps_first")))

    async def body() -> None:
        async with pg_connector(postgres_server, [schema], pool_max_size=1) as pg:
            export = asyncio.ensure_future(pg.fetch_data(f"{schema}.sleeps_first", str(tmp_path)))
            assert await copying_backends(postgres_server, until_any=True, seconds=10), "the query never started"
            export.cancel()
            with pytest.raises(asyncio.CancelledError):
                await export
            assert await copying_backends(postgres_server, until_any=False, seconds=3) == []

    run(body())
    assert temporaries(tmp_path) == []


# --- 19: statement timeout ---------------------------------------------------------------


def test_statement_timeout_is_a_clear_error(postgres_server: PostgresServer, schema: str, tmp_path: Path) -> None:
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT length(pg_sleep(5)::text) AS z")
                     .format(sql.Identifier(schema, "sleepy")))
    connector = pg_connector(postgres_server, [schema], statement_timeout=0.5)
    error, seconds = timed(fetch_once(connector, f"{schema}.sleepy", tmp_path))
    assert isinstance(error, DataFetchError) and "statement_timeout (0.5 s) reached" in str(error)
    assert seconds < 3 and temporaries(tmp_path) == []


# --- 20: SQL in names, writes refused ------------------------------------------------------

INJECTION = 'x"; DROP TABLE victim; --'


def test_injection_shaped_names_are_quoted_and_nothing_else_runs(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (a int)").format(sql.Identifier(schema, "victim")))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 1 AS a").format(sql.Identifier(schema, INJECTION)))
    identifier = f'{schema}."{INJECTION.replace(chr(34), chr(34) * 2)}"'

    async def body() -> tuple[list[str], str, dict[str, Any]]:
        async with pg_connector(postgres_server, [schema]) as pg:
            listed = [item.path for item in await pg.list_items()]
            path = await pg.fetch_data(identifier, str(tmp_path))
            return listed, path, await pg.get_metadata(identifier, exact_count=True)

    listed, path, metadata = run(body())
    assert identifier in listed and metadata["row_count"] == 1
    assert Path(path).name == f"{schema}.{INJECTION}.csv" and Path(path).read_bytes() == b"a\n1\n"
    error, _ = timed(fetch_once(pg_connector(postgres_server, [schema]), f'{schema}.x"; DROP TABLE victim; --',
                                tmp_path))
    assert isinstance(error, DataSourceError)
    with admin(postgres_server) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "victim"))).fetchone()


@pytest.mark.parametrize("query, message", [
    ("INSERT INTO {victim} VALUES (1) RETURNING *", "read-only"),
    ("DELETE FROM {victim}", "returns no rows"),
    ("SELECT 1; DROP TABLE {victim}", "more than one statement"),
    ("SELECT 1) TO STDOUT; DROP TABLE {victim}; COPY (SELECT 1", "syntax error"),
])
def test_fetch_query_refuses_writes_and_second_statements(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, query: str, message: str
) -> None:
    victim = sql.Identifier(schema, "victim")
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 7 AS a").format(victim))
    text = query.replace("{victim}", victim.as_string())

    async def body() -> str:  # a superuser, allowed: the read-only transaction still refuses the write
        async with pg_connector(postgres_server, [schema], allow_privileged_queries=True) as pg:
            return await pg.fetch_query(text, str(tmp_path), "q")

    with pytest.raises(DataFetchError, match=message):
        run(body())
    with admin(postgres_server) as conn:
        assert conn.execute(sql.SQL("SELECT a FROM {}").format(victim)).fetchall() == [(7,)]
    assert temporaries(tmp_path) == [] and not (tmp_path / "q.csv").exists()


# --- 21: disk full -----------------------------------------------------------------------


def small_disk(tmp_path: Path) -> contextlib.AbstractContextManager[Path]:
    """A real 1 MiB tmpfs, so ENOSPC is the kernel's; no mount (not root) fails the test, never a fake disk."""
    return tmpfs(tmp_path / "small")


@pytest.mark.root
def test_disk_full_is_a_clear_error_and_keeps_the_previous_file(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    with small_disk(tmp_path) as workspace:
        first = run(fetch_once(pg_connector(postgres_server, [schema]), f"{schema}.people", workspace))
        with admin(postgres_server) as conn:
            conn.execute(sql.SQL("INSERT INTO {} SELECT g, repeat('y', 500) FROM generate_series(10, 5000) g")
                         .format(sql.Identifier(schema, "people")))
        error, _ = timed(fetch_once(pg_connector(postgres_server, [schema]), f"{schema}.people", workspace))
        assert isinstance(error, WorkspaceError) and "disk full" in str(error)
        assert Path(first).read_bytes() == TABLES["people"][2]
        assert temporaries(workspace) == []


# --- 22: killed process, rerun -------------------------------------------------------------

FETCH_SCRIPT = """
import asyncio, json, sys
from connectors import DataSourceConfig
from connectors.postgresql import PostgreSQLConnector
config, identifier, workspace = json.loads(sys.argv[1])
async def main():
    async with PostgreSQLConnector(DataSourceConfig(**config)) as pg:
        await pg.fetch_data(identifier, workspace)
asyncio.run(main())
"""


def test_killed_process_leaves_a_temporary_that_the_rerun_sweeps(
    postgres_server: PostgresServer, schema: str, tmp_path: Path
) -> None:
    config = {"id": "pg-test", "type": "postgresql", "name": "PG",
              "config": {"host": postgres_server.host, "port": postgres_server.port, "user": postgres_server.user,
                         "dbname": postgres_server.dbname, "password": {"env": "DA_TEST_PG_PASSWORD"},
                         "schemas": [schema]}}
    identifier = f"{schema}.slow"
    argument = json.dumps([config, identifier, str(tmp_path)])
    child = subprocess.Popen([sys.executable, "-c", FETCH_SCRIPT, argument], cwd=REPO,
                             env={**os.environ, "DA_TEST_PG_PASSWORD": postgres_server.password})
    deadline = time.monotonic() + 30
    while not temporaries(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert len(temporaries(tmp_path)) == 1, "the child never started writing"
    path = run(fetch_once(pg_connector(postgres_server, [schema]), identifier, tmp_path))
    expected = b"g,pad,z\n" + b"".join(f"{g},{'x' * 100},0\n".encode() for g in range(1, 301))
    assert Path(path).read_bytes() == expected
    assert temporaries(tmp_path) == []
    assert len(list((tmp_path / ".lineage").rglob("*.csv.json"))) == 1


# --- 23: two connectors fetch one table at once ------------------------------------------------

RACE_ROUNDS = 100


@pytest.fixture
def other_database(postgres_server: PostgresServer, schema: str) -> Iterator[str]:
    """A second database holding ``<schema>.people`` with other rows: a second version of that table."""
    name = f"race_{uuid.uuid4().hex[:10]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(postgres_server.dsn, dbname=name, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("CREATE TABLE {} AS SELECT g AS id, 'other ' || g AS name FROM "
                                 "generate_series(1, 50) AS g").format(sql.Identifier(schema, "people")))
        yield name
    finally:
        with admin(postgres_server) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_two_connectors_racing_two_versions_of_one_table_leave_a_file_and_record_that_agree(
    postgres_server: PostgresServer, schema: str, other_database: str, tmp_path: Path
) -> None:
    # one source id, two databases: each connector lands its own version of <schema>.people at the
    # same path (racers that land the same bytes cannot show a missing lock: any record fits any file)
    identifier = f"{schema}.people"
    versions = [TABLES["people"][2], Path(run(fetch_once(
        pg_connector(postgres_server, [schema], dbname=other_database), identifier, tmp_path / "b"))).read_bytes()]
    assert versions[0] != versions[1]

    async def race() -> list[tuple[int, str, str, str]]:
        first = pg_connector(postgres_server, [schema])
        second = pg_connector(postgres_server, [schema], dbname=other_database)
        seen = []
        async with first, second:
            for _ in range(RACE_ROUNDS):
                paths = await asyncio.gather(*(c.fetch_data(identifier, str(tmp_path / "ws"))
                                               for c in (first, second, first, second)))
                assert len(set(paths)) == 1
                data, record = Path(paths[0]).read_bytes(), read_provenance(paths[0])
                version = versions.index(data)  # one version, whole
                seen.append((version, record["source_uri"], hashlib.sha256(data).hexdigest(), record["sha256"]))
        return seen

    seen = run(race())
    databases = [postgres_server.dbname, other_database]
    disagree = [(n, v) for n, (v, uri, sha, recorded) in enumerate(seen)
                if sha != recorded or f"/{databases[v]}/" not in uri]
    assert disagree == [], f"{len(disagree)} of {RACE_ROUNDS} rounds: a file with the record of the other version"
    assert {version for version, *_ in seen} == {0, 1}, "one version always won: the race proves little"
    assert temporaries(tmp_path / "ws") == []


# --- version: the change signal -----------------------------------------------------------------


def test_version_changes_with_the_content_and_only_then(postgres_server: PostgresServer, schema: str) -> None:
    people = sql.Identifier(schema, "people")

    async def versions() -> dict[str, str]:
        async with pg_connector(postgres_server, [schema]) as pg:
            listed = {item.name: item.metadata["version"] for item in await pg.list_items()}
        assert listed.pop("slow").startswith("view-volatile-")  # pg_sleep: not IMMUTABLE, fetched every time
        return listed

    def change(statement: sql.Composable) -> None:
        with admin(postgres_server) as conn:  # a session that ends publishes its statistics at once
            conn.execute(statement)

    before = run(versions())
    assert run(versions()) == before
    run(fetch_once(pg_connector(postgres_server, [schema]), f"{schema}.people", Path("/tmp") / uuid.uuid4().hex))
    assert run(versions()) == before, "reading must not change the version"
    for statement, view_data_changes in (
        (sql.SQL("INSERT INTO {} VALUES (50, 'new')").format(people), True),
        (sql.SQL("UPDATE {} SET name = 'x' WHERE id = 50").format(people), True),
        (sql.SQL("DELETE FROM {} WHERE id = 50").format(people), True),
        (sql.SQL("TRUNCATE {}").format(people), True),
        (sql.SQL("ALTER TABLE {} ADD COLUMN extra int").format(people), False),  # the view shows id, name
    ):
        change(statement)
        after = run(versions())
        assert after["people"] != before["people"], statement.as_string()
        assert (after["people_view"] != before["people_view"]) is view_data_changes, statement.as_string()
        assert after["empty"] == before["empty"]
        before = after


# --- 25, 26, 27: configuration errors, masking, a canary everywhere --------------------------------


@pytest.mark.parametrize("config, field", [
    ({"host": "h", "prot": 5432}, "config.prot"),
    ({"host": "h", "port": "not-a-port"}, "config.port"),
    ({"host": "h", "format": "xlsx"}, "config.format"),
    ({"host": "h", "pool_min_size": 9, "pool_max_size": 2}, "pool_min_size"),
    ({"port": 5432}, "dsn"),
])
def test_malformed_config_names_the_source_and_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DataSourceConfig(id="pg-bad", type="postgresql", name="PG", config={**config, "password": CANARY})
    assert "pg-bad" in str(caught.value) and field in str(caught.value)
    assert CANARY not in str(caught.value)


def test_malformed_dsn_is_a_configuration_error_without_the_dsn() -> None:
    connector = PostgreSQLConnector(raw_config(dsn=f"host=127.0.0.1 password={CANARY} bogus_option=1"))
    error, _ = timed(connector.connect())
    assert isinstance(error, ConfigurationError) and "invalid connection option" in str(error)
    assert CANARY not in str(error)


async def exercise(pg: PostgreSQLConnector, workspace: Path, server: PostgresServer, seen: list[str]) -> None:
    """Successes and failures of every kind; every text they produce goes into ``seen``."""
    async with pg:
        seen.append(pickle.dumps(pg).decode("latin-1"))
        seen.append(repr(await pg.list_items()))
        seen.append(repr(await pg.get_metadata("public.t", exact_count=True)))
        await pg.fetch_data("public.t", str(workspace))
        for bad in ("public.nope", "nope.t"):
            with pytest.raises(DataSourceError) as caught:
                await pg.fetch_data(bad, str(workspace))
            seen.extend([str(caught.value), repr(caught.value)])
        with pytest.raises(DataSourceError) as caught:
            await pg.fetch_query("DELETE FROM t RETURNING *", str(workspace), "w")
        seen.append(str(caught.value))
        server.stop()
        with pytest.raises(ConnectionError) as caught:
            await pg.list_items()
        seen.append(str(caught.value))
        server.start()


def test_canary_password_appears_nowhere(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with start_postgres(password=CANARY) as server:
        with admin(server) as conn:
            conn.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1)")
            conn.execute("CHECKPOINT")  # the harness runs with synchronous_commit=off; stop() must not lose t
        by_dsn = DataSourceConfig(id="pg-canary", type="postgresql", name="PG", config={
            "dsn": f"postgresql://{server.user}:{CANARY}@{server.host}:{server.port}/{server.dbname}",
            "statement_timeout": 5})
        by_fields = pg_config(server, ["public"])
        for config in (by_dsn, by_fields):
            connector = PostgreSQLConnector(config)
            seen += [repr(config), str(config), repr(connector), str(connector)]
            seen.append(pickle.dumps(config).decode("latin-1"))

            run(exercise(connector, tmp_path / config.id, server, seen))
        wrong = DataSourceConfig(id="pg-wrong", type="postgresql", name="PG",
                                 config={"dsn": f"postgresql://u:{CANARY}x@{server.host}:{server.port}/d"})
        error, _ = timed(PostgreSQLConnector(wrong).connect())
        assert isinstance(error, AuthenticationError)
        seen += [str(error), repr(error)]
    seen += [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    seen.append(caplog.text)
    assert all(CANARY not in text for text in seen)
    assert any("postgresql://" in text for text in seen)  # the records were read
