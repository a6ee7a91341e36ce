"""HTTP status codes for the library's errors, and the API's own refusals.

=====================================  ======
error                                   status
=====================================  ======
bad input (``UnsafeNameError``, ...)      400
refused by the operator's policy          403
``ConfigurationError`` of a stored source 400
unknown source / item (``NotFoundError``) 404
id taken, thread ended, file changed      409
over a size or count limit                413
too many jobs running                     429
remote refused or failed (auth, I/O)      502
remote did not answer in time             504
=====================================  ======
"""

from __future__ import annotations

import re

from connectors.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    DataSourceError,
    NotFoundError,
    SizeLimitError,
    UnsafeNameError,
    WorkspaceError,
)
from connectors.reach import ReachRefusedError
from connectors.secrets.references import redact

_TIMED_OUT = re.compile(r"(?i)time(d)?[ -]?out|within \d|no answer")


class ApiError(Exception):
    """A refusal with its status and one-line detail (never a secret)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, *,
                 literal: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.literal = literal  # our own fixed text (no input in it): answered as written, not redacted


def status_of(exc: BaseException) -> int:
    """The HTTP status that says what went wrong (the table in the module docstring).

    Args:
        exc: an error a route let through: the library's, or a timeout.

    Returns:
        The status; 500 for an error the table does not know.
    """
    if isinstance(exc, TimeoutError):
        return 504
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ReachRefusedError):  # the operator's policy, not the caller's input
        return 403
    if isinstance(exc, SizeLimitError):
        return 413
    if isinstance(exc, UnsafeNameError | ConfigurationError):
        return 400
    if isinstance(exc, WorkspaceError):
        return 500
    if isinstance(exc, ConnectionError):
        return 504 if _TIMED_OUT.search(exc.message) or _caused_by_timeout(exc) else 502
    if isinstance(exc, DataFetchError) and "statement_timeout" in exc.message:
        return 504
    if isinstance(exc, AuthenticationError | DataFetchError | DataSourceError):
        return 502
    return 500


def detail_of(exc: BaseException) -> str:
    """The one-line ``detail`` answered for an error.

    Args:
        exc: an error a route let through.

    Returns:
        The library's message on one line, redacted (prefixed "the source failed:" for a remote's
        failure); a fixed text for a timeout; "internal error" for anything else, which may hold anything.
    """
    if isinstance(exc, TimeoutError):
        return "the source did not answer in time"
    if isinstance(exc, DataSourceError):
        text = " ".join(str(exc).split())
        if isinstance(exc, AuthenticationError | ConnectionError) or status_of(exc) == 502:
            text = f"the source failed: {text}"
        return redact(text)
    return "internal error"


def _caused_by_timeout(exc: BaseException) -> bool:
    seen = 0
    cause = exc.__cause__
    while cause is not None and seen < 10:
        if isinstance(cause, TimeoutError):
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False
