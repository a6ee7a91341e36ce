"""The reach rules at connect time, on loopback: names resolved and checked by us, no cleartext password sent.

``localhost`` stands for a name that rebinds to an internal address: the operator lists the name, not the
address, so the static check passes and the connect-time check (after our own resolution) must refuse,
before any connection is opened.

Row 55 of docs/RELIABILITY.md (the fault matrix).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.api.policy import ApiPolicy
from tests.api.conftest import Api, start_api
from tests.harness import AzuriteServer, PostgresServer

pytestmark = pytest.mark.integration
SSL_REQUEST, GSS_REQUEST = 80877103, 80877104


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


def accepted_nothing(server: socket.socket) -> bool:
    server.setblocking(False)
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def api_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **knobs: object) -> Iterator[Api]:
    from tests.api.conftest import use_own_secret_store

    use_own_secret_store(tmp_path, monkeypatch)
    yield from start_api(tmp_path, policy=ApiPolicy.from_mapping({"ports": "any", **knobs}))


def test_a_listed_name_resolving_to_loopback_is_refused_at_connect_for_postgresql(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer) -> None:
    with listener() as server:
        for api in api_with(tmp_path, monkeypatch, hosts=["localhost"]):
            api.call("POST", "/v1/data-sources", expect=201, json={"id": "pg", "type": "postgresql", "name": "p",
                     "config": {"host": "localhost", "port": server.getsockname()[1], "dbname": "d", "user": "u",
                                "password": "pw", "connect_timeout": 2}})
            detail = api.call("GET", "/v1/data-sources/pg/browse", key="read", expect=403).json()["detail"]
            assert "config.host" in detail and "127.0.0.1" not in detail
            assert not api.call("POST", "/v1/data-sources/pg/test", expect=200).json()["ok"]
        assert accepted_nothing(server)


def test_a_listed_name_resolving_to_loopback_is_refused_at_connect_for_azure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azurite_server: AzuriteServer) -> None:
    with listener() as server:
        for api in api_with(tmp_path, monkeypatch, hosts=["localhost"], schemes=["http"]):
            api.call("POST", "/v1/data-sources", expect=201, json={"id": "az", "type": "azure_blob", "name": "a",
                     "config": {"container_name": "c", "sas_token": "sv=2024&sig=abc",
                                "account_url": f"http://localhost:{server.getsockname()[1]}/devstoreaccount1"}})
            detail = api.call("GET", "/v1/data-sources/az/browse", key="read", expect=403).json()["detail"]
            assert "config.account_url" in detail
        assert accepted_nothing(server)


def _cleartext_server(server: socket.socket, received: list[bytes]) -> None:
    """Answers a PostgreSQL startup with AuthenticationCleartextPassword and keeps what the client sends."""
    conn, _ = server.accept()
    with conn:
        conn.settimeout(5)
        while True:
            length = struct.unpack("!I", conn.recv(4))[0]
            body = conn.recv(length - 4)
            if struct.unpack("!I", body[:4])[0] in (SSL_REQUEST, GSS_REQUEST):
                conn.sendall(b"N")
                continue
            break
        conn.sendall(b"R" + struct.pack("!II", 8, 3))
        with contextlib.suppress(OSError):
            while chunk := conn.recv(4096):
                received.append(chunk)


def test_a_server_asking_for_a_cleartext_password_never_receives_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str) -> None:
    received: list[bytes] = []
    with listener() as server:
        thread = threading.Thread(target=_cleartext_server, args=(server, received), daemon=True)
        thread.start()
        for api in api_with(tmp_path, monkeypatch, hosts=["127.0.0.1"]):
            api.call("POST", "/v1/data-sources", expect=201, json={"id": "pg", "type": "postgresql", "name": "p",
                     "config": {"host": "127.0.0.1", "port": server.getsockname()[1], "dbname": "d", "user": "u",
                                "password": canary, "sslmode": "disable", "connect_timeout": 3}})
            api.call("GET", "/v1/data-sources/pg/browse", key="read", expect=502)
            api.assert_nowhere(canary)
        thread.join(10)
    assert canary.encode() not in b"".join(received)


def test_the_harness_server_is_reached_when_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   postgres_server: PostgresServer) -> None:
    for api in api_with(tmp_path, monkeypatch, hosts=["127.0.0.1"]):
        api.call("POST", "/v1/data-sources", expect=201, json={"id": "pg", "type": "postgresql", "name": "p",
                 "config": {"host": postgres_server.host, "port": postgres_server.port, "user": postgres_server.user,
                            "dbname": postgres_server.dbname, "password": postgres_server.password}})
        assert api.call("POST", "/v1/data-sources/pg/test", expect=200).json()["ok"]


def test_a_source_made_through_the_api_is_held_to_the_policy_by_the_cli_and_dagster_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer) -> None:
    """Dagster and the CLI serve the same sources file: an API-made source's hosts are checked there too."""
    import asyncio

    from connectors.api.policy import made_through_api
    from connectors.reach import ReachRefusedError
    from connectors.registry import SourceRegistry
    from da_pipelines.sources import resource_for

    (tmp_path / "api-policy.yaml").write_text("hosts: [localhost]\nports: any\n")  # the operator's file
    monkeypatch.setenv("DA_SOURCES_FILE", str(tmp_path / "sources.yaml"))
    monkeypatch.delenv("DA_API_POLICY_FILE", raising=False)
    with listener() as server:
        config = {"host": "localhost", "port": server.getsockname()[1], "dbname": "d", "user": "u",
                  "password": "pw", "connect_timeout": 2}
        for api in api_with(tmp_path, monkeypatch, hosts=["localhost"]):
            api.call("POST", "/v1/data-sources", expect=201,
                     json={"id": "pg", "type": "postgresql", "name": "p", "config": config})
        registry = SourceRegistry(tmp_path / "sources.yaml")
        source = registry.get("pg")
        assert made_through_api(source)
        for connector in (registry.create_connector("pg"), resource_for(source).build_connector()):
            with pytest.raises(ReachRefusedError, match="config.host"):
                asyncio.run(connector.connect())
        assert accepted_nothing(server)  # refused before any connection, on every path


def test_the_operators_own_sources_reach_where_the_operator_says(tmp_path: Path) -> None:
    from connectors.registry import SourceRegistry

    (tmp_path / "api-policy.yaml").write_text("hosts: []\n")  # closed for the API, not for the operator
    registry = SourceRegistry(tmp_path / "sources.yaml")
    registry.add({"id": "pg", "type": "postgresql", "name": "p",
                  "config": {"host": "127.0.0.1", "port": 5432, "dbname": "d", "user": "u",
                             "password": {"env": "PGPASSWORD_UNUSED"}}})
    assert registry.create_connector("pg").reach is None


def test_a_listed_name_resolving_to_loopback_is_refused_at_connect_for_s3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with listener() as server:
        for api in api_with(tmp_path, monkeypatch, hosts=["localhost"], schemes=["http"]):
            api.call("POST", "/v1/data-sources", expect=201, json={"id": "lake", "type": "s3", "name": "l",
                     "config": {"bucket": "b", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "x",
                                "endpoint_url": f"http://localhost:{server.getsockname()[1]}"}})
            detail = api.call("GET", "/v1/data-sources/lake/browse", key="read", expect=403).json()["detail"]
            assert "config.endpoint_url" in detail and "127.0.0.1" not in detail
        assert accepted_nothing(server)
