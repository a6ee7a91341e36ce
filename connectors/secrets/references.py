"""Secrets: references, the masked :class:`Secret` type, resolution and log redaction.

A source's config holds either literal values or *references*:
``{"env": "NAME"}`` (an environment variable) or ``{"secret": "NAME"}`` (the
credential store). References are resolved only when a connector connects and
the resolved values are never written back into the config.

Example:
    >>> s = Secret("hunter2")
    >>> f"{s!r} {s}"
    "Secret('**********') **********"
    >>> s.reveal()
    'hunter2'
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import string
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import unquote

from pydantic import GetCoreSchemaHandler
from pydantic_core import SchemaSerializer, core_schema

from connectors.errors import ConfigurationError

MASK = "**********"


class Secret:
    """A secret value that never shows itself.

    ``repr``, ``str``, ``format`` and logging show ``**********``. Pickling
    drops the value on purpose (an unpickled copy is masked and cannot be
    revealed): secrets cross process boundaries only as references.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plaintext. Call it only where the value is handed to an SDK.

        Returns:
            The secret value, unmasked.

        Raises:
            ConfigurationError: this copy was unpickled, so it holds no value; give the
                secret as a reference instead.
        """
        if self._value is None:
            raise ConfigurationError(
                "a literal secret does not survive pickling; give it as a reference "
                "({env: NAME} or {secret: NAME}) instead"
            )
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (None,))

    def __copy__(self) -> Secret:
        return self  # immutable; copying in-process must not go through pickling and lose the value

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):  # ``config["connection_string"] == "..."`` still works; in constant time
            return self._value is not None and hmac.compare_digest(self._value.encode(), other.encode())
        if not isinstance(other, Secret):
            return NotImplemented
        if self._value is None or other._value is None:
            return self._value is other._value
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        from_str = core_schema.no_info_plain_validator_function(_to_secret)
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=from_str,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: MASK),
        )


# a Secret inside an untyped dict (DataSourceConfig.config) is serialised by pydantic through
# this attribute: without it model_dump_json() fails, with it the value shows as the mask
Secret.__pydantic_serializer__ = SchemaSerializer(  # type: ignore[attr-defined]
    core_schema.any_schema(serialization=core_schema.plain_serializer_function_ser_schema(lambda s: MASK))
)


def _to_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise ValueError("must be a string or a secret reference")


# --- references ------------------------------------------------------------

REFERENCE_KINDS = ("env", "secret")


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a secret reference rather than a literal.

    Args:
        value: a config value, of any type.

    Returns:
        True for exactly ``{"env": "NAME"}`` or ``{"secret": "NAME"}`` (one key, a string name).
    """
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value)) in REFERENCE_KINDS
        and isinstance(next(iter(value.values())), str)
    )


class SecretStore(Protocol):
    """Where ``{"secret": NAME}`` references are looked up."""

    def get(self, name: str) -> str | None:
        """The value stored under a name.

        Args:
            name: the secret's name, as written in ``{"secret": NAME}``.

        Returns:
            The value, or None when nothing is stored under ``name``.
        """
        ...


_store: SecretStore | None = None


def set_secret_store(store: SecretStore | None) -> None:
    """Install the store that resolves ``{"secret": NAME}`` references, for this process.

    Args:
        store: any object with ``get(name) -> str | None``; None restores the default store.
    """
    global _store
    _store = store


def get_secret_store() -> SecretStore:
    """The installed store, or the default one.

    Returns:
        The store set with :func:`set_secret_store`, else the encrypted file store
        (or the OS keyring, where one is usable).
    """
    if _store is not None:
        return _store
    from connectors.secrets.store import default_store

    return default_store()


def resolve_reference(ref: Mapping[str, str], *, where: str) -> str:
    """The value a reference points at.

    Args:
        ref: ``{"env": NAME}`` or ``{"secret": NAME}``.
        where: the field, named in errors (never the value).

    Returns:
        The value.

    Raises:
        ConfigurationError: the variable is not set, or the secret is not in the store.
    """
    kind, name = next(iter(ref.items()))
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigurationError(f"{where}: environment variable {name} is not set")
        return value
    value = get_secret_store().get(name)
    if value is None:
        raise ConfigurationError(f"{where}: secret {name!r} is not in the credential store")
    return value


def resolve_config(config: Mapping[str, Any], *, source_id: str | None = None) -> dict[str, Any]:
    """A copy of ``config`` with every reference replaced by its value.

    Values of secret fields stay :class:`Secret` (wrapped again after resolution
    by the settings model); nothing resolved is stored back into ``config``.

    Args:
        config: a source's config, values possibly references.
        source_id: the source, named in errors.

    Returns:
        The resolved copy.

    Raises:
        ConfigurationError: a reference cannot be resolved (the message names the field).
    """
    prefix = f"source '{source_id}': " if source_id else ""
    return {
        key: resolve_reference(value, where=f"{prefix}config.{key}") if is_reference(value) else value
        for key, value in config.items()
    }


# --- redaction -------------------------------------------------------------

_QUOTED = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_SENSITIVE_NAMES = (
    r"(?:password|passwd|pwd|account_?key|sas_?token|connection_?string|client_?secret|secret|token|dsn)"
)
_CREDENTIAL_ASSIGNMENT = r"((?<![A-Za-z0-9_])[A-Za-z0-9_]*?(?:password|passwd|pwd)\s*=\s*)"

# Two patterns are matched by hand, not by one regex: a regex scanning from each of a long token's
# positions to its end is quadratic in a hostile 100 KB word; these scans are linear.
_TOKEN = re.compile(r"[^\s'\"]+")
_USER_COLON = re.compile(r"[^:/@]*:")
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")
# an '@' that ends a host's user:password: the segment before it (no space, quote, '@' or '/') is examined
_HOST_AT = re.compile(r"(?:(?<=[\s'\"@/])|^)([^\s'\"@/]*)@(?=[\w\[])")
_HOST_USER_START = re.compile(r"(?<![\w/:@.%+-])[\w.%+-]+:(?=.)", re.S)


def _mask_url_password(token: str) -> str:
    """``scheme://user:password@`` in one token masked, up to the token's last ``@``."""
    last_at = token.rfind("@")
    separator = token.find("://")
    while -1 < separator < last_at:
        colon = _USER_COLON.match(token, separator + 3, last_at)
        if colon is not None and _has_scheme(token, separator):
            return token[:colon.end()] + MASK + token[last_at:]
        separator = token.find("://", separator + 3)
    return token


def _has_scheme(token: str, separator: int) -> bool:
    """Whether a scheme ends at ``separator``: its run of scheme characters holds a letter at a word boundary."""
    start = separator
    while start > 0 and token[start - 1] in _SCHEME_CHARS:
        start -= 1
        if token[start].isalpha() and (start == 0 or not _is_word(token[start - 1])):
            return True
    return False


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _mask_host_password(match: re.Match[str]) -> str:
    """``user:password@host`` without a scheme, the password masked (the segment holds no ``@`` or ``/``)."""
    segment, start = match.group(1), match.start(1)
    found = _HOST_USER_START.search(match.string, start, match.end(1))
    if found is None:
        return match.group(0)
    return segment[:found.end() - start] + MASK + "@"


_REDACTIONS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # connection-string keys: AccountKey=...; SharedAccessSignature=...; Password=...
    (re.compile(r"(?i)\b(AccountKey|SharedAccessSignature|Password|Pwd)=([^;\s'\"]+)"), r"\1=" + MASK),
    # SAS query parameters, in URLs or alone (a bare token starts with sv=, sig may come first)
    (re.compile(r"(?i)(?<![A-Za-z0-9_%])(sig=)([^&;\s'\"]+)"), r"\1" + MASK),
    # user:password@ in DSNs and URLs; up to the last @ of the token, so a password holding
    # an '@' is masked whole (masking too much is harmless, too little is a leak)
    (_TOKEN, lambda match: _mask_url_password(match.group(0))),
    # the same without a scheme, as in a host setting: user:password@db.internal
    (_HOST_AT, lambda match: _mask_host_password(match)),
    # credentials in URL query strings other than a SAS sig: ?token=..., &api_key=..., &signature=...
    (
        re.compile(r"(?i)([?&;](?:[a-z_-]*token|[a-z_-]*secret|signature|api_?key|access_?key|password)=)"
                   r"([^&;\s'\"#]+)"),
        r"\1" + MASK,
    ),
    # key=value DSNs and environment variables: password=..., PGPASSWORD="...", pwd = '...'
    (
        re.compile(r"(?i)" + _CREDENTIAL_ASSIGNMENT + "(" + _QUOTED + r"|[^\s'\";]+)"),
        r"\1" + MASK,
    ),
    # mapping reprs and JSON: 'password': '...', "account_key": "...", sas_token: ...
    (
        re.compile(r"(?i)(['\"]?\b" + _SENSITIVE_NAMES + r"['\"]?\s*:\s*)(" + _QUOTED + r")"),
        r"\1'" + MASK + "'",
    ),
    # HTTP authorization headers: Authorization: SharedKey acct:sig / Bearer eyJ...
    (re.compile(r"(?i)(\bAuthorization['\"]?\s*[:=]\s*['\"]?)([A-Za-z]+ )?[^\s'\",}]+"), r"\1\2" + MASK),
]


def redact(text: str) -> str:
    """``text`` with keys, SAS signatures, passwords and tokens replaced by ``**********``.

    Args:
        text: any text bound for a log, an error or an answer (percent-encoded parts are decoded to check).

    Returns:
        ``text`` with each secret part masked; unchanged when it holds none.

    Example:
        >>> redact("postgresql://app:hunter2@db/x?sslmode=require")
        'postgresql://app:**********@db/x?sslmode=require'
    """
    text = _ENCODED.sub(_redact_encoded, text)  # decoded before deciding: %73ig= is sig=
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


# a token starts after a space, a quote or the start: the lookbehind keeps this linear (without it,
# every position of a long token scans to its end, quadratic in a 100 KB argument)
_ENCODED = re.compile(r"(?<![^\s'\"])[^\s'\"]*%[0-9A-Fa-f]{2}[^\s'\"]*")


def _redact_encoded(match: re.Match[str]) -> str:
    """A percent-encoded token, decoded (twice at most: double encoding) and redacted when it hides a secret."""
    token = match.group(0)
    decoded = unquote(unquote(token))
    masked = decoded
    for pattern, replacement in _REDACTIONS:
        masked = pattern.sub(replacement, masked)
    return masked if masked != decoded else token


def carries_secret(text: str) -> bool:
    """Whether ``text`` holds a part :func:`redact` masks: a SAS ``sig=``, a URL or host password
    (``user:pw@``), ``AccountKey=``, ``password=``...

    Such a value is a secret wherever it is configured, whatever the field is called
    (``account_url``, ``host``...): it is masked, never written to the sources file,
    and refused as a literal by Dagster.

    Args:
        text: a config value; anything but a string carries none.

    Returns:
        True when :func:`redact` would change ``text``.

    Example:
        >>> carries_secret("https://acct.blob.core.windows.net/?sv=2024&sig=abc"), carries_secret("db:5432")
        (True, False)
    """
    return isinstance(text, str) and redact(text) != text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record it sees.

    The message, the formatted exception (an SDK error's text can carry a
    connection string) and the stack are all redacted before any handler
    formats the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record, nor leak its args
            message, record.args = str(record.msg), None
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def get_logger(name: str) -> logging.Logger:
    """A library logger with the redacting filter installed.

    Args:
        name: the logger's name, usually ``__name__``.

    Returns:
        ``logging.getLogger(name)``, with one :class:`RedactingFilter` added (never twice).
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
