"""The exception tree of the connectors.

Every error a connector raises is a :class:`DataSourceError`; SDK errors are
translated in one place per connector and chained with ``raise ... from exc``.
Messages never contain secrets.

::

    DataSourceError                  base; .retryable says whether retrying can help
    ├── ConfigurationError           bad sources file / config / unresolved secret reference
    ├── ConnectionError              service unreachable, reset, timed out   (retryable)
    ├── AuthenticationError          wrong key / password, expired SAS       (terminal)
    └── DataFetchError               a read or a landing failed
        ├── NotFoundError            item, container, table, schema missing  (terminal)
        ├── IntegrityError           size or checksum mismatch, changed mid-read (retryable)
        ├── UnsafeNameError          a name that would escape the workspace or the root
        │   └── NameCollisionError   two remote names would land on one local file
        └── WorkspaceError           the local side failed: disk full, permissions

``ConnectionError`` deliberately shadows the builtin inside this package: it is
the seed's public name. Errors are picklable (Dagster ships them between
processes) and keep ``retryable`` and ``source_id`` across pickling.
"""

from __future__ import annotations

from typing import Any


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


class ConnectionError(DataSourceError):  # noqa: A001 - the seed's public name
    """The service cannot be reached, or the connection broke or timed out."""

    retryable = True


class AuthenticationError(DataSourceError):
    """The service refused the credentials (wrong key or password, expired SAS)."""


class DataFetchError(DataSourceError):
    """Reading an item or landing it in the workspace failed."""


class NotFoundError(DataFetchError):
    """The item, container, schema or table does not exist."""


class IntegrityError(DataFetchError):
    """The bytes received do not match what the source promised (size, checksum, version)."""

    retryable = True


class UnsafeNameError(DataFetchError):
    """A name would escape the workspace or the source root, or cannot be a local file name."""


class NameCollisionError(UnsafeNameError):
    """Two different remote names would land on the same local file."""


class WorkspaceError(DataFetchError):
    """Writing into the workspace failed (disk full, permissions, a file in the way)."""


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the operation that raised ``exc`` can succeed."""
    return isinstance(exc, DataSourceError) and exc.retryable
