"""The one place where Azure SDK and aiohttp errors become connector errors.

Both the SDK (listing, properties) and the fast data path (plain ranged GETs
with aiohttp) end up here. Messages are built from the status, the service's
error code and names we chose; an SDK or aiohttp message is never copied,
because it can carry a URL with a SAS signature (``sig=``) or a header.

Example:
    >>> async with mapped_errors("listing container 'data'", source_id="s"):
    ...     await container.get_container_properties()
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from connectors.errors import (
    AuthenticationError,
    ConnectionError,
    DataFetchError,
    DataSourceError,
    IntegrityError,
    NotFoundError,
    WorkspaceError,
)

# The names other packages (connectors.s3, connectors.api) use; the rest serve this package only.
__all__ = ["BlobChangedError", "HttpStatusError", "TruncatedError", "mapped_errors", "translate"]

# socket-level failures only: a local OSError (disk full) is the workspace's, not the network's
_SocketError = builtins.ConnectionError
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def _sdk_errors() -> Any:
    """``azure.core.exceptions`` if anything imported it, else None.

    Not imported here: the S3 path shares this module and never loads the Azure SDK
    (about 0.1 s of start-up), and an SDK exception cannot exist before its module does.
    """
    return sys.modules.get("azure.core.exceptions")


class HttpStatusError(Exception):
    """A non-success answer on the data path; internal, always translated by :func:`translate`.

    The class attributes word the translated message for the service that answered
    (S3 has its own subclass: its credentials and missing things have other names).
    """

    credentials = "the account key, SAS token or credential"
    missing = {"ContainerNotFound": "the container", "BlobNotFound": "the blob"}

    def __init__(self, status: int, code: str | None, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} {code or ''}".strip())
        self.status = status
        self.code = code
        self.retry_after = retry_after


class BlobChangedError(IntegrityError):
    """The blob got a new etag while it was being downloaded (HTTP 412 on If-Match)."""


class TruncatedError(IntegrityError):
    """A response ended before the bytes its headers announced."""


def error_code(value: str | None) -> str | None:
    """The service's error code (``BlobNotFound``) if it looks like one; never free text."""
    return value if value and _CODE.match(value) else None


def translate(exc: BaseException, what: str, source_id: str | None) -> DataSourceError:
    """The most specific connector error for ``exc``, raised while doing ``what``.

    Args:
        exc: An HTTP status error, aiohttp, socket or SDK error (a connector error is returned as is).
        what: What was being done, for the message.
        source_id: The source to name in the error.

    Returns:
        The error to raise: its class says what a caller can do (retry, fix the credentials...).
    """
    if isinstance(exc, DataSourceError):
        return exc
    status, code = _status_and_code(exc)
    if status is not None:
        wording = exc if isinstance(exc, HttpStatusError) else HttpStatusError
        return _from_status(status, code, what, source_id, wording)
    if isinstance(exc, aiohttp.ClientPayloadError) and _caused_by_reset(exc):
        return ConnectionError(f"{what}: the connection was reset mid-response", source_id=source_id)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TruncatedError(f"{what}: the response body ended early", source_id=source_id)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connect_timeout, not read_timeout: say which
        return ConnectionError(f"{what}: timed out connecting to the service", source_id=source_id)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | aiohttp.ServerTimeoutError):
        return ConnectionError(f"{what}: timed out waiting for the service", source_id=source_id)
    if isinstance(exc, aiohttp.ClientConnectorError):  # the endpoint's host and port are not secrets
        return ConnectionError(f"{what}: cannot connect to {exc.host}:{exc.port} ({_os_reason(exc.os_error)})",
                               source_id=source_id)
    az = _sdk_errors()
    if isinstance(exc, aiohttp.ClientError | _SocketError) or (
            az is not None and isinstance(exc, az.ServiceRequestError | az.ServiceResponseError)):
        return ConnectionError(f"{what}: connection failed ({type(exc).__name__})", source_id=source_id)
    if isinstance(exc, OSError):  # what is left of OSError is local: the workspace's disk
        return WorkspaceError(f"{what}: cannot write into the workspace ({exc.strerror or type(exc).__name__})",
                              source_id=source_id)
    if az is not None and isinstance(exc, az.AzureError):
        return DataFetchError(f"{what}: the storage SDK failed ({type(exc).__name__})", source_id=source_id)
    return DataFetchError(f"{what}: unexpected {type(exc).__name__}", source_id=source_id)


def _os_reason(error: OSError) -> str:
    # os.strerror, not the exception's text: asyncio's text repeats the address, the resolver's is fine
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or type(error).__name__


def _caused_by_reset(exc: BaseException) -> bool:
    # aiohttp names the socket error only in the payload error's text (inspected, never copied)
    if "ConnectionResetError" in str(exc):
        return True
    seen: BaseException | None = exc
    for _ in range(8):  # the chain is short; the bound guards against a cycle
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None:
            return False
        if isinstance(seen, _SocketError) and not isinstance(seen, BrokenPipeError):
            return True
    return False


def _implied_status(az: Any) -> tuple[tuple[type[BaseException], int], ...]:
    # SDK classes that imply a status even when the exception carries no response
    return ((az.ClientAuthenticationError, 403), (az.ResourceNotFoundError, 404), (az.ResourceModifiedError, 412))


def _status_and_code(exc: BaseException) -> tuple[int | None, str | None]:
    if isinstance(exc, HttpStatusError):
        return exc.status, error_code(exc.code)
    az = _sdk_errors()
    if az is None or not isinstance(exc, az.HttpResponseError):
        return None, None
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # StorageErrorCode is a str enum: its value is the wire code
    status = exc.status_code or (getattr(exc.response, "status_code", None) if exc.response else None)
    if status is None:
        status = next((s for cls, s in _implied_status(az) if isinstance(exc, cls)), None)
    return status, error_code(code if isinstance(code, str) else None)


def _from_status(status: int, code: str | None, what: str, source_id: str | None,
                 wording: HttpStatusError | type[HttpStatusError]) -> DataSourceError:
    answered = f"HTTP {status}" + (f" {code}" if code else "")
    if status in (401, 403):
        return AuthenticationError(f"{what}: access denied ({answered}); check {wording.credentials}",
                                   source_id=source_id)
    if status == 404:
        missing = wording.missing.get(code or "", "it")
        return NotFoundError(f"{what}: {missing} does not exist ({answered})", source_id=source_id)
    if status == 412:
        return BlobChangedError(f"{what}: the blob changed while it was read ({answered})", source_id=source_id)
    if status in (408, 429) or status >= 500:
        return ConnectionError(f"{what}: the service is unavailable ({answered})", source_id=source_id)
    return DataFetchError(f"{what}: the service refused the request ({answered})", source_id=source_id)


def retry_after_of(exc: BaseException) -> float | None:
    """The Retry-After the service asked for, in seconds, when it gave one."""
    if isinstance(exc, HttpStatusError):
        return exc.retry_after
    cause = exc.__cause__
    return retry_after_of(cause) if cause is not None and cause is not exc else None


@contextlib.asynccontextmanager
async def mapped_errors(what: str, *, source_id: str | None) -> AsyncIterator[None]:
    """Translate any SDK / aiohttp / socket error raised inside into a connector error.

    Connector errors and cancellation pass through unchanged.

    Args:
        what: What was being done, for the message (``"listing container 'x'"``).
        source_id: The source to name in the error.

    Returns:
        An async context manager.

    Raises:
        DataSourceError: The translation of whatever the block raised (:func:`translate`).
    """
    try:
        yield
    except asyncio.CancelledError:
        raise
    except DataSourceError:
        raise
    except Exception as exc:
        raise translate(exc, what, source_id) from exc
