"""Bounded before authentication (docs/RELIABILITY.md row 31): body caps and 401 before the body is read,
and a real ``da-sources serve`` that stays responsive under 2,000 idle half-open connections and closes
connections whose headers or body do not arrive in time."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.api.api_keys import KeyStore
from connectors.api.server import MAX_HEADER_BYTES
from tests.api.conftest import Api, local_source
from tests.harness import free_port, stop_process_group, wait_for_port
from tests.helpers.cli import CONSOLE_SCRIPT

HALF_OPEN = 2000
DEFAULT_SOFT_FILES = 1024  # the usual soft open-file limit a service starts with


def test_an_unauthenticated_malformed_body_gets_401_not_422(api: Api) -> None:
    for body in (b"{not json", b"[" * 10_000, b'{"id": 1}'):
        response = api.client.post("/v1/data-sources", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, response.text
    bad_key = {"Authorization": "Bearer dsk_nope", "Content-Type": "application/json"}
    assert api.client.post("/v1/data-sources", content=b"{x", headers=bad_key).status_code == 401
    assert api.audit()[-1]["status"] == 401


def test_a_body_over_the_cap_is_413_before_parsing(api: Api, data_root: Path) -> None:
    cap = api.settings.max_body_bytes
    big = json.dumps({**local_source(data_root), "metadata": {"pad": "x" * cap}}).encode()
    declared = api.client.post("/v1/data-sources", content=big, headers={**api.manage, "Content-Type":
                                                                          "application/json"})
    assert declared.status_code == 413 and "over the limit" in declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"id": "docs", "pad": "'
        for _ in range(cap // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    streamed = api.client.post("/v1/data-sources", content=chunks(), headers={**api.manage, "Content-Type":
                                                                                "application/json"})
    assert streamed.status_code == 413, streamed.text
    assert api.call("GET", "/v1/data-sources", expect=200).json()["data"] == []
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)  # a normal body still passes


@dataclass
class Server:
    base: str
    port: int
    key: str


def _limit_files(hard: int | None) -> None:
    _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (DEFAULT_SOFT_FILES, hard or current_hard))


@contextlib.contextmanager
def serve(tmp_path: Path, hard_files: int | None = None, **env: str) -> Iterator[Server]:
    sources = tmp_path / "sources.yaml"
    _, key = KeyStore(tmp_path / "api-keys.json").create("admin")
    port = free_port()
    environment = {**os.environ, "DA_SOURCES_FILE": str(sources), "DA_WORKSPACE": str(tmp_path / "ws"), **env}
    process = subprocess.Popen(  # noqa: PLW1509 - preexec_fn: the service's usual file limit, as a user runs it
        [str(CONSOLE_SCRIPT), "serve", "--port", str(port)], env=environment, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True, preexec_fn=lambda: _limit_files(hard_files))
    try:
        wait_for_port(port, process, 60, "da-sources serve")
        yield Server(f"http://127.0.0.1:{port}", port, key)
    finally:
        stop_process_group(process)
        process.communicate(timeout=10)


def _request(port: int, path: str, key: str | None = None) -> tuple[int, bytes]:
    """One HTTP/1.1 GET on a fresh connection (raw sockets: no client pool in the way)."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def _half_open(port: int, count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.sendall(b"POST /v1/data-sources HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        opened.append(sock)
    return opened


@pytest.mark.slow
@pytest.mark.parametrize("hard_files", [None, DEFAULT_SOFT_FILES], ids=["raisable", "hard-1024"])
def test_serve_answers_under_2000_idle_half_open_connections(tmp_path: Path, hard_files: int | None) -> None:
    # a header deadline far away: the connections stay open for the whole test, only the cap may close them
    with serve(tmp_path, hard_files, DA_API_HEADER_TIMEOUT_SECONDS="3600") as server:
        sockets = _half_open(server.port, HALF_OPEN)
        try:
            assert _request(server.port, "/health")[0] == 200
            status, body = _request(server.port, "/v1/data-sources", server.key)
            assert status == 200 and json.loads(body)["object"] == "list"
            assert _request(server.port, "/v1/data-sources")[0] == 401
        finally:
            for sock in sockets:
                sock.close()


def _closed_by_server(sock: socket.socket) -> bool:
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass
    return True  # recv returned b'' (or the connection was reset): the server closed it


def _status_before_body(port: int, key: str | None) -> int:
    """Announce an 800 MB body, send 4 bytes of it, and read the answer (it comes without the rest)."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"POST /v1/data-sources HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                     "Content-Length: 800000000\r\n\r\n{\"id".encode())
        head = sock.recv(65536)
    return int(head.split(b" ")[1])


@pytest.mark.slow
def test_serve_answers_a_huge_body_before_reading_it(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        assert _status_before_body(server.port, None) == 401
        assert _status_before_body(server.port, "dsk_wrong") == 401
        assert _status_before_body(server.port, server.key) == 413
        assert _request(server.port, "/health")[0] == 200


@pytest.mark.slow
def test_serve_closes_connections_whose_headers_or_body_are_late(tmp_path: Path) -> None:
    with serve(tmp_path, None, DA_API_HEADER_TIMEOUT_SECONDS="1", DA_API_BODY_TIMEOUT_SECONDS="1") as server:
        headers = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        headers.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        body = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        body.sendall(f"POST /v1/data-sources HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\"".encode())
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=60)  # sends nothing at all
        with headers, body, silent:
            assert _closed_by_server(headers) and _closed_by_server(body) and _closed_by_server(silent)
        assert _request(server.port, "/health")[0] == 200
        assert _request(server.port, "/v1/data-sources", server.key)[0] == 200


def _send(port: int, data: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            for part in data:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest was sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


@pytest.mark.slow
def test_serve_refuses_headers_over_16_kib_whole_or_in_pieces(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        big = b"X-Pad: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n"
        whole = b"GET /health HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n"
        assert _send(server.port, [whole]).startswith(b"HTTP/1.1 400")
        pieces = [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: "] + [b"a" * 1024] * 64 + [b"\r\n\r\n"]
        assert _send(server.port, pieces).startswith(b"HTTP/1.1 400")
        many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100)
                                                              for i in range(200)) + b"\r\n"
        assert _send(server.port, [many]).startswith(b"HTTP/1.1 400")
        fine = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"c" * 8000 + b"\r\nConnection: close\r\n\r\n"
        answer = _send(server.port, [fine])
        assert answer.startswith(b"HTTP/1.1 200") and json.loads(answer.partition(b"\r\n\r\n")[2])["status"]
