"""PostgreSQL test helpers: configs and connectors for the harness server, schemas of known tables, reader roles."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from connectors import DataSourceConfig
from connectors.postgresql import PostgreSQLConnector
from tests.harness import PostgresServer

ODD_TABLE = 'Ünïcode "t.1" x'


# table -> (DDL after CREATE TABLE <name>, INSERT values, exact CSV bytes COPY must give)
TABLES: dict[str, tuple[str, str, bytes]] = {
    "people": (
        "(id int PRIMARY KEY, name text, amount numeric(12,2), seen timestamptz)",
        "(1, 'alice', 10.5, '2024-01-02 03:04:05+00'), (2, 'b,\"o\"b', NULL, NULL),"
        " (3, E'multi\\nline', -0.01, '2024-06-30 23:59:59.5+02'), (4, '', 0, NULL)",
        b'id,name,amount,seen\n1,alice,10.50,2024-01-02 03:04:05+00\n2,"b,""o""b",,\n'
        b'3,"multi\nline",-0.01,2024-06-30 21:59:59.5+00\n4,"",0.00,\n',
    ),
    ODD_TABLE: ("(\"Weird Col\" text, n bigint)", "('caf\u00e9', 9223372036854775807)",
                'Weird Col,n\ncaf\u00e9,9223372036854775807\n'.encode()),
    "empty": ("(a int, b text)", "", b"a,b\n"),
}


def pg_config(server: PostgresServer, schemas: list[str], **extra: Any) -> DataSourceConfig:
    config = {"host": server.host, "port": server.port, "dbname": server.dbname, "user": server.user,
              "password": server.password, "schemas": schemas, "connect_timeout": 5, **extra}
    return DataSourceConfig(id="pg-test", type="postgresql", name="PG", config=config)


def pg_connector(server: PostgresServer, schemas: list[str], **extra: Any) -> PostgreSQLConnector:
    return PostgreSQLConnector(pg_config(server, schemas, **extra))


def admin(server: PostgresServer) -> psycopg.Connection[Any]:
    return psycopg.connect(server.dsn, autocommit=True, connect_timeout=10)


def create_schema(server: PostgresServer, tables: dict[str, tuple[str, str, bytes]]) -> str:
    schema = f"conf_{uuid.uuid4().hex[:10]}"
    with admin(server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for table, (ddl, values, _) in tables.items():
            name = sql.Identifier(schema, table)
            conn.execute(sql.SQL("CREATE TABLE {} ").format(name) + sql.SQL(ddl))  # type: ignore[operator]
            if values:
                conn.execute(sql.SQL("INSERT INTO {} VALUES ").format(name) + sql.SQL(values))  # type: ignore[operator]
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT id, name FROM {} WHERE id < 3").format(
            sql.Identifier(schema, "people_view"), sql.Identifier(schema, "people")))
    return schema


def create_reader(server: PostgresServer, *schemas: str) -> dict[str, str]:
    """A least-privilege login role, made as the README's recipe says: ``user`` and ``password`` config keys."""
    name, password = f"reader_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with admin(server) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        for schema in schemas:
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {0} TO {1}; GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {1}")
                         .format(sql.Identifier(schema), sql.Identifier(name)))
    return {"user": name, "password": password}


def drop_reader(server: PostgresServer, reader: dict[str, str]) -> None:
    with admin(server) as conn:
        conn.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}")
                     .format(sql.Literal(reader["user"])))
        conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(reader["user"])))


def drop_schema(server: PostgresServer, schema: str) -> None:
    with admin(server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
