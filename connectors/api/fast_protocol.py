"""``da-sources serve``'s HTTP/1.1 protocol: uvicorn's httptools parser with the bounds of :mod:`.server`.

The same bounds as :class:`connectors.api.server.bounded_protocol`'s h11 protocol
(header and body deadlines, the connection cap closing the oldest waiting one,
16 KiB of headers), on the C parser (llhttp): h11 parses in pure Python and cost
about a third of a small request's time under load (docs/api.md, "Serving").

llhttp reports a request in callbacks: ``on_message_begin`` at its first byte,
``on_headers_complete``, then ``on_message_complete`` once its body is in. The
header deadline runs from the connection opening or the request's first byte,
the body deadline from its headers. Headers are counted twice: per header as
parsed, and per chunk while the headers are still incomplete (llhttp buffers a
header arriving in pieces, which the first count alone would not bound).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from connectors.api.read_deadlines import ReadDeadlines

__all__ = ["HeadersTooLargeError", "bounded_httptools_protocol"]


class HeadersTooLargeError(Exception):
    """The request's headers passed the cap (raised inside a parser callback: the parser answers 400)."""


class OneWrite:
    """What a response cycle writes to, joining its head and its first body part into one ``send``.

    uvicorn writes the status line and headers, then the body: two system calls and two packets per small
    answer. The head is held until the next write, or until the event loop's next turn at the latest
    (a streamed answer's head is not held back longer).
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._held: bytes | None = None
        self._writes = 0

    def write(self, data: bytes) -> None:
        """Hold the first write (the head); send it with the next one, or alone at the loop's next turn."""
        self._writes += 1
        if self._writes == 1:
            self._held = data
            self._loop.call_soon(self.flush)
        elif self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send the head if it is still held."""
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        """Send what is held, then close the transport."""
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        """Whether the transport is closing (uvicorn asks before writing)."""
        return self._transport.is_closing()


def bounded_httptools_protocol(max_connections: int, header_timeout: float, body_timeout: float,
                               max_header_bytes: int) -> type[Any]:
    """uvicorn's httptools protocol class with read deadlines, a header cap and a connection cap.

    Args:
        max_connections: open connections at most; one more closes the oldest waiting connection.
        header_timeout: seconds for a request's headers, from the connection opening or its first byte.
        body_timeout: seconds for a request's body, once its headers are in.
        max_header_bytes: the request line and headers at most (a 400 past it).

    Returns:
        The protocol class, for ``uvicorn.run(http=...)``.

    Raises:
        HeadersTooLargeError: never to the caller: inside the parser's callbacks, where uvicorn
            answers it with a 400 and closes the connection.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(ReadDeadlines, HttpToolsProtocol):
        _parsed_bytes: int = 0  # the request line and headers parsed so far
        _pending_bytes: int = 0  # the bytes received while the headers were still incomplete

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.opened_at = time.monotonic()
            self._expect("headers", header_timeout)
            if len(self.connections) > max_connections:
                self._close_oldest_waiting()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)  # a parser error (HeadersTooLargeError too) answers 400 and closes
            if self._reading == "headers" and not self.transport.is_closing():
                self._pending_bytes += len(data)
                if self._pending_bytes > max_header_bytes:
                    self.send_400_response("Invalid HTTP request received.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._parsed_bytes = self._pending_bytes = 0
            self._expect("headers", header_timeout)

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._expect("body", body_timeout)  # cleared at once by on_message_complete when there is none
            super().on_headers_complete()
            if self.cycle is not None and self.cycle.transport is self.transport:
                self.cycle.transport = OneWrite(self.transport, self.loop)  # type: ignore[assignment]

        def on_message_complete(self) -> None:
            self._expect("", 0)
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._expect("", 0)
            super().connection_lost(exc)

        # on_response_complete is uvicorn's: it arms the keep-alive timeout; a request answered before its
        # body came in (401, 413) keeps its body deadline, since a byte of that body cancels the keep-alive one

        def _count(self, size: int) -> None:
            self._parsed_bytes += size
            if self._parsed_bytes > max_header_bytes:
                raise HeadersTooLargeError

    return BoundedHttpToolsProtocol
