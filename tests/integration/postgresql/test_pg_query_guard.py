"""What ``fetch_query`` can do, and what it leaves behind in a pooled session.

13.4: a read-only transaction does not make functions harmless. The
guarantee: every read transaction is rolled back (whatever a function wrote in
it is undone), and a role that can act outside the database is refused unless
the source sets ``allow_privileged_queries``. 13.5: the session is reset
(``DISCARD ALL``) before a connection goes back to the pool.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from connectors import ConfigurationError, DataSourceError
from connectors.postgresql import PostgreSQLConnector
from tests.conformance import run, temporaries
from tests.harness import PostgresServer
from tests.helpers.postgresql import TABLES, admin, create_reader, drop_reader, pg_connector

pytestmark = pytest.mark.integration

MARK = Path("/tmp") / f"da-guard-{uuid.uuid4().hex}"  # a file a shell command or lo_export would create


async def query(pg: PostgreSQLConnector, text: str, workspace: Path, name: str = "q") -> str | DataSourceError:
    """The landed CSV's text, or the error fetch_query raised."""
    try:
        return Path(await pg.fetch_query(text, str(workspace), name)).read_text()
    except DataSourceError as exc:
        return exc


def scalar(server: PostgresServer, text: str, *params: Any) -> Any:
    with admin(server) as conn:
        row = conn.execute(text, params or None).fetchone()
        return row[0] if row else None


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    from tests.helpers.postgresql import create_schema, drop_schema

    name = create_schema(postgres_server, TABLES)
    yield name
    drop_schema(postgres_server, name)


@pytest.fixture
def role(postgres_server: PostgresServer, schema: str) -> Iterator[dict[str, str]]:
    reader = create_reader(postgres_server, schema)
    yield reader
    drop_reader(postgres_server, reader)


def grant(server: PostgresServer, statement: str, role: dict[str, str]) -> None:
    with admin(server) as conn:
        conn.execute(sql.SQL(statement).format(role=sql.Identifier(role["user"])))


# --- the guard: roles that can act outside the database are refused --------------------------------

PRIVILEGES = {
    "superuser": "ALTER ROLE {role} SUPERUSER",
    "createrole": "ALTER ROLE {role} CREATEROLE",
    "replication": "ALTER ROLE {role} REPLICATION",
    "server programs": "GRANT pg_execute_server_program TO {role}",
    "server files (write)": "GRANT pg_write_server_files TO {role}",
    "server files (read)": "GRANT pg_read_server_files TO {role}",
    "signal sessions": "GRANT pg_signal_backend TO {role}",
    "write all data": "GRANT pg_write_all_data TO {role}",
    "checkpoint": "GRANT pg_checkpoint TO {role}",
    "reload": "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO {role}",
    "lo_export": "GRANT EXECUTE ON FUNCTION lo_export(oid, text) TO {role}",
    "pg_read_file": "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {role}",
    "stat reset": "GRANT EXECUTE ON FUNCTION pg_stat_reset() TO {role}",
    "switch wal": "GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {role}",
    "table write": "GRANT INSERT ON ALL TABLES IN SCHEMA public TO {role}",
    "table truncate (not inherited, via SET ROLE)": "CREATE ROLE {role}_w NOINHERIT; "
    "GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO {role}_w; GRANT {role}_w TO {role}",
    "member of a superuser role, not inherited": "CREATE ROLE {role}_s SUPERUSER; GRANT {role}_s TO {role}",
    "database owner": "ALTER DATABASE postgres OWNER TO {role}",
    "security definer of a superuser": "CREATE FUNCTION public.{role}_sd() RETURNS int SECURITY DEFINER "
    "LANGUAGE sql AS 'SELECT 1'; GRANT EXECUTE ON FUNCTION public.{role}_sd() TO {role}",
    "dblink": "CREATE EXTENSION dblink SCHEMA public",
}
# what the refused query would do if it ran: a shell command (with the privileges to run one)
TOUCH = Path("/tmp") / f"da-guard-touch-{uuid.uuid4().hex}"
TOUCH_FUNCTION = ("CREATE OR REPLACE FUNCTION public.guard_touch() RETURNS int LANGUAGE plpgsql AS "
                  "$$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {}'''; RETURN 1; END $$")


@pytest.fixture
def public_table(postgres_server: PostgresServer) -> Iterator[None]:
    with admin(postgres_server) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.guard_target (a int)")
        conn.execute(sql.SQL(TOUCH_FUNCTION).format(sql.SQL(str(TOUCH))))
    yield


@pytest.mark.parametrize("privilege", list(PRIVILEGES))
def test_a_role_that_can_act_outside_the_database_is_refused(
    postgres_server: PostgresServer, schema: str, role: dict[str, str], public_table: None, tmp_path: Path,
    privilege: str,
) -> None:
    statement = PRIVILEGES[privilege].replace("{role}_sd", "{role_sd}").replace("{role}_w", "{role_w}")
    statement = statement.replace("{role}_s", "{role_s}")
    extra = {name: sql.Identifier(role["user"] + suffix) for name, suffix in
             (("role_w", "_w"), ("role_s", "_s"), ("role_sd", "_sd"))}
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL(statement).format(role=sql.Identifier(role["user"]), **extra))

    async def body() -> tuple[str | DataSourceError, str | DataSourceError]:
        async with pg_connector(postgres_server, [schema], **role) as pg:
            refused = await query(pg, "SELECT public.guard_touch() AS one", tmp_path)
        async with pg_connector(postgres_server, [schema], allow_privileged_queries=True, **role) as pg:
            return refused, await query(pg, "SELECT 1 AS one", tmp_path / "allowed")

    try:
        refused, allowed = run(body())
    finally:
        with admin(postgres_server) as conn:
            conn.execute("ALTER DATABASE postgres OWNER TO postgres")
            for suffix in ("_w", "_s"):
                extra_role = sql.Identifier(role["user"] + suffix)
                if scalar(postgres_server, "SELECT count(*) FROM pg_roles WHERE rolname = %s", role["user"] + suffix):
                    conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(extra_role))
            conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier("public", role["user"] + "_sd")))
            conn.execute("DROP EXTENSION IF EXISTS dblink")
    assert isinstance(refused, ConfigurationError), privilege
    assert "fetch_query refused" in str(refused) and "allow_privileged_queries" in str(refused)
    assert allowed == "one\n1\n"
    assert not TOUCH.exists(), "the refused query ran"
    assert not (tmp_path / "q.csv").exists() and temporaries(tmp_path) == []


def test_the_harness_superuser_is_refused_and_a_least_privilege_role_is_not(
    postgres_server: PostgresServer, schema: str, role: dict[str, str], tmp_path: Path
) -> None:
    text = sql.SQL("SELECT id, name FROM {} ORDER BY id LIMIT 1").format(sql.Identifier(schema, "people")).as_string()

    async def body() -> tuple[str | DataSourceError, str | DataSourceError]:
        async with pg_connector(postgres_server, [schema]) as superuser:
            refused = await query(superuser, text, tmp_path)
        async with pg_connector(postgres_server, [schema], **role) as reader:
            return refused, await query(reader, text, tmp_path)

    refused, landed = run(body())
    assert isinstance(refused, ConfigurationError) and "is a superuser" in str(refused)
    assert landed == "id,name\n1,alice\n"


# --- what a least-privilege role's query cannot keep or do --------------------------------------------


@pytest.fixture
def objects(postgres_server: PostgresServer, schema: str, role: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A large object the role owns, one it may update, a sequence, and functions that try to get out."""
    who = sql.Identifier(role["user"])
    with admin(postgres_server) as conn:
        owned = conn.execute("SELECT lo_from_bytea(0, 'owned')").fetchone()[0]  # type: ignore[index]
        shared = conn.execute("SELECT lo_from_bytea(0, 'shared')").fetchone()[0]  # type: ignore[index]
        conn.execute(sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(sql.Literal(owned), who))
        conn.execute(sql.SQL("GRANT SELECT, UPDATE ON LARGE OBJECT {} TO {}").format(sql.Literal(shared), who))
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(schema, "seq")))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(sql.Identifier(schema, "seq"), who))
        conn.execute(sql.SQL(
            "CREATE FUNCTION {}() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
            "EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {}'''; RETURN 1; END $$").format(
            sql.Identifier(schema, "shell"), sql.SQL(str(MARK))))
        conn.execute(sql.SQL("CREATE TABLE {} (a int)").format(sql.Identifier(schema, "victim")))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sql.Identifier(schema), who))
    yield {"owned": owned, "shared": shared}
    with admin(postgres_server) as conn:
        for oid in (owned, shared):
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT lo_unlink(%s)", [oid])
        conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE lomowner = %s::regrole",
                     [role["user"]])


WRITES = [
    # (query, what must hold afterwards, checked with the admin connection)
    ("SELECT lo_from_bytea(0, 'new') AS o",
     "SELECT count(*) = 2 FROM pg_largeobject_metadata WHERE oid IN ({owned}, {shared}) "
     "AND NOT EXISTS (SELECT FROM pg_largeobject_metadata WHERE lomowner = '{user}'::regrole AND oid <> {owned})"),
    ("SELECT lo_create(0) AS o",
     "SELECT NOT EXISTS (SELECT FROM pg_largeobject_metadata WHERE lomowner = '{user}'::regrole AND oid <> {owned})"),
    ("SELECT lo_put({shared}, 0, 'XXXXXX') AS o", "SELECT lo_get({shared}) = 'shared'::bytea"),
    ("SELECT lo_put({owned}, 0, 'XXXXX') AS o", "SELECT lo_get({owned}) = 'owned'::bytea"),
    ("SELECT lo_unlink({owned}) AS o", "SELECT EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = {owned})"),
    ("SELECT lo_truncate(lo_open({owned}, 131072), 0) AS o", "SELECT lo_get({owned}) = 'owned'::bytea"),
    ("SELECT lowrite(lo_open({shared}, 131072), 'ZZ') AS o", "SELECT lo_get({shared}) = 'shared'::bytea"),
    ("SELECT lo_export({owned}, '{mark}') AS o", "SELECT true"),
    ("SELECT lo_import('/etc/hostname') AS o",
     "SELECT NOT EXISTS (SELECT FROM pg_largeobject_metadata WHERE lomowner = '{user}'::regrole AND oid <> {owned})"),
    ("SELECT {schema}.shell() AS o", "SELECT true"),
    ("SELECT pg_reload_conf() AS o", "SELECT true"),
    ("SELECT pg_terminate_backend(pid) AS o FROM pg_stat_activity WHERE usename = 'postgres' "
     "AND pid <> pg_backend_pid()", "SELECT true"),
    ("SELECT pg_cancel_backend(pid) AS o FROM pg_stat_activity WHERE usename = 'postgres'", "SELECT true"),
    ("SELECT pg_switch_wal() AS o", "SELECT true"),
    ("SELECT pg_stat_reset() AS o", "SELECT true"),
    ("SELECT pg_create_restore_point('x') AS o", "SELECT true"),
    ("SELECT pg_rotate_logfile() AS o", "SELECT true"),
    ("SELECT nextval('{schema}.seq') AS o", "SELECT NOT is_called FROM {schema}.seq"),
    ("SELECT setval('{schema}.seq', 99) AS o", "SELECT last_value = 1 FROM {schema}.seq"),
    ("SELECT pg_notify('guard', 'x') AS o", "SELECT true"),
    ("SELECT pg_read_file('/etc/hostname') AS o", "SELECT true"),
    ("SELECT txid_current() AS o", "SELECT true"),
    ("WITH w AS (INSERT INTO {schema}.victim VALUES (1) RETURNING a) SELECT a AS o FROM w",
     "SELECT count(*) = 0 FROM {schema}.victim"),
    ("SELECT pg_advisory_xact_lock(7) AS o", "SELECT pg_try_advisory_lock(7)"),
]


def test_what_a_query_writes_is_undone_and_what_reaches_outside_is_refused(
    postgres_server: PostgresServer, schema: str, role: dict[str, str], objects: dict[str, Any], tmp_path: Path
) -> None:
    values = {**objects, "schema": sql.Identifier(schema).as_string(), "user": role["user"], "mark": str(MARK)}
    admin_pid = scalar(postgres_server, "SELECT 1")  # warm up; the listener below must survive
    listener = psycopg.connect(postgres_server.dsn, autocommit=True)
    listener.execute("LISTEN guard")
    admin_pid = listener.info.backend_pid

    async def body() -> list[tuple[str, str | DataSourceError]]:
        async with pg_connector(postgres_server, [schema], pool_max_size=1, **role) as pg:
            return [(text, await query(pg, text.format(**values), tmp_path, f"w{index}"))
                    for index, (text, _) in enumerate(WRITES)]

    try:
        outcomes = run(body())
        assert listener.execute("SELECT pg_backend_pid()").fetchone() == (admin_pid,), "the admin session was killed"
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    finally:
        listener.close()
    for (text, check), (_, outcome) in zip(WRITES, outcomes, strict=True):
        assert scalar(postgres_server, check.format(**values)) is True, (text, outcome)
    assert not MARK.exists()
    # the harmless ones still land: the guarantee does not cost ordinary queries
    assert isinstance(dict(outcomes)["SELECT txid_current() AS o"], str)


# --- the session is reset before the next borrower ---------------------------------------------

# the advisory locks this session holds, seen by the next borrower (the same session: the pool holds one)
HELD_LOCKS = ("SELECT count(*) AS v FROM pg_catalog.pg_locks "
              "WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()")
POISONS = [
    ("SELECT set_config('statement_timeout', '1', false) AS x", None),
    ("SELECT set_config('lock_timeout', '1', false) AS x", None),
    ("SELECT set_config('search_path', 'pg_catalog', false) AS x", "SELECT current_setting('search_path') AS v"),
    ("SELECT set_config('role', '{other}', false) AS x", "SELECT current_user AS v"),
    ("SELECT set_config('TimeZone', 'Asia/Tokyo', false) AS x", "SELECT current_setting('TimeZone') AS v"),
    ("SELECT set_config('work_mem', '64kB', false) AS x", "SELECT current_setting('work_mem') AS v"),
    ("SELECT set_config('default_transaction_read_only', 'off', false) AS x",
     "SELECT current_setting('default_transaction_read_only') AS v"),
    ("SELECT set_config('da.custom', 'leaked', false) AS x",
     "SELECT coalesce(current_setting('da.custom', true), '') AS v"),
    # a session lock outlives the rollback: only the reset lets it go before the next borrower
    ("SELECT pg_advisory_lock(4242) AS x", HELD_LOCKS),
    ("SELECT pg_advisory_lock_shared(4243) AS x", HELD_LOCKS),
    ("SELECT set_config('statement_timeout', '1', false), pg_sleep(0.1) AS x", None),
]


def test_session_state_set_by_a_query_does_not_reach_the_next_borrower(
    postgres_server: PostgresServer, schema: str, role: dict[str, str], tmp_path: Path
) -> None:
    other = f"{role['user']}_other"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE ROLE {0}; GRANT {0} TO {1}").format(sql.Identifier(other),
                                                                           sql.Identifier(role["user"])))

    async def observe(pg: PostgreSQLConnector, probe: str | None, index: int) -> tuple[list[str], Any]:
        landed = [Path(await pg.fetch_data(f"{schema}.people", str(tmp_path / f"{index}-{n}"))).read_bytes()
                  for n in range(3)]
        seen = await query(pg, probe, tmp_path / f"{index}-probe") if probe else None
        return [b.decode() for b in landed], seen

    async def body() -> list[tuple[list[str], Any, Any]]:
        results = []
        async with pg_connector(postgres_server, [schema], pool_max_size=1, **role) as pg:
            baseline = {probe: await query(pg, probe, tmp_path / "baseline") for _, probe in POISONS if probe}
            for index, (poison, probe) in enumerate(POISONS):
                poisoned = await query(pg, poison.format(other=other), tmp_path / f"{index}-poison")
                if probe == HELD_LOCKS:  # the lock was taken: the probe below can tell a reset from none
                    assert isinstance(poisoned, str), poisoned
                landed, seen = await observe(pg, probe, index)
                results.append((landed, seen, baseline.get(probe) if probe else None))
        return results

    try:
        results = run(body())
    finally:
        with admin(postgres_server) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))
    for (poison, _), (landed, seen, expected) in zip(POISONS, results, strict=True):
        assert landed == [TABLES["people"][2].decode()] * 3, poison
        assert seen == expected, poison


# what a borrower can leave in a session that no rollback undoes: settings outside a transaction,
# a committed set_config, a prepared statement, a temporary table, a LISTEN, a session lock
LEFTOVERS = [
    "SET work_mem = '64kB'",
    "SELECT set_config('da.custom', 'leaked', false)",
    "PREPARE da_leftover AS SELECT 1",
    "CREATE TEMP TABLE da_leftover (a int)",
    "LISTEN da_leftover",
    "SELECT pg_advisory_lock(4244)",
]
SESSION_STATE = """
SELECT current_setting('work_mem'), coalesce(current_setting('da.custom', true), ''),
       (SELECT count(*) FROM pg_catalog.pg_prepared_statements),
       pg_catalog.to_regclass('pg_temp.da_leftover') IS NOT NULL,
       (SELECT count(*) FROM pg_catalog.pg_listening_channels()),
       (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())
"""


def test_session_state_left_outside_a_transaction_is_reset_before_the_next_borrower(
    postgres_server: PostgresServer, schema: str, role: dict[str, str]
) -> None:
    """The pool's reset itself, on the connector's own pool: the state is set, and probed, while it is alive."""

    async def body() -> tuple[Any, Any, Any, int]:
        async with pg_connector(postgres_server, [schema], pool_max_size=1, **role) as pg:
            pool = await pg._live_pool()
            async with pool.connection() as conn:
                clean = await (await conn.execute(SESSION_STATE)).fetchone()
                pid = conn.info.backend_pid
                await conn.rollback()
                await conn.set_autocommit(True)
                for statement in LEFTOVERS:
                    await conn.execute(statement)
                left = await (await conn.execute(SESSION_STATE)).fetchone()
            async with pool.connection() as conn:  # the next borrower: the same session (one in the pool)
                seen = await (await conn.execute(SESSION_STATE)).fetchone()
                same = conn.info.backend_pid
        return clean, left, seen, int(pid == same)

    clean, left, seen, same_session = run(body())
    assert left == ("64kB", "leaked", 1, True, 1, 1) and left != clean  # each leftover is there to be reset
    assert same_session == 1  # so what the next borrower sees tells a reset from a fresh session
    assert seen == clean
