"""BatchedCalls: many blocking calls in few thread trips, each keeping its own result or error."""

from __future__ import annotations

import asyncio
import threading

import pytest

from connectors.landing.batches import MAX_BATCH, BatchedCalls


def test_calls_keep_their_own_results_and_errors_in_few_trips() -> None:
    threads: list[int] = []

    def square(n: int) -> int:
        threads.append(threading.get_ident())
        if n % 7 == 3:
            raise ValueError(f"no {n}")
        return n * n

    async def run() -> tuple[list[int | str], int]:
        calls = BatchedCalls(square)
        trips = 0
        original = calls._run_all

        def counted(args: list[int]) -> list[tuple[int | None, Exception | None]]:
            nonlocal trips
            trips += 1
            return original(args)

        calls._run_all = counted  # type: ignore[method-assign]

        async def one(n: int) -> int | str:
            try:
                return await calls.run(n)
            except ValueError as exc:
                return str(exc)

        results = await asyncio.gather(*(one(n) for n in range(200)))
        await calls.aclose()
        return list(results), trips

    results, trips = asyncio.run(run())
    assert results == [f"no {n}" if n % 7 == 3 else n * n for n in range(200)]
    assert trips <= 200 // MAX_BATCH + 2  # not one trip per call
    assert threading.get_ident() not in threads  # never on the event loop's thread


def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    release = threading.Event()

    def slow(n: int) -> int:
        release.wait(10)
        return n

    async def run() -> list[int]:
        calls = BatchedCalls(slow)
        first = asyncio.ensure_future(calls.run(1))
        await asyncio.sleep(0.05)  # the first trip is under way with call 1
        second, third = asyncio.ensure_future(calls.run(2)), asyncio.ensure_future(calls.run(3))
        await asyncio.sleep(0)
        second.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await second
        values = [await first, await third]
        await calls.aclose()
        return values

    assert asyncio.run(run()) == [1, 3]
