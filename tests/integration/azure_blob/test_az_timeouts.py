"""Every Azure operation gives up on a silent server within its documented bound (docs/RELIABILITY.md row 16).

The bound (README, Azure section): each request gives up after
``read_timeout`` seconds without a byte; an operation makes at most
``retry_total + 1`` attempts with short backoffs between them. Before the
fix, ``get_metadata`` and ``test_connection`` went through the SDK, whose
transport ignored the configured timeouts (300 s) and whose retries backed
off exponentially. The silent server is ``tests.faults.FaultProxy`` in front
of the real Azurite: it accepts each request and answers nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import ConnectionError
from connectors.azure_blob import AzureBlobConnector
from connectors.azure_blob.retries import MAX_BACKOFF
from tests.conformance import files_under, run
from tests.faults import FaultProxy, Rule
from tests.harness import AzuriteServer
from tests.helpers.azure import azure_config, new_container

pytestmark = pytest.mark.integration

READ_TIMEOUT = 0.5
CONNECT_TIMEOUT = 0.5
SLACK = 1.0  # event loop, process scheduling on a busy 2-core machine

Operation = Callable[[AzureBlobConnector, Path], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {
    "test_connection": lambda c, ws: c.test_connection(),
    "list_items": lambda c, ws: c.list_items(),
    "get_metadata": lambda c, ws: c.get_metadata("a.csv"),
    "fetch_data": lambda c, ws: c.fetch_data("a.csv", str(ws)),
}


def bound(retry_total: int) -> float:
    """The documented worst case: every attempt's read timeout plus the backoffs between attempts."""
    backoffs = sum(min(MAX_BACKOFF, 0.2 * 2**attempt) for attempt in range(retry_total))
    return (retry_total + 1) * READ_TIMEOUT + backoffs + SLACK


@pytest.fixture
def container(azurite_server: AzuriteServer) -> str:
    return new_container(azurite_server, {"a.csv": b"a,b\n1,2\n"})


@pytest.mark.parametrize("retry_total", [0, 2])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_each_operation_gives_up_on_a_silent_server_within_the_bound(
    azurite_server: AzuriteServer, container: str, tmp_path: Path, operation: str, retry_total: int
) -> None:
    async def body() -> tuple[float, float, int]:
        async with FaultProxy(azurite_server.port) as proxy:
            proxy.add(Rule("stall", times=None, stall_seconds=30))
            config = azure_config(azurite_server, container, account_url=proxy.endpoint(azurite_server.account_name),
                                  account_key=azurite_server.account_key,
                                  read_timeout=READ_TIMEOUT, retry_total=retry_total)
            connector = AzureBlobConnector(config)
            started = time.monotonic()
            await connector.connect()  # builds clients only: nothing to wait for
            connected = time.monotonic() - started
            try:
                started = time.monotonic()
                with pytest.raises(ConnectionError, match="timed out"):
                    await OPERATIONS[operation](connector, tmp_path / "ws")
                return connected, time.monotonic() - started, len(proxy.requests)
            finally:
                await connector.disconnect()

    connected, seconds, requests = run(body())
    assert connected < 0.5
    assert seconds < bound(retry_total), f"{operation} took {seconds:.1f} s"
    assert requests == retry_total + 1  # one per attempt: the budget was spent, not skipped
    assert not (tmp_path / "ws").exists() or files_under(tmp_path / "ws") == []


def test_a_silent_server_does_not_stall_a_listing_that_already_started(
    azurite_server: AzuriteServer, container: str
) -> None:
    async def body() -> float:
        async with FaultProxy(azurite_server.port) as proxy:
            # the answer's head and a few bytes, then silence
            proxy.add(Rule("stall", match=lambda r: "comp=list" in r.target, times=None, after_bytes=20,
                           stall_seconds=30))
            config = azure_config(azurite_server, container, account_url=proxy.endpoint(azurite_server.account_name),
                                  account_key=azurite_server.account_key, read_timeout=READ_TIMEOUT, retry_total=1)
            async with AzureBlobConnector(config) as connector:
                started = time.monotonic()
                with pytest.raises(ConnectionError, match="timed out"):
                    await connector.list_items()
                return time.monotonic() - started

    assert run(body()) < bound(1)


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a new connection's SYN is never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for sock in [*fillers, server]:
            sock.close()


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_each_operation_gives_up_within_the_connect_timeout_when_connecting_hangs(
    azurite_server: AzuriteServer, unanswered_port: int, tmp_path: Path, operation: str
) -> None:
    async def body() -> float:
        config = azure_config(azurite_server, "c", account_url=f"http://127.0.0.1:{unanswered_port}/devstoreaccount1",
                              account_key=azurite_server.account_key, connect_timeout=CONNECT_TIMEOUT, retry_total=1)
        async with AzureBlobConnector(config) as connector:
            started = time.monotonic()
            with pytest.raises(ConnectionError, match="timed out connecting"):
                await OPERATIONS[operation](connector, tmp_path / "ws")
            return time.monotonic() - started

    assert run(body()) < 2 * CONNECT_TIMEOUT + 0.2 + SLACK
