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
    """Send progress of fetches made inside this block to ``callback(identifier, done, total)``."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def current_listener() -> ProgressCallback | None:
    """The listener of this context (capture it before handing work to a thread)."""
    return _listener.get()


def report_progress(identifier: str, done: int, total: int | None) -> None:
    """Tell the listener, if any, that ``done`` of ``total`` bytes of ``identifier`` landed."""
    listener = _listener.get()
    if listener is not None:
        listener(identifier, done, total)
