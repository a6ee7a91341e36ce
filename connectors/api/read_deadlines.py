"""What both of ``da-sources serve``'s HTTP/1.1 protocols (h11 and httptools) share: read deadlines and the
connection cap's choice of whom to close."""

from __future__ import annotations

import asyncio
from typing import Any


class ReadDeadlines:
    """A mixin before uvicorn's protocol class: one deadline per part of a request being read.

    ``_expect("headers" | "body", seconds)`` arms it, ``_expect("", 0)`` clears it; a part that
    does not arrive in time closes the connection.
    """

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: Any
    cycle: Any
    _deadline: asyncio.TimerHandle | None = None
    _reading: str = ""  # "headers", "body", or "" (nothing pending from the client)
    opened_at: float = 0.0

    def waiting(self) -> bool:
        """Whether the connection may be closed to make room: no request of it is being handled.

        Returns:
            True while its headers or body are pending, or it idles between requests.
        """
        return self.cycle is None or bool(self.cycle.response_complete)

    def _expect(self, what: str, seconds: float) -> None:
        if what == self._reading:
            return  # the deadline runs from when this part began, not from the last byte
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._reading = what
        if what:
            self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _close_oldest_waiting(self) -> None:
        waiting = [c for c in self.connections if isinstance(c, ReadDeadlines) and c.waiting()]
        if waiting:
            oldest = min(waiting, key=lambda c: c.opened_at)
            oldest.transport.close()
