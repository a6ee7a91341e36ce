"""What a pooled PostgreSQL session may carry, do and say: setup, reset, the query guard, DSN errors.

Reads run in READ ONLY transactions that are rolled back; a connection is reset
(``DISCARD ALL``) before it goes back to the pool; ``fetch_query`` refuses a login role that can
act outside the transaction; DSN errors never quote the DSN. Why each: the "Sessions" section of
``docs/design/postgresql.md``.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

# The package's public surface is its connector; these are the names other packages and the docs use.
__all__ = ["dsn_problem", "reset_session"]

# One round trip: pin the transaction's timeouts and text formats, and take the snapshot.
BEGIN_READ = sql.SQL(
    "SELECT set_config('statement_timeout', COALESCE(%s, current_setting('statement_timeout')), true),"
    " set_config('lock_timeout', COALESCE(%s, current_setting('lock_timeout')), true),"
    " set_config('search_path', COALESCE(%s, current_setting('search_path')), true),"
    " set_config('jit', COALESCE(%s, current_setting('jit')), true),"
    " set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),"
    " set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true),"
    " set_config('bytea_output', 'hex', true), pg_current_snapshot()::text,"
    " extract(epoch from statement_timestamp())::int8"
)
# table reads resolve every function and operator in the catalog, never in a schema a user controls
PINNED_SEARCH_PATH = "pg_catalog, pg_temp"
# and run without JIT: the catalog queries' cost estimates (recursive view dependencies) cross
# jit_above_cost, and compiling them took seconds for a listing that runs in milliseconds
PINNED_JIT = "off"

# predefined roles whose members act outside the database (files, programs, other sessions, all data)
_OUTSIDE_ROLES = ("pg_execute_server_program", "pg_write_server_files", "pg_read_server_files",
                  "pg_signal_backend", "pg_write_all_data", "pg_checkpoint", "pg_database_owner")
# extension functions that open connections elsewhere and commit there
_REMOTE_FUNCTIONS = ("dblink_exec", "dblink", "dblink_connect", "dblink_connect_u", "dblink_send_query")

PRIVILEGED_ROLE = sql.SQL("""
WITH member AS (
    SELECT r.oid, r.rolname, r.rolsuper, r.rolcreaterole, r.rolreplication
    FROM pg_catalog.pg_roles r WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
)
SELECT reason FROM (
    SELECT 1, pg_catalog.format('role %%I is a superuser', rolname) FROM member WHERE rolsuper
    UNION ALL
    SELECT 2, pg_catalog.format('role %%I may create roles', rolname) FROM member WHERE rolcreaterole
    UNION ALL
    SELECT 3, pg_catalog.format('role %%I may replicate', rolname) FROM member WHERE rolreplication
    UNION ALL
    SELECT 4, pg_catalog.format('the login role is a member of %%I', rolname) FROM member
    WHERE rolname = ANY(%s)
    UNION ALL
    SELECT 5, pg_catalog.format('role %%I may run %%s', m.rolname, p.oid::pg_catalog.regprocedure)
    FROM member m, pg_catalog.pg_proc p
    WHERE ((p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.proacl IS NOT NULL
            AND NOT EXISTS (SELECT FROM pg_catalog.aclexplode(p.proacl) a
                            WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
           OR p.proname = ANY(%s))
      AND pg_catalog.has_function_privilege(m.oid, p.oid, 'EXECUTE')
    UNION ALL
    SELECT 6, pg_catalog.format('role %%I may write to %%s', m.rolname, c.oid::pg_catalog.regclass)
    FROM member m, pg_catalog.pg_class c
    WHERE c.relkind IN ('r', 'p', 'v', 'f')
      AND c.relnamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace,
                                 'information_schema'::pg_catalog.regnamespace)
      AND c.relpersistence <> 't'
      AND pg_catalog.has_table_privilege(m.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
    UNION ALL
    SELECT 7, pg_catalog.format('role %%I may run %%s, which runs as role %%I', m.rolname,
                                p.oid::pg_catalog.regprocedure, o.rolname)
    FROM member m, pg_catalog.pg_proc p JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
    WHERE p.prosecdef AND pg_catalog.has_function_privilege(m.oid, p.oid, 'EXECUTE')
      AND (o.rolsuper OR o.rolcreaterole OR o.rolreplication
           OR EXISTS (SELECT FROM pg_catalog.pg_roles x
                      WHERE x.rolname = ANY(%s) AND pg_catalog.pg_has_role(o.oid, x.oid, 'MEMBER')))
) reasons(rank, reason)
ORDER BY rank LIMIT 3
""")


def privileged_role_params() -> list[Any]:
    """The parameters of :data:`PRIVILEGED_ROLE`."""
    return [list(_OUTSIDE_ROLES), list(_REMOTE_FUNCTIONS), list(_OUTSIDE_ROLES)]


async def reset_session(conn: psycopg.AsyncConnection[Any]) -> None:
    """Forget everything a borrower changed in the session (the pool's ``reset`` callback).

    Args:
        conn: The connection going back to the pool.
    """
    await conn.set_autocommit(True)  # DISCARD ALL cannot run inside a transaction block
    try:
        await conn.execute("DISCARD ALL")
    finally:
        await conn.set_autocommit(False)


# --- DSN errors that quote nothing ---------------------------------------------

_QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')
_KEYWORDS: frozenset[str] | None = None


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with a DSN, quoting nothing of it.

    Args:
        dsn: The configured connection string (a secret).

    Returns:
        None when libpq can parse it; else libpq's message with every quoted fragment removed.
    """
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        return unquoted(str(exc))
    return None


def unquoted(message: str, keep: frozenset[str] = frozenset()) -> str:
    """The first line of a libpq message with quoted values replaced by ``"…"``.

    libpq quotes the fragment it could not parse (``forbidden value %00 in
    percent-encoded value: "<password>%00"``), the option it does not know, or
    the host it could not resolve; any of them can hold the password when the
    DSN is malformed. libpq's own option names, and the values in ``keep``,
    are left in place.
    """
    allowed = keep | _libpq_keywords()

    def replace(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0)[1:-1] in allowed else '"…"'

    first = message.strip().splitlines()[0] if message.strip() else "not a valid connection string"
    return _QUOTED.sub(replace, first)


def _libpq_keywords() -> frozenset[str]:
    global _KEYWORDS
    if _KEYWORDS is None:
        _KEYWORDS = frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())
    return _KEYWORDS
