"""The one place psycopg, pool and pyarrow errors become ``DataSourceError`` (mixed into the connector).

Most specific first; no message carries the password or the DSN: known secret values are masked
and a failed connect quotes nothing of the DSN (libpq's messages echo its fragments) and is not
chained, so no cause carries them into Dagster's run storage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
import pyarrow as pa
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import PoolTimeout

from connectors.base import DataSourceConfig
from connectors.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    DataSourceError,
    NotFoundError,
)
from connectors.postgresql import session
from connectors.postgresql.export import CopyCancelled
from connectors.secrets.references import MASK, is_reference, redact
from connectors.settings import PostgreSQLSettings

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

_AUTH_HINTS = ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
               "role \"", "password is required", "scram")
_NOT_FOUND = (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName, pg_errors.UndefinedObject)
_RETRYABLE_CLASSES = ("08", "53", "57P", "40")


class TranslatedErrors:
    """Error translation of :class:`~connectors.postgresql.PostgreSQLConnector`."""

    _settings: PostgreSQLSettings | None
    _secrets: tuple[str, ...]
    config: DataSourceConfig

    if TYPE_CHECKING:

        @property
        def source_id(self) -> str: ...

        def resolve_settings(self) -> Any: ...

    @contextlib.contextmanager
    def _translated(self, action: str, subject: str | None = None) -> Iterator[None]:
        """Map psycopg, pool and pyarrow errors to the connector's tree, most specific first."""
        connect_error: DataSourceError | None = None
        try:
            yield
        except DataSourceError as exc:
            exc.source_id = exc.source_id or self.source_id
            raise
        except PoolTimeout as exc:
            raise ConnectionError(f"{action}: no connection to the server within the connect timeout "
                                  "(server down or unreachable?)", source_id=self.source_id) from exc
        except CopyCancelled:
            raise asyncio.CancelledError from None
        except psycopg.Error as exc:
            if action != "connect":
                self._raise_translated(exc, action, subject)
            connect_error = self._connect_error(exc)
        except pa.ArrowException as exc:
            raise DataFetchError(f"{self._where(action, subject)}: cannot convert to Parquet: "
                                 f"{self._scrub(str(exc))}", source_id=self.source_id) from exc
        except (OSError, TimeoutError) as exc:
            text = self._scrub(str(exc) or type(exc).__name__)
            if action != "connect":
                raise ConnectionError(f"{action}: {text}", source_id=self.source_id) from exc
            connect_error = ConnectionError(f"connect: {session.unquoted(text, self._public_values())}",
                                            source_id=self.source_id)
        if connect_error is not None:
            raise connect_error  # unchained: libpq's text quotes DSN fragments (see connect)

    def _raise_translated(self, exc: psycopg.Error, action: str, subject: str | None) -> NoReturn:
        message = f"{self._where(action, subject)}: {self._scrub(_first_lines(exc))}"
        state = exc.sqlstate or ""
        error: DataSourceError
        if state.startswith("28") or (not state and any(h in str(exc) for h in _AUTH_HINTS)):
            error = AuthenticationError(message)
        elif isinstance(exc, _NOT_FOUND):
            error = NotFoundError(message)
        elif isinstance(exc, pg_errors.QueryCanceled) and "statement timeout" in str(exc):
            error = DataFetchError(f"{self._where(action, subject)}: statement_timeout "
                                   f"({self._timeout_text()}) reached", retryable=False)
        elif isinstance(exc, pg_errors.LockNotAvailable):
            error = DataFetchError(f"{self._where(action, subject)}: lock_timeout ({self._lock_timeout_text()}) "
                                   "reached: another session holds a lock on it; try again later", retryable=True)
        elif "cannot insert multiple commands into a prepared statement" in str(exc):
            error = DataFetchError(f"{self._where(action, subject)}: the query holds more than one statement; "
                                   "give exactly one (a SELECT, VALUES, TABLE or WITH ... SELECT), without ';' "
                                   "between statements", retryable=False)
        elif isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            error = DataFetchError(f"{message} (reads run in a read-only transaction; writes are refused)")
        elif state.startswith(_RETRYABLE_CLASSES) or (not state and isinstance(exc, psycopg.OperationalError)):
            error = ConnectionError(message)
        else:
            error = DataFetchError(message)
        error.source_id = self.source_id
        raise error from exc

    def _connect_error(self, exc: psycopg.Error) -> DataSourceError:
        """A failed connect, quoting nothing of the DSN, and not chained: libpq messages echo
        DSN fragments (the password of a malformed one), and a chained cause would carry
        them into Dagster's run storage."""
        text = self._scrub(session.unquoted(str(exc), self._public_values()))
        if isinstance(exc, psycopg.ProgrammingError):
            return ConfigurationError(f"config.dsn: {text}", source_id=self.source_id)
        state = exc.sqlstate or ""
        if state.startswith("28") or (not state and any(h in str(exc) for h in _AUTH_HINTS)):
            return AuthenticationError(f"connect: {text}", source_id=self.source_id)
        if "invalid" in text and "value" in text:  # libpq checks option values when connecting
            return ConfigurationError(f"config.dsn: {text}", source_id=self.source_id)
        return ConnectionError(f"connect: {text}", source_id=self.source_id,
                               retryable=not isinstance(exc, pg_errors.InvalidCatalogName))

    def _public_values(self) -> frozenset[str]:
        """Host, port, database and user given as their own literal keys: what a connect error may name
        (a referenced value may be a secret: it stays quoted out)."""
        settings = self._settings or self._resolved_quietly()
        if settings is None:
            return frozenset()
        literal = [k for k in ("host", "port", "dbname", "user") if not is_reference(self.config.config.get(k))]
        return frozenset(str(v) for v in (getattr(settings, k) for k in literal) if v)

    def _resolved_quietly(self) -> PostgreSQLSettings | None:
        with contextlib.suppress(DataSourceError):
            resolved: PostgreSQLSettings = self.resolve_settings()
            return resolved
        return None

    def _where(self, action: str, subject: str | None) -> str:
        return f"{action} {subject!r}" if subject else action

    def _lock_timeout_text(self) -> str:
        timeout = self._settings.lock_timeout if self._settings else None
        return f"{timeout:g} s" if timeout else "server setting"

    def _timeout_text(self) -> str:
        timeout = self._settings.statement_timeout if self._settings else None
        return f"{timeout:g} s" if timeout else "server setting"

    def _scrub(self, text: str) -> str:
        """``text`` without any secret: redacted patterns, then every known secret value masked."""
        text = redact(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def secret_values(settings: PostgreSQLSettings) -> tuple[str, ...]:
    """The password and DSN values to mask in messages, longest first."""
    values: list[str] = []
    if settings.password is not None:
        values.append(settings.password.reveal())
    if settings.dsn is not None:
        dsn = settings.dsn.reveal()
        values.append(dsn)
        with contextlib.suppress(psycopg.Error):
            values.append(str(conninfo_to_dict(dsn).get("password") or ""))
    return tuple(sorted((v for v in values if v), key=len, reverse=True))


def _first_lines(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
