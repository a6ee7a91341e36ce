"""Many small blocking calls in few trips to a thread: :class:`BatchedCalls`.

A trip to a worker thread (``asyncio.to_thread``) costs more than reading a
4 KiB file: futures chained across threads, a wake-up of the event loop, lock
hand-offs. Fetching 10,000 small files that way spent about a sixth of its CPU on
the trips. A :class:`BatchedCalls` runs the calls waiting for it in one trip,
each keeping its own result or error, while the calls made during a trip wait
for the next one (so batches grow with how slow the work is).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")
MAX_BATCH = 64  # calls per trip at most


class BatchedCalls(Generic[A, R]):
    """``await calls.run(arg)`` runs ``function(arg)`` in a thread, batched with the other calls waiting.

    Every call runs in the context (context variables) of the first call of its batch: use it for calls
    made within one context (one fetch), as :meth:`connectors.local_file.LocalFileConnector.fetch_many` does.
    """

    def __init__(self, function: Callable[[A], R]) -> None:
        self._function = function
        self._queued: list[tuple[A, asyncio.Future[R]]] = []
        self._trips: asyncio.Task[None] | None = None

    async def run(self, arg: A) -> R:
        """Run ``function(arg)`` in the next trip to a thread.

        Args:
            arg: What the function is called with.

        Returns:
            What the function returned for ``arg`` (its exception is raised here instead).
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((arg, future))
        if self._trips is None or self._trips.done():
            self._trips = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
            try:
                outcomes = await asyncio.to_thread(self._run_all, [arg for arg, _ in batch])
            except BaseException:  # the task was cancelled (the loop is closing): no caller waits forever
                for _, future in batch + self._queued:
                    future.cancel()
                self._queued = []
                raise
            for (_, future), (value, error) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller was cancelled
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)  # type: ignore[arg-type]

    def _run_all(self, args: list[A]) -> list[tuple[R | None, Exception | None]]:
        outcomes: list[tuple[R | None, Exception | None]] = []
        for arg in args:
            try:
                outcomes.append((self._function(arg), None))
            except Exception as exc:
                outcomes.append((None, exc))
        return outcomes

    async def aclose(self) -> None:
        """Wait for the trip under way, if any (its calls' callers were cancelled: nothing left running)."""
        if self._trips is not None:
            with contextlib.suppress(BaseException):
                await self._trips
