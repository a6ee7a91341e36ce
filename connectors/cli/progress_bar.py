"""The terminal progress bar of ``da-sources fetch``."""

from __future__ import annotations

import shutil
import threading
import time
from typing import IO

from connectors.cli.common import fit, human_size
from connectors.landing.progress import RecentlyFinished


class ProgressBar:
    """A one-line progress bar on a terminal: items done, bytes done, the current item.

    It is the ``on_progress`` listener (called from worker threads, hence the
    lock) and is told when each item finishes; redraws at most 10 times a second.
    """

    def __init__(self, stream: IO[str], items: int, width: int | None = None) -> None:
        self.stream = stream
        self.items = items
        self.done_items = 0
        self._bytes: dict[str, tuple[int, int | None]] = {}  # items under way only: finished ones are summed
        self._done_bytes = self._total_bytes = 0  # running sums: a draw costs the same at 10 or 1,000,000 items
        self._finished = RecentlyFinished()
        self._current = ""
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._width = width

    def __call__(self, identifier: str, done: int, total: int | None) -> None:
        with self._lock:
            if identifier in self._bytes:
                before_done, before_total = self._bytes.pop(identifier)
            else:  # a second final report of a finished item replaces what it counted, never adds to it
                before_done = before_total = self._finished.pop(identifier)
            self._done_bytes += done - before_done
            self._total_bytes += (total or done) - (before_total or before_done)
            if total is None or done < total:
                self._bytes[identifier] = (done, total)
            else:
                self._finished.add(identifier, done)
            self._current = identifier
            self._draw(force=False)

    def item_done(self, identifier: str) -> None:
        """Count one more finished item (landed or failed).

        Args:
            identifier: The item that finished (not shown: the bar shows the item whose bytes came last).
        """
        with self._lock:
            self.done_items += 1
            self._draw(force=self.done_items == self.items)  # the final state is always shown

    def render(self) -> str:
        """The bar's text, cut to the terminal width.

        Returns:
            One line: the bar, items done of all, bytes done of all, the current item.
        """
        done, total = self._done_bytes, self._total_bytes
        fraction = self.done_items / self.items if self.items else 1.0
        if self.items == 1 and total:
            fraction = done / total  # one large item: show its bytes
        filled = int(fraction * 20)
        text = (f"[{'#' * filled}{'.' * (20 - filled)}] {self.done_items}/{self.items} items "
                f"{human_size(done)}/{human_size(total)} {self._current}")
        width = self._width or shutil.get_terminal_size((80, 24)).columns
        return fit(text, width - 1)

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self.stream.write("\r\x1b[K" + self.render())
        self.stream.flush()

    def close(self) -> None:
        """Leave the terminal on a fresh line."""
        with self._lock:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
