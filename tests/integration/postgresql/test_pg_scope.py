"""The configured ``schemas`` are a boundary for every operation, not a listing filter.

The connector logs in as the harness's superuser, so nothing here is stopped
by privileges: only the scope can refuse. Out of scope reads exactly like
missing (same error type, same message shape), so the scope never reveals
what exists outside it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from connectors import NotFoundError
from connectors.postgresql import PostgreSQLConnector
from tests.conformance import run, temporaries
from tests.harness import PostgresServer
from tests.helpers.postgresql import TABLES, admin, create_schema, drop_schema, pg_config, pg_connector

pytestmark = pytest.mark.integration

CANARY = "SCOPECANARY-5b1e"


@pytest.fixture
def scoped(postgres_server: PostgresServer) -> Iterator[tuple[str, str]]:
    """(the source's schema, another schema) each with a table ``secret``; only the other's holds the canary."""
    schema, other = create_schema(postgres_server, TABLES), f"other_{uuid.uuid4().hex[:8]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT {} AS v").format(sql.Identifier(other, "secret"),
                                                                        sql.Literal(CANARY)))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 'in scope' AS v").format(sql.Identifier(schema, "secret")))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT {} AS v").format(
            sql.Identifier(schema, "pg_catalog.pg_authid"), sql.Literal("a dotted name, in scope")))
    yield schema, other
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(other)))
    drop_schema(postgres_server, schema)


def out_of_scope(schema: str, other: str) -> list[str]:
    """Identifiers of things that exist but lie outside ``[schema]``."""
    return [
        "pg_catalog.pg_authid", "PG_CATALOG.PG_AUTHID", '"pg_catalog"."pg_authid"', "pg_catalog.pg_class",
        "pg_catalog.pg_shadow", "pg_catalog.pg_user_mappings", "pg_catalog.pg_stat_activity",
        "information_schema.tables", "information_schema.role_table_grants", "pg_toast.pg_toast_1260",
        f"{other}.secret", f'"{other}".secret', f'"{other}"."secret"', f"{other.upper()}.SECRET",
        "public.pg_authid", '"public"."pg_class"',
    ]


def missing_message(error: BaseException, identifier: str) -> str:
    """The message with the asked-for names cut out: equal for missing and out-of-scope items."""
    text = str(error).replace(repr(identifier), "<asked>")
    return re.sub(r"no table or view \S+ in this source", "no table or view <name> in this source", text)


async def every_operation(pg: PostgreSQLConnector, identifier: str, workspace: Path) -> list[BaseException]:
    errors: list[BaseException] = []
    for operation in (lambda: pg.fetch_data(identifier, str(workspace)), lambda: pg.get_metadata(identifier),
                      lambda: pg.get_metadata(identifier, exact_count=True)):
        try:
            await operation()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)
        else:
            errors.append(AssertionError(f"{identifier} was read"))
    return errors


def test_every_operation_refuses_what_lies_outside_the_schemas_like_a_missing_table(
    postgres_server: PostgresServer, scoped: tuple[str, str], tmp_path: Path
) -> None:
    schema, other = scoped
    identifiers = out_of_scope(schema, other)

    async def body() -> tuple[list[BaseException], dict[str, list[BaseException]]]:
        async with pg_connector(postgres_server, [schema]) as pg:
            missing = await every_operation(pg, f"{schema}.no_such_table", tmp_path)
            return missing, {i: await every_operation(pg, i, tmp_path) for i in identifiers}

    missing, refused = run(body())
    expected = [missing_message(e, f"{schema}.no_such_table") for e in missing]
    assert all(isinstance(e, NotFoundError) for e in missing)
    for identifier, errors in refused.items():
        assert all(isinstance(e, NotFoundError) for e in errors), (identifier, errors)
        assert [missing_message(e, identifier) for e in errors] == expected, identifier
    assert not [p for p in tmp_path.rglob("*") if p.is_file()] and temporaries(tmp_path) == []


def test_listing_another_schema_is_not_found_like_a_missing_one(
    postgres_server: PostgresServer, scoped: tuple[str, str]
) -> None:
    schema, other = scoped

    async def body() -> dict[str, BaseException | list[str]]:
        outcome: dict[str, BaseException | list[str]] = {}
        async with pg_connector(postgres_server, [schema]) as pg:
            for path in ("no_such_schema", "pg_catalog", '"pg_catalog"', "PG_CATALOG", "information_schema",
                         other, f'"{other}"', "public", "pg_toast", schema):
                try:
                    outcome[path] = [item.path for item in await pg.list_items(path)]
                except NotFoundError as exc:
                    outcome[path] = exc
        return outcome

    outcome = run(body())
    assert f"{schema}.secret" in outcome.pop(schema)  # type: ignore[operator]
    shape = str(outcome.pop("no_such_schema")).replace("no_such_schema", "<asked>")
    for path, result in outcome.items():
        assert isinstance(result, NotFoundError), path
        assert re.sub(r"schema \S+ does not", "schema <asked> does not", str(result)) == shape, path


@pytest.mark.parametrize("search_path", ["pg_catalog", "{other}", "{other}, pg_catalog", "pg_temp, {other}"])
def test_search_path_of_the_session_or_role_does_not_widen_the_scope(
    postgres_server: PostgresServer, scoped: tuple[str, str], tmp_path: Path, search_path: str
) -> None:
    schema, other = scoped
    path = search_path.replace("{other}", other)
    dsn = (f"host={postgres_server.host} port={postgres_server.port} dbname={postgres_server.dbname} "
           f"user={postgres_server.user} options='-c search_path={path.replace(' ', '')}'")
    config = pg_config(postgres_server, [schema])
    by_dsn = {k: v for k, v in config.config.items() if k not in ("host", "port", "dbname", "user")}

    async def body() -> tuple[list[BaseException], str, str]:
        from connectors import DataSourceConfig

        source = DataSourceConfig(id="pg-path", type="postgresql", name="PG", config={**by_dsn, "dsn": dsn})
        async with PostgreSQLConnector(source) as pg:
            errors = await every_operation(pg, f"{schema}.pg_authid", tmp_path / "x")
            errors += await every_operation(pg, f"{schema}.pg_class", tmp_path / "x")
            landed = await pg.fetch_data(f"{schema}.secret", str(tmp_path))
            dotted = await pg.fetch_data(f'{schema}."pg_catalog.pg_authid"', str(tmp_path))
            return errors, Path(landed).read_text(), Path(dotted).read_text()

    errors, landed, dotted = run(body())
    assert len(errors) == 6 and all(isinstance(e, NotFoundError) for e in errors)
    assert landed == "v\nin scope\n" and dotted == "v\n\"a dotted name, in scope\"\n"
    assert not (tmp_path / "x").exists()


def test_scope_holds_for_many_schemas_and_quoted_names(
    postgres_server: PostgresServer, scoped: tuple[str, str], tmp_path: Path
) -> None:
    schema, other = scoped
    mixed = f"Mixed {uuid.uuid4().hex[:6]}"
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(mixed)))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 1 AS v").format(sql.Identifier(mixed, "t")))
    quoted = '"' + mixed + '"'

    async def body() -> dict[str, Any]:
        results: dict[str, Any] = {}
        async with pg_connector(postgres_server, [schema, mixed]) as pg:
            for identifier in (f"{quoted}.t", f"{mixed.lower().replace(' ', '_')}.t", f"{other}.secret",
                               f'"{mixed.upper()}".t', "pg_catalog.pg_authid"):
                try:
                    results[identifier] = Path(await pg.fetch_data(identifier, str(tmp_path))).read_text()
                except NotFoundError as exc:
                    results[identifier] = exc
        return results

    try:
        results = run(body())
    finally:
        with admin(postgres_server) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(mixed)))
    assert results.pop(f"{quoted}.t") == "v\n1\n"
    assert all(isinstance(result, NotFoundError) for result in results.values()), results
    assert all(CANARY not in p.read_text() for p in tmp_path.rglob("*") if p.is_file())
