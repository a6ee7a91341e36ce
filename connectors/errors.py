"""The exception tree of the connectors.

Every error a connector raises is a :class:`DataSourceError`; SDK errors are
translated in one place per connector and chained with ``raise ... from exc``.
Messages never contain secrets and are bounded (:func:`bound_message`).

::

    DataSourceError                  base; .retryable says whether retrying can help
    ├── ConfigurationError           bad sources file / config / unresolved secret reference
    ├── ConnectionError              service unreachable, reset, timed out   (retryable)
    ├── AuthenticationError          wrong key / password, expired SAS       (terminal)
    └── DataFetchError               a read or a landing failed
        ├── NotFoundError            item, container, table, schema missing  (terminal)
        │   └── OutOfScopeError      outside the source's prefix / pattern: same answer whether it exists
        ├── IntegrityError           size or checksum mismatch, changed mid-read (retryable)
        ├── UnsafeNameError          a name that would escape the workspace or the root
        │   └── NameCollisionError   two remote names would land on one local file
        ├── WorkspaceError           the local side failed: disk full, permissions
        └── SizeLimitError           a landing passed its byte cap while streaming (terminal)

Why ``ConnectionError`` shadows the builtin, pickling, message bounds: ``docs/design/errors.md``.
"""

from __future__ import annotations

import re
from typing import Any

NAME_LIMIT = 200  # characters of a quoted name kept in a message
MESSAGE_LIMIT = 1500  # characters of a whole message; longer ones keep head and tail
_HEAD, _TAIL = 1000, 300
# a repr-style quoted string ('...' or "..."): reprs escape newlines, so a match never spans lines
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
# a name echoed without quotes: a long run with no space and no quote (no word of prose is that long)
_LONG_RUN = re.compile(r"[^\s'\"]{" + str(NAME_LIMIT + 1) + ",}")


def bound_message(message: str) -> str:
    """``message`` with long quoted names shortened and its length capped; applying it twice changes nothing.

    Args:
        message: An error message that may quote hostile names of any length.

    Returns:
        The message, at most about 1,500 characters (head and tail kept).

    Example:
        >>> bound_message(f"blob {'x' * 5000!r} does not exist")[:12]
        "blob 'xxxxxx"
    """
    shortened = _LONG_RUN.sub(_shorten_run, _QUOTED.sub(_shorten_quoted, message))
    if len(shortened) <= MESSAGE_LIMIT:
        return shortened
    return f"{shortened[:_HEAD]} … {shortened[-_TAIL:]}"


def _shorten_run(match: re.Match[str]) -> str:
    text = match.group(0)
    return f"{text[: NAME_LIMIT - 1]}… ({len(text):,} characters)"


def _shorten_quoted(match: re.Match[str]) -> str:
    text = match.group(0)
    if len(text) <= NAME_LIMIT + 2:
        return text
    # quote + NAME_LIMIT - 1 characters + ellipsis + quote: NAME_LIMIT + 2 long, so a second pass keeps it
    return f"{text[:NAME_LIMIT]}…{text[0]} ({len(text) - 2:,} characters)"


class DataSourceError(Exception):
    """Base of every connector error.

    Args:
        message: what went wrong, for a person; never contains a secret.
        source_id: the source the error belongs to, when known.
        retryable: overrides the class default (``retryable``).
    """

    retryable: bool = False

    def __init__(
        self, message: str, *, source_id: str | None = None, retryable: bool | None = None
    ) -> None:
        message = bound_message(message)
        super().__init__(message)
        self.message = message
        self.source_id = source_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        if self.source_id and not self.message.startswith(f"source '{self.source_id}'"):
            return f"source '{self.source_id}': {self.message}"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"source_id": self.source_id, "retryable": self.retryable}
        return (_rebuild_error, (type(self), self.message, state))


def _rebuild_error(cls: type[DataSourceError], message: str, state: dict[str, Any]) -> DataSourceError:
    return cls(message, **state)


class ConfigurationError(DataSourceError):
    """The configuration of a source is invalid or a secret reference cannot be resolved."""


class ConnectionError(DataSourceError):  # noqa: A001 - the original interface's public name
    """The service cannot be reached, or the connection broke or timed out."""

    retryable = True


class AuthenticationError(DataSourceError):
    """The service refused the credentials (wrong key or password, expired SAS)."""


class DataFetchError(DataSourceError):
    """Reading an item or landing it in the workspace failed."""


class NotFoundError(DataFetchError):
    """The item, container, schema or table does not exist."""


class OutOfScopeError(NotFoundError):
    """The item lies outside what the source serves (its prefix, pattern, schemas).

    Raised before any request, with the same message whether or not the item
    exists, so a scope never reveals what lies beyond it.
    """


class IntegrityError(DataFetchError):
    """The bytes received do not match what the source promised (size, checksum, version)."""

    retryable = True


class UnsafeNameError(DataFetchError):
    """A name would escape the workspace or the source root, or cannot be a local file name."""


class NameCollisionError(UnsafeNameError):
    """Two different remote names would land on the same local file."""


class WorkspaceError(DataFetchError):
    """Writing into the workspace failed (disk full, permissions, a file in the way)."""


class SizeLimitError(DataFetchError):
    """A file being landed passed its byte cap (:func:`connectors.landing.atomic.landing_byte_cap`).

    Raised before the bytes past the cap are written; the temporary is removed.
    """


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the operation that raised ``exc`` can succeed.

    Args:
        exc: any exception.

    Returns:
        True for a :class:`DataSourceError` marked retryable (timeouts, throttling,
        a dropped connection); False for everything else.
    """
    return isinstance(exc, DataSourceError) and exc.retryable
