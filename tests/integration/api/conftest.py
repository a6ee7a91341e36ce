"""Fixtures of the API integration tests: a PostgreSQL role with a canary password and two related tables."""

from __future__ import annotations

import secrets
import uuid

import psycopg
import pytest

from tests.harness import PostgresServer


@pytest.fixture
def pg_tables(postgres_server: PostgresServer) -> tuple[str, str, str]:
    """A login role with a canary password, and two related tables it may read: (role, password, schema)."""
    role, password = f"api_{uuid.uuid4().hex[:10]}", "CANARY" + secrets.token_hex(16)
    schema = f"s_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id integer PRIMARY KEY, name text NOT NULL)")
        conn.execute(f"CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, customer_id integer "
                     f"REFERENCES {schema}.customers(id), amount numeric(10,2), note text, at timestamptz)")
        conn.execute(f"INSERT INTO {schema}.customers SELECT g, 'c' || g FROM generate_series(1, 5) g")
        conn.execute(f"INSERT INTO {schema}.orders SELECT g, 1 + g % 5, g * 1.5, NULL, '2026-01-01'::timestamptz "
                     f"FROM generate_series(1, 40) g")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    return role, password, schema
