"""Progress of long fetches, written to the run log: items done, bytes, rate.

The connectors report bytes through ``connectors.landing.progress``; a
:class:`ProgressLog` listens and writes at most one line per ``interval``
seconds, so a large sync neither floods the event log nor stays silent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from connectors.landing.progress import RecentlyFinished

LogFn = Callable[[str], None]


class ProgressLog:
    """Counts items and bytes across concurrent fetches; logs a line now and then."""

    def __init__(self, log: LogFn, total_items: int, interval: float = 5.0) -> None:
        self._log = log
        self._total_items = total_items
        self._interval = interval
        self._lock = threading.Lock()  # connectors report from worker threads
        self._bytes: dict[str, int] = {}  # bytes of the items under way
        self._bytes_total = 0  # a running sum: a summary costs the same at 10 or 1,000,000 items
        self._finished = RecentlyFinished()
        self._items_done = 0
        self._started = time.monotonic()
        self._last_line = self._started

    def set_total(self, total_items: int) -> None:
        """The number of items this run handles, once it is known (after listing).

        Args:
            total_items: Items to land.
        """
        with self._lock:
            self._total_items = total_items

    def on_bytes(self, identifier: str, done: int, total: int | None) -> None:
        """The ``connectors.landing.progress`` listener: ``done`` bytes of ``identifier`` have landed.

        Args:
            identifier: The item being landed.
            done: Bytes landed so far.
            total: Its size, when known.
        """
        with self._lock:
            before = self._bytes.pop(identifier, None)
            self._bytes_total += done - (self._finished.pop(identifier) if before is None else before)
            if total is None or done < total:
                self._bytes[identifier] = done
            else:  # finished: in the sum, and remembered a while so its second final report is not added again
                self._finished.add(identifier, done)
        self._maybe_log()

    def item_done(self) -> None:
        """One item finished (landed, skipped or failed)."""
        self.items_done(1)

    def items_done(self, count: int) -> None:
        """``count`` items finished at once (a sync's unchanged ones: one call, not one per item).

        Args:
            count: How many.
        """
        with self._lock:
            self._items_done += count
        self._maybe_log()

    def summary(self) -> str:
        """What has landed so far, in one line.

        Returns:
            ``"3/10 items, 12.0 MB, 4.0 MB/s"``.
        """
        with self._lock:
            done, total_bytes = self._items_done, self._bytes_total
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = total_bytes / elapsed
        return f"{done}/{self._total_items} items, {_size(total_bytes)}, {_size(rate)}/s"

    def _maybe_log(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_line < self._interval:
                return
            self._last_line = now
        self._log("progress: " + self.summary())


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GB"
