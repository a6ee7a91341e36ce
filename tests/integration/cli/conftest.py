"""Fixtures of the CLI integration tests (the `cli` fixture itself is in tests/integration/conftest.py)."""

from __future__ import annotations

import secrets
import uuid

import pytest

from tests.harness import PostgresServer


@pytest.fixture
def pg_role(postgres_server: PostgresServer) -> tuple[str, str, str]:
    """A login role with a canary password, and a table it may read: (role, password, table)."""
    import psycopg

    role, password = f"cli_{uuid.uuid4().hex[:10]}", "CANARY" + secrets.token_hex(16)
    table = f"sales_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE TABLE public.{table} (id integer, region text)")
        conn.execute(f"INSERT INTO public.{table} VALUES (1, 'north'), (2, 'south')")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON public.{table} TO {role}")
    return role, password, table
