"""Bounded retries of Azure (and S3) requests: backoff with jitter, Retry-After, a time window."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from connectors.azure_blob.errors import retry_after_of, translate
from connectors.errors import DataSourceError
from connectors.secrets.references import get_logger

log = get_logger(__name__)

MAX_BACKOFF = 4.0  # seconds, cap of the exponential backoff between attempts
MAX_RETRY_AFTER = 30.0  # seconds; a longer Retry-After is not worth waiting for
RETRY_WINDOW = 60.0  # seconds of waiting one operation may spend across all its retries

T = TypeVar("T")


class RetryBudget:
    """Bounded retries for one operation: at most ``retries`` attempts more, and ``window`` seconds of waiting."""

    def __init__(self, retries: int, window: float = RETRY_WINDOW) -> None:
        self._left = retries
        self._attempt = 0
        self._deadline = time.monotonic() + window

    async def pause(self, error: DataSourceError, retry_after: float | None) -> bool:
        """Wait before the next attempt, if one is left.

        Args:
            error: The translated failure of the last attempt.
            retry_after: Seconds the service asked to wait (Retry-After), or None: exponential backoff.

        Returns:
            True after waiting; False (at once) when ``error`` is terminal or the budget is spent.
        """
        if not error.retryable or self._left <= 0:
            return False
        delay = retry_after if retry_after is not None else self._backoff()
        if delay > MAX_RETRY_AFTER or time.monotonic() + delay > self._deadline:
            return False
        self._left -= 1
        self._attempt += 1
        log.info("retrying in %.2f s after: %s", delay, error)
        await asyncio.sleep(delay)
        return True

    def _backoff(self) -> float:
        # full jitter: concurrent ranges that failed together do not retry in lockstep
        return float(random.uniform(0.05, min(MAX_BACKOFF, 0.2 * 2**self._attempt)))


async def with_retries(attempt: Callable[[], Awaitable[T]], what: str, source_id: str | None, retries: int) -> T:
    """``attempt()``, again after each transient failure while the :class:`RetryBudget` lasts.

    Every attempt is bounded by the session's timeouts, so an operation against a silent server
    gives up after at most ``retries + 1`` read timeouts plus the backoff between them.

    Args:
        attempt: One try of the operation.
        what: What is being done, for the error message.
        source_id: The source to name in the error.
        retries: How many attempts may follow the first.

    Returns:
        What the first successful attempt returned.

    Raises:
        DataSourceError: The last failure, translated (:func:`connectors.azure_blob.errors.translate`).
    """
    budget = RetryBudget(retries)
    while True:
        try:
            return await attempt()
        except Exception as exc:
            error = translate(exc, what, source_id)
            if not await budget.pause(error, retry_after_of(exc)):
                if error is exc:
                    raise
                raise error from exc
