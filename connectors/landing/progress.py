"""Progress of long fetches, reported to whoever is listening (a CLI bar, the Dagster run log).

Connectors call :func:`report_progress` as bytes land; a caller listens with
:func:`on_progress`. The listener lives in a context variable, so concurrent
fetches in other tasks or runs never see each other's listener.

Example:
    >>> with on_progress(lambda ident, done, total: print(ident, done, total)):
    ...     await connector.fetch_data("big.parquet", "/tmp/ws")
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[str, int, "int | None"], None]

_listener: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "da_progress", default=None
)


@contextlib.contextmanager
def on_progress(callback: ProgressCallback | None) -> Iterator[None]:
    """Send progress of fetches made inside this block to ``callback(identifier, done, total)``.

    Args:
        callback: called with the item, the bytes done and the total (None when unknown);
            None turns reporting off inside the block.

    Returns:
        A context manager; the previous listener is restored on exit.
    """
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def current_listener() -> ProgressCallback | None:
    """The listener of this context (capture it before handing work to a thread).

    Returns:
        The callback set by :func:`on_progress`, or None when nobody listens.
    """
    return _listener.get()


class RecentlyFinished:
    """The bytes of the last finished items, bounded: a listener counts a second final report once.

    An item's bytes are reported as they land and again, in full, once the
    landed file is checked (``connectors.checked_fetch``); a listener that sums
    finished items without keeping every one (flat memory at any count) asks
    here what it already counted. Both reports of an item come within one chunk
    of fetches, far fewer than ``size`` items apart.
    """

    def __init__(self, size: int = 16_384) -> None:
        self._size = size
        self._done: dict[str, int] = {}  # insertion-ordered: the oldest go first

    def pop(self, identifier: str) -> int:
        """Take back what was counted for ``identifier`` when it last finished.

        Args:
            identifier: The item.

        Returns:
            The bytes counted then, or 0 when it did not finish recently.
        """
        return self._done.pop(identifier, 0)

    def add(self, identifier: str, done: int) -> None:
        """Note that ``identifier`` finished; the oldest note goes past ``size`` notes.

        Args:
            identifier: The item.
            done: The bytes counted for it.
        """
        self._done[identifier] = done
        if len(self._done) > self._size:
            del self._done[next(iter(self._done))]


def report_progress(identifier: str, done: int, total: int | None) -> None:
    """Tell the listener, if any, that ``done`` of ``total`` bytes of ``identifier`` landed.

    Args:
        identifier: The item being fetched.
        done: Bytes landed so far.
        total: The item's size in bytes, or None when the source does not say.
    """
    listener = _listener.get()
    if listener is not None:
        listener(identifier, done, total)
