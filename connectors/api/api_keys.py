"""API keys: created once, stored hashed, checked in constant time, revocable without a restart.

Keys (``dsk_``) and the thread tokens a ``--can-mint`` key mints (``dst_``) are kept as SHA-256
hashes in the keys file, which is re-read when it changes. Why a fast hash is enough, and what a
thread token may do: ``docs/design/api.md``.

Example:
    >>> store = KeyStore("/tmp/keys.json")
    >>> record, key = store.create("deepanalyze")
    >>> store.authenticate(key).id == record.id
    True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from builtins import list as List
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from connectors.errors import ConfigurationError, NotFoundError
from connectors.secrets.store import atomic_write, file_lock

KEY_PREFIX = "dsk_"
THREAD_TOKEN_PREFIX = "dst_"  # noqa: S105 (a prefix, not a secret)
MAX_TOKEN_TTL_SECONDS = 24 * 3600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: ``read_only`` keys browse, preview and fetch; the others also manage sources.

    ``can_mint``: the key may mint thread tokens. A thread token has ``thread_id``, ``sources`` and
    ``expires_at`` (unix s) and may only attach those sources' data to that thread.
    """

    id: str
    name: str
    read_only: bool
    created_at: int
    sha256: str
    can_mint: bool = False
    thread_id: str | None = None
    sources: List[str] | None = None
    expires_at: int | None = None
    minted_by: str | None = None

    @property
    def scope(self) -> str:
        """``thread``, or ``read``/``manage`` with ``+mint`` when the key may mint thread tokens."""
        if self.thread_id is not None:
            return "thread"
        return ("read" if self.read_only else "manage") + ("+mint" if self.can_mint else "")

    def expired(self, now: float | None = None) -> bool:
        """Whether this is a thread token past its time to live (keys never expire).

        Args:
            now: the time to judge at, in Unix seconds; None: the current time.

        Returns:
            True for a thread token whose ``expires_at`` has come.
        """
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    def public(self) -> dict[str, Any]:
        """What may be shown of the key (``api-keys list``, answers): everything but the hash.

        Returns:
            ``id``, ``name``, ``scope``, ``created_at``; for a thread token also ``thread_id``,
            ``sources`` and ``expires_at``.
        """
        shown = {"id": self.id, "name": self.name, "scope": self.scope, "created_at": self.created_at}
        if self.thread_id is not None:
            shown.update(thread_id=self.thread_id, sources=self.sources, expires_at=self.expires_at)
        return shown


def _hash_key(key: str) -> str:
    """The SHA-256 hex digest stored in place of a key (the key is random and long: a fast hash suffices)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyStore:
    """The keys file: API keys and thread tokens, stored hashed (mode 0600), safe to share between processes.

    Args:
        path: the keys file (``$DA_API_KEYS_FILE``); it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._path = str(self.path)
        self._cache: tuple[tuple[int, int, int], list[ApiKey]] | None = None
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"

    def list(self) -> List[ApiKey]:
        """Every key and thread token, oldest first (the file is re-read only when it changed).

        Returns:
            The stored records; empty when there is no file.

        Raises:
            ConfigurationError: the file cannot be read or parsed.
        """
        try:
            stat = os.stat(self._path)  # a str: pathlib's stat costs as much again, on every request
        except FileNotFoundError:
            return []
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._cache_lock:
            if self._cache is None or self._cache[0] != stamp:
                self._cache = (stamp, self._read())
            return list(self._cache[1])

    def create(self, name: str, *, read_only: bool = False, can_mint: bool = False) -> tuple[ApiKey, str]:
        """A new API key, stored hashed.

        Args:
            name: a unique name: 1-64 letters, digits, spaces or ``_ . @ -``, starting with a letter or digit.
            read_only: the key may browse, preview and fetch, but not manage sources.
            can_mint: the key may mint thread tokens (DeepAnalyze's side).

        Returns:
            The stored record, and the key itself: shown once, never stored.

        Raises:
            ConfigurationError: the name is invalid or taken, or the file cannot be read or written.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError("a key name is 1-64 letters, digits, spaces or _ . @ -, starting with "
                                     "a letter or digit")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(f"key-{secrets.token_hex(8)}", name, read_only, int(time.time()), _hash_key(key),
                        can_mint=can_mint)
        with self._changing() as keys:
            if any(k.name == name for k in keys):
                raise ConfigurationError(f"an API key named {name!r} exists; revoke it first or pick another name")
            keys.append(record)
        return record, key

    def mint_thread_token(self, minter: ApiKey, thread_id: str, sources: List[str],
                          ttl_seconds: int) -> tuple[ApiKey, str]:
        """A thread token for one thread and the listed sources; expired tokens are dropped from the file.

        Args:
            minter: the key minting it; it must have ``can_mint`` and be no thread token itself.
            thread_id: the only thread the token may attach data to.
            sources: the only source ids it may read from.
            ttl_seconds: its time to live, 1 to 86,400 seconds.

        Returns:
            The stored record, and the token itself (``dst_...``): shown once, never stored.

        Raises:
            ConfigurationError: ``minter`` may not mint, or the time to live is out of range.
        """
        if not minter.can_mint or minter.thread_id is not None:
            raise ConfigurationError(f"API key {minter.id} may not mint thread tokens (make one with --can-mint)")
        if not 0 < ttl_seconds <= MAX_TOKEN_TTL_SECONDS:
            raise ConfigurationError(f"ttl_seconds must be 1 to {MAX_TOKEN_TTL_SECONDS}")
        token = THREAD_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = int(time.time())
        token_id = f"tok-{secrets.token_hex(8)}"
        record = ApiKey(token_id, f"thread token {token_id} by {minter.id}", True, now, _hash_key(token),
                        thread_id=thread_id, sources=sorted(set(sources)), expires_at=now + ttl_seconds,
                        minted_by=minter.id)
        with self._changing() as keys:
            keys[:] = [k for k in keys if not k.expired(now)]
            keys.append(record)
        return record, token

    def revoke(self, id_or_name: str) -> ApiKey:
        """Remove a key; the thread tokens it minted stop working with it.

        Args:
            id_or_name: the key's id (``key-...``) or its name.

        Returns:
            The removed record.

        Raises:
            NotFoundError: no key has that id or name.
        """
        with self._changing() as keys:
            for index, key in enumerate(keys):
                if id_or_name in (key.id, key.name):
                    return keys.pop(index)
        raise NotFoundError(f"no API key {id_or_name!r} in {str(self.path)!r}")

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key a caller presented, checked in constant time against every stored hash.

        Args:
            presented: the bearer token as sent (untrusted).

        Returns:
            Its record, or None when it matches no key or its minting key was revoked
            (an expired token is returned: the caller answers 401 with why).
        """
        digest = _hash_key(presented)
        keys = self.list()
        found: ApiKey | None = None
        for key in keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        if found is not None and found.minted_by is not None and all(k.id != found.minted_by for k in keys):
            return None  # revoking a key revokes the thread tokens it minted
        return found

    def _read(self) -> List[ApiKey]:
        try:
            document = json.loads(self.path.read_text())
            return [ApiKey(**entry) for entry in document.get("keys", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"cannot read the API keys file {str(self.path)!r}: "
                                     f"{type(exc).__name__}") from None

    def _changing(self) -> _Change:
        return _Change(self)


class _Change:
    """The keys under the file lock, written back atomically (mode 0600) when the block succeeds."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.lock = file_lock(store.path.with_name(store.path.name + ".lock"))

    def __enter__(self) -> List[ApiKey]:
        self.store.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock.__enter__()
        self.keys = self.store._read()
        return self.keys

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                text = json.dumps({"keys": [asdict(k) for k in self.keys]}, indent=2)
                atomic_write(self.store.path, text.encode(), mode=0o600)
        finally:
            self.lock.__exit__(exc_type, exc, tb)
