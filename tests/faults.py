"""A fault-injecting HTTP proxy for faults Azurite cannot produce by itself.

It listens on 127.0.0.1 in front of an upstream (Azurite) and forwards each
request on its own upstream connection (``Connection: close`` both ways, so
request boundaries are trivial). Per configured :class:`Rule`, a matching
request is answered differently:

* ``reset``    forward the answer's head and ``after_bytes`` of its body, then RST
* ``truncate`` same, then a clean FIN: fewer bytes than Content-Length
* ``stall``    accept the request and answer nothing for ``stall_seconds``
* ``status``   answer ``status`` (503 by default) with ``Retry-After``, never forward
* ``hook``     call ``hook()`` (e.g. overwrite the blob), then forward normally
* ``flip``     forward everything, but the body byte at ``after_bytes`` inverted (bytes corrupted in transit)

Everything is bounded in time: a stall ends after ``stall_seconds`` and every
upstream read has a timeout. ``requests`` records each request seen.

Example:
    >>> async with FaultProxy(upstream_port) as proxy:
    ...     proxy.add(Rule("reset", after_bytes=1000, match=ranged_after_first))
    ...     ... connect to proxy.endpoint(account_name) ...
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Action = Literal["reset", "truncate", "stall", "status", "hook", "flip"]
IO_TIMEOUT = 30.0


@dataclass
class Request:
    """One request as the proxy saw it."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def range_start(self) -> int | None:
        """Start offset of a ``Range: bytes=a-b`` request, else None."""
        value = self.headers.get("range", "")
        if not value.startswith("bytes="):
            return None
        return int(value[6:].split("-", 1)[0])


@dataclass
class Rule:
    """What to do to the requests it matches, ``times`` times (None: forever)."""

    action: Action
    match: Callable[[Request], bool] = lambda request: True
    times: int | None = 1
    after_bytes: int = 0
    stall_seconds: float = 10.0
    status: int = 503
    retry_after: float = 0.2
    hook: Callable[[], None] | None = None
    used: int = field(default=0, init=False)

    def take(self, request: Request) -> bool:
        if (self.times is not None and self.used >= self.times) or not self.match(request):
            return False
        self.used += 1
        return True


def ranged_after_first(request: Request) -> bool:
    """Ranged GETs other than the first range (those carry If-Match)."""
    return request.method == "GET" and (request.range_start or 0) > 0


def blob_get(request: Request) -> bool:
    """Any GET of a blob's bytes (not a listing or a container call)."""
    return request.method == "GET" and "restype=" not in request.target and "comp=" not in request.target


class FaultProxy:
    """The proxy; use as ``async with`` inside the test's event loop."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules: list[Rule] = []
        self.requests: list[Request] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def endpoint(self, account_name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{account_name}"

    def blob_requests(self) -> list[Request]:
        return [r for r in self.requests if blob_get(r)]

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.wait_for(self._one_request(reader, writer), IO_TIMEOUT + 15)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # cancelled: the proxy is shutting down; the rest: the client went away
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(OSError):
                writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        request, raw_headers = _parse_request(head)
        body = await reader.readexactly(int(request.headers.get("content-length", "0")))
        self.requests.append(request)
        rule = next((r for r in self.rules if r.take(request)), None)
        if rule and rule.action == "status":
            return await _answer_status(writer, rule)
        if rule and rule.action == "stall" and rule.after_bytes == 0:
            await asyncio.sleep(rule.stall_seconds)
            return
        if rule and rule.action == "hook" and rule.hook is not None:
            await asyncio.to_thread(rule.hook)
        await self._forward(request, raw_headers, body, writer, rule)

    async def _forward(
        self, request: Request, raw_headers: list[bytes], body: bytes, writer: asyncio.StreamWriter, rule: Rule | None
    ) -> None:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), IO_TIMEOUT)
        try:
            up_writer.write(_request_bytes(request, raw_headers) + body)
            await up_writer.drain()
            response_head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
            writer.write(_close_connection(response_head))
            limit = rule.after_bytes if rule and rule.action in ("reset", "truncate", "stall") else None
            flip = rule.after_bytes if rule and rule.action == "flip" else None
            await _pump(up_reader, writer, limit, flip)
            if rule and rule.action == "reset":
                _reset(writer)
            elif rule and rule.action == "stall":
                await asyncio.sleep(rule.stall_seconds)
        finally:
            up_writer.close()


def _parse_request(head: bytes) -> tuple[Request, list[bytes]]:
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode("latin-1").split(" ", 2)
    raw = [line for line in lines[1:] if line]
    headers = {}
    for line in raw:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers), raw


def _request_bytes(request: Request, raw_headers: list[bytes]) -> bytes:
    kept = [h for h in raw_headers if not h.lower().startswith((b"connection:", b"keep-alive:"))]
    first = f"{request.method} {request.target} HTTP/1.1".encode("latin-1")
    return b"\r\n".join([first, *kept, b"Connection: close", b"", b""])


def _close_connection(head: bytes) -> bytes:
    hop_by_hop = (b"connection:", b"keep-alive:")
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(hop_by_hop)]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None, flip: int | None = None
) -> None:
    sent = 0
    while limit is None or sent < limit:
        want = 65536 if limit is None else min(65536, limit - sent)
        data = await asyncio.wait_for(reader.read(want), IO_TIMEOUT)
        if not data:
            break
        if flip is not None and sent <= flip < sent + len(data):
            data = data[: flip - sent] + bytes([data[flip - sent] ^ 0xFF]) + data[flip - sent + 1 :]
        writer.write(data)
        await writer.drain()
        sent += len(data)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _answer_status(writer: asyncio.StreamWriter, rule: Rule) -> None:
    reason = {503: "Service Unavailable", 429: "Too Many Requests", 500: "Internal Server Error"}.get(rule.status, "X")
    writer.write(
        f"HTTP/1.1 {rule.status} {reason}\r\nRetry-After: {rule.retry_after:g}\r\n"
        f"x-ms-error-code: ServerBusy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
