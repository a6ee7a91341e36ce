"""``da-sources serve``: the standalone app under uvicorn, bounded before any request is authenticated.

Refuses to listen beyond loopback without keys. Every connection is bounded
before the app sees it (:func:`connectors.api.fast_protocol.bounded_httptools_protocol`,
the C parser; :class:`BoundedH11Protocol` when httptools is not installed):

- a request's headers must arrive within ``header_timeout_seconds`` (10) of the
  connection opening or of its first byte, and its body within
  ``body_timeout_seconds`` (30) of its headers; else the connection is closed;
- headers are capped at 16 KiB (a 400, as h11 answers), bodies at ``max_body_bytes`` (the routes);
- at most ``max_connections`` (4096) connections are open: a new one past it
  closes the oldest connection that has not sent a whole request yet (or is
  idle between requests), so idle or slow clients cannot lock others out;
- idle keep-alive connections close after 5 s;
- the process's open-file limit is raised to its hard limit at start (the
  usual soft limit, 1024, would stop accepting at ~1,000 connections).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import resource
import time
from typing import Any

from connectors.api.api_keys import KeyStore
from connectors.api.api_settings import ApiSettings
from connectors.api.read_deadlines import ReadDeadlines
from connectors.errors import ConfigurationError

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 16 * 1024
KEEP_ALIVE_SECONDS = 5
SPARE_FILES = 256  # descriptors beside the connections: the sources, the workspace, the logs


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (any other name counts as reachable)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: treated as reachable from outside


def check_listen(host: str, settings: ApiSettings) -> None:
    """Refuse to listen beyond loopback while the keys file holds no key.

    Args:
        host: the address to listen on.
        settings: the API's settings (its keys file).

    Raises:
        ConfigurationError: ``host`` is not loopback and no API key exists.
    """
    if not _is_loopback(host) and not KeyStore(settings.keys_file).list():
        raise ConfigurationError(
            f"refusing to listen on {host}: no API key in {settings.keys_file}; create one with "
            "'da-sources api-keys create NAME' (or listen on 127.0.0.1)")


def _raise_file_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted`` (at most the hard limit); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def serve(host: str, port: int, settings: ApiSettings) -> None:
    """Run the standalone app under uvicorn, bounded as the module docstring says, until interrupted.

    Args:
        host: the address to listen on (beyond loopback only once an API key exists).
        port: the TCP port.
        settings: the API's settings.

    Raises:
        ConfigurationError: ``host`` is not loopback and no API key exists.
    """
    check_listen(host, settings)
    import uvicorn

    from connectors.api.app import create_app

    files = _raise_file_limit(settings.max_connections + SPARE_FILES)
    connections = min(settings.max_connections, max(64, files - SPARE_FILES))
    if connections < settings.max_connections:
        log.warning("open-file limit %d: at most %d connections", files, connections)
    protocol = http_protocol(connections, settings)
    app = create_app(settings)
    _freeze_startup_objects()
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                http=protocol, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES, backlog=2048)


def _freeze_startup_objects() -> None:
    """Keep the ~140,000 objects of the imports and the app out of every later garbage collection.

    A full collection scanned them all: ~80 ms with every request waiting, now and then under load (a p99
    spike); frozen, a full collection scans only what requests left behind (under 1 ms).
    """
    gc.collect()
    gc.freeze()


def http_protocol(max_connections: int, settings: ApiSettings) -> type[Any]:
    """The bounded protocol class on httptools (C) when installed, else on h11 (pure Python, ~2x slower).

    Args:
        max_connections: open connections at most.
        settings: the API's settings (the header and body deadlines).

    Returns:
        The protocol class, for ``uvicorn.run(http=...)``.
    """
    header, body = settings.header_timeout_seconds, settings.body_timeout_seconds
    try:
        import httptools  # noqa: F401
    except ImportError:
        return bounded_protocol(max_connections, header, body)
    from connectors.api.fast_protocol import bounded_httptools_protocol

    return bounded_httptools_protocol(max_connections, header, body, MAX_HEADER_BYTES)


def bounded_protocol(max_connections: int, header_timeout: float, body_timeout: float) -> type[Any]:
    """uvicorn's h11 protocol class with read deadlines and a connection cap (see the module docstring).

    Args:
        max_connections: open connections at most; one more closes the oldest waiting connection.
        header_timeout: seconds for a request's headers, from the connection opening or its first byte.
        body_timeout: seconds for a request's body, once its headers are in.

    Returns:
        The protocol class, for ``uvicorn.run(http=...)``.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(ReadDeadlines, H11Protocol):

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.opened_at = time.monotonic()
            self._expect("headers", header_timeout)
            if len(self.connections) > max_connections:
                self._close_oldest_waiting()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.IDLE:
                self._expect("headers", header_timeout)
            elif state is h11.SEND_BODY:
                self._expect("body", body_timeout)
            else:  # the whole request arrived (or the connection is done): nothing to wait for
                self._expect("", 0)

        def connection_lost(self, exc: Exception | None) -> None:
            self._expect("", 0)
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # arms the keep-alive timeout until the next request's first byte
            self._expect("", 0)

    return BoundedH11Protocol
