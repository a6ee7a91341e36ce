"""The harness gives working servers."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from azure.storage.blob.aio import BlobServiceClient

from tests.harness import AzuriteServer, PostgresServer

pytestmark = pytest.mark.integration


def test_postgres_fixture_gives_a_working_server(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.dsn, connect_timeout=10) as conn:
        version = conn.execute("show server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 150000
        assert conn.execute("select 1 + 1").fetchone() == (2,)


def test_postgres_refuses_a_wrong_password(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.dsn.replace(postgres_server.password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn, connect_timeout=10)


def test_azurite_fixture_gives_a_working_server(azurite_server: AzuriteServer) -> None:
    async def round_trip() -> bytes:
        async with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
            container = service.get_container_client("harness-smoke")
            await container.create_container()
            await container.upload_blob("hello.txt", b"hello azurite")
            stream = await container.download_blob("hello.txt")
            return bytes(await stream.readall())

    assert asyncio.run(round_trip()) == b"hello azurite"
