"""Running the async connectors from Dagster's sync entry points (sensors).

Assets and ops may be ``async def`` and run on the step's loop; a sensor is
sync, so it calls :func:`run_coroutine`, which starts a loop of its own and
refuses to run inside a running one: nesting loops would block the outer loop
and hide the mistake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class NestedLoopError(RuntimeError):
    """``run_coroutine`` was called while an event loop is running in this thread."""


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a new event loop and return its result.

    Args:
        coro: The coroutine to run (a sensor's or a CLI command's async work).

    Returns:
        What the coroutine returned.

    Raises:
        NestedLoopError: an event loop is already running here; ``await`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()  # never awaited: close it so Python does not warn about it
    raise NestedLoopError("run_coroutine() called from a running event loop; await the coroutine instead")
