"""The credential store behind ``{"secret": NAME}`` references.

Two backends, never a plaintext one: :class:`KeyringStore` (the OS keyring) and
:class:`FernetFileStore` (one encrypted file); :func:`default_store` picks one and fails closed
without either. How each keeps secrets and how one is chosen: ``docs/design/secrets.md``.

Example:
    >>> store = FernetFileStore("/tmp/s.fernet", FernetFileStore.generate_key())
    >>> store.set("pg-password", "hunter2")
    >>> store.get("pg-password"), store.names()
    ('hunter2', ['pg-password'])
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from connectors.environment import read
from connectors.errors import ConfigurationError

FILE_ENV = "DA_SECRETS_FILE"
KEY_ENV = "DA_SECRETS_KEY"
BACKEND_ENV = "DA_SECRETS_BACKEND"
DEFAULT_FILE = "~/.config/da-sources/secrets.fernet"
KEYRING_SERVICE = "da-sources"
_KEYRING_INDEX = "__names__"  # keyring cannot list entries: the names are kept in one entry
_KEYRING_FILE_KEY = "__file_key__"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")

_NO_BACKEND = (
    "no credential store is available: set {key} to a Fernet key (create one with "
    "'da-sources secrets keygen') to use the encrypted file {file}, or install the keyring "
    "extra (pip install 'da-sources[keyring]') on a machine with a working OS keyring. "
    "Secrets are never stored in plaintext."
)


class SecretStoreError(ConfigurationError):
    """The credential store is unavailable, unreadable, or refused a name or value."""


class WritableSecretStore(Protocol):
    """A credential store: read, write (replaces), delete, list names."""

    def get(self, name: str) -> str | None:
        """The value stored under a name.

        Args:
            name: the secret's name.

        Returns:
            The value, or None when nothing is stored under ``name``.
        """
        ...

    def set(self, name: str, value: str) -> None:
        """Store a value under a name, replacing any previous one.

        Args:
            name: the secret's name (checked with :func:`check_name`).
            value: the plaintext, a non-empty string.
        """
        ...

    def delete(self, name: str) -> bool:
        """Remove a name and its value.

        Args:
            name: the secret's name.

        Returns:
            False when nothing was stored under ``name``.
        """
        ...

    def names(self) -> list[str]:
        """The stored names.

        Returns:
            The names, sorted; never the values.
        """
        ...


def check_name(name: str) -> str:
    """``name`` when it is a valid secret name (letters, digits, ``_ . : / @ -``).

    Args:
        name: a secret name, untrusted.

    Returns:
        ``name`` unchanged.

    Raises:
        SecretStoreError: not a string, a bad character, over 200 characters, or starting with ``__``.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("__"):
        raise SecretStoreError(
            f"invalid secret name {name!r}: use letters, digits and _ . : / @ - (at most 200)"
        )
    return name


# --- the encrypted file ---------------------------------------------------------


class FernetFileStore:
    """Secrets in one Fernet-encrypted JSON document on disk (mode 0600).

    Args:
        path: the file; its folder is created (mode 0700) on the first write.
        key: a urlsafe-base64 32-byte Fernet key (:meth:`generate_key`).
    """

    def __init__(self, path: str | os.PathLike[str], key: str | bytes) -> None:
        from cryptography.fernet import Fernet

        self.path = Path(path).expanduser()
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            raise SecretStoreError(
                f"{KEY_ENV} is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                "create one with 'da-sources secrets keygen'"
            ) from None

    @staticmethod
    def generate_key() -> str:
        """A new random Fernet key.

        Returns:
            The key as url-safe base64 text, ready for ``DA_SECRETS_KEY``.
        """
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    def __repr__(self) -> str:
        return f"FernetFileStore({str(self.path)!r})"

    def get(self, name: str) -> str | None:
        """The value stored under a name.

        Args:
            name: the secret's name.

        Returns:
            The value, or None when nothing is stored under ``name``.

        Raises:
            SecretStoreError: the file cannot be read or decrypted (wrong key, altered,
                or open to other users).
        """
        return self._read().get(name)

    def names(self) -> list[str]:
        """The stored names.

        Returns:
            The names, sorted; never the values.

        Raises:
            SecretStoreError: the store cannot be read.
        """
        return sorted(self._read())

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any previous value.

        Args:
            name: the secret's name (letters, digits and ``_ . : / @ -``, at most 200).
            value: the plaintext, a non-empty string.

        Raises:
            SecretStoreError: the name or value is invalid, or the store cannot be written.
        """
        check_name(name)
        if not isinstance(value, str) or not value:
            raise SecretStoreError(f"secret {name!r}: the value must be a non-empty string")
        with self._locked():
            document = self._read()
            document[name] = value
            self._write(document)

    def delete(self, name: str) -> bool:
        """Remove ``name`` and its value.

        Args:
            name: the secret's name.

        Returns:
            False when nothing was stored under ``name``.

        Raises:
            SecretStoreError: the store cannot be read or written.
        """
        with self._locked():
            document = self._read()
            if document.pop(name, None) is None:
                return False
            self._write(document)
            return True

    def _read(self) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            token = _read_private(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretStoreError(f"cannot read secrets file {str(self.path)!r}: {exc.strerror}") from None
        try:
            document = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise SecretStoreError(
                f"cannot decrypt secrets file {str(self.path)!r}: wrong {KEY_ENV}, or the file was altered"
            ) from None
        if not isinstance(document, dict):
            raise SecretStoreError(f"the secrets file {str(self.path)!r} is not a secrets document")
        return {str(k): str(v) for k, v in document.items()}

    def _write(self, document: dict[str, str]) -> None:
        token = self._fernet.encrypt(json.dumps(document, sort_keys=True).encode())
        atomic_write(self.path, token, mode=0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # a read-modify-write by two processes at once would lose one update without it
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            yield


def _read_private(path: Path) -> bytes:
    """The bytes of ``path``, refused when others may read or write it (as ssh does with keys).

    The file is encrypted, but whoever can read it can try the key they find
    elsewhere, and whoever can write it can replace every secret.

    Raises:
        SecretStoreError: the mode lets the group or others in; the message says how to fix it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode & 0o777
        if mode & 0o077:
            raise SecretStoreError(
                f"secrets file {str(path)!r} is open to other users (mode {mode:04o}); "
                f"it must be 0600: run chmod 600 {str(path)!r}"
            )
        return file.read()


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` (created 0600, with a 0700 folder if missing).

    Args:
        lock_path: the lock file.

    Returns:
        A context manager holding the lock inside its block.

    Raises:
        ConfigurationError: the lock file cannot be created or opened.
    """
    try:
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot lock {str(lock_path)!r}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data``: a ``mode`` temp beside it, fsync, rename, fsync the folder.

    Readers see the old or the new content, never a mix; a crash leaves at
    most a ``.~da-*.part`` temporary beside it.

    Args:
        path: the file to replace.
        data: its new content.
        mode: its permission bits (e.g. ``0o600``).

    Raises:
        OSError: the temporary could not be written, synced or renamed (it is removed).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".~da-{secrets.token_hex(8)}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed or widened the creation mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the OS keyring -------------------------------------------------------------


class KeyringBackend(Protocol):
    """What :class:`KeyringStore` needs of ``keyring`` (the module or a backend object)."""

    def get_password(self, service_name: str, username: str) -> str | None:
        """The password kept for a service and user name.

        Args:
            service_name: the keyring service (``da-sources``).
            username: the entry's name (a secret's name).

        Returns:
            The password, or None when there is no such entry.
        """
        ...

    def set_password(self, service_name: str, username: str, password: str) -> None:
        """Keep a password for a service and user name, replacing any previous one.

        Args:
            service_name: the keyring service (``da-sources``).
            username: the entry's name (a secret's name).
            password: the value to keep.
        """
        ...

    def delete_password(self, service_name: str, username: str) -> None:
        """Remove the entry for a service and user name.

        Args:
            service_name: the keyring service (``da-sources``).
            username: the entry's name (a secret's name).
        """
        ...


class KeyringStore:
    """Secrets in the OS keyring, under service ``da-sources``.

    Args:
        backend: the ``keyring`` module or a keyring backend (tests pass a fake).
    """

    def __init__(self, backend: KeyringBackend, service: str = KEYRING_SERVICE) -> None:
        self._backend = backend
        self._service = service

    def __repr__(self) -> str:
        return f"KeyringStore(service={self._service!r})"

    def get(self, name: str) -> str | None:
        """The value stored under a name.

        Args:
            name: the secret's name.

        Returns:
            The value, or None when nothing is stored under ``name``.

        Raises:
            SecretStoreError: the OS keyring refused the call.
        """
        value = self._call("get_password", name)
        return None if value is None else str(value)

    def names(self) -> list[str]:
        """The stored names.

        Returns:
            The names, sorted; never the values.

        Raises:
            SecretStoreError: the store cannot be read.
        """
        raw = self._call("get_password", _KEYRING_INDEX)
        return sorted(json.loads(raw)) if raw else []

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any previous value.

        Args:
            name: the secret's name (letters, digits and ``_ . : / @ -``, at most 200).
            value: the plaintext, a non-empty string.

        Raises:
            SecretStoreError: the name or value is invalid, or the store cannot be written.
        """
        check_name(name)
        if not isinstance(value, str) or not value:
            raise SecretStoreError(f"secret {name!r}: the value must be a non-empty string")
        self._call("set_password", name, value)
        self._save_names(set(self.names()) | {name})

    def delete(self, name: str) -> bool:
        """Remove ``name`` and its value.

        Args:
            name: the secret's name.

        Returns:
            False when nothing was stored under ``name``.

        Raises:
            SecretStoreError: the store cannot be read or written.
        """
        if self.get(name) is None:
            return False
        self._call("delete_password", name)
        self._save_names(set(self.names()) - {name})
        return True

    def _save_names(self, names: builtins.set[str]) -> None:
        self._call("set_password", _KEYRING_INDEX, json.dumps(sorted(names)))

    def _call(self, method: str, *args: str) -> Any:
        try:
            return getattr(self._backend, method)(self._service, *args)
        except Exception as exc:  # keyring backends raise their own types; none may leak a value
            raise SecretStoreError(f"the OS keyring refused {method}: {type(exc).__name__}") from None


def usable_keyring() -> KeyringBackend | None:
    """The ``keyring`` module when it is installed and its backend is a real keyring.

    Returns:
        The module, or None when it is missing, broken, or its backend is keyring's fail or null one.
    """
    try:
        import keyring
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration means no keyring, not a crash
        return None
    # keyring's fail and null backends (and an empty chainer) report priority <= 0
    if getattr(backend, "priority", 0) <= 0 or type(backend).__module__.startswith(
        ("keyring.backends.fail", "keyring.backends.null")
    ):
        return None
    module: KeyringBackend = keyring
    return module


# --- choosing a store -----------------------------------------------------------


def secrets_file_path() -> Path:
    """The encrypted file: ``$DA_SECRETS_FILE`` or ``~/.config/da-sources/secrets.fernet``.

    Returns:
        The path, with ``~`` expanded; not checked to exist.
    """
    return Path(read(FILE_ENV) or DEFAULT_FILE).expanduser()


def default_store() -> WritableSecretStore:
    """The store configured by the environment (how it chooses: ``docs/design/secrets.md``).

    Returns:
        A :class:`KeyringStore` or a :class:`FernetFileStore`.

    Raises:
        SecretStoreError: no backend is available, or the configured one is
            unusable; never falls back to plaintext.
    """
    backend = (read(BACKEND_ENV) or "").strip().lower()
    if backend not in ("", "keyring", "file"):
        raise SecretStoreError(f"{BACKEND_ENV} must be 'keyring' or 'file', not {backend!r}")
    key = read(KEY_ENV)
    # an explicit key selects the file; only look for a keyring when it may be used
    ring = None if key and backend != "keyring" else usable_keyring()
    if backend == "keyring" or (not backend and not key and ring is not None):
        if ring is None:
            raise SecretStoreError(f"{BACKEND_ENV}=keyring, but no working OS keyring is available")
        return KeyringStore(ring)
    if key:
        return FernetFileStore(secrets_file_path(), key)
    if ring is not None:
        return FernetFileStore(secrets_file_path(), _file_key_from_keyring(ring))
    raise SecretStoreError(_NO_BACKEND.format(key=KEY_ENV, file=str(secrets_file_path())))


def _file_key_from_keyring(ring: KeyringBackend) -> str:
    """The file's key kept in the keyring, created on first use."""
    store = KeyringStore(ring)
    key = store._call("get_password", _KEYRING_FILE_KEY)
    if not key:
        key = FernetFileStore.generate_key()
        store._call("set_password", _KEYRING_FILE_KEY, key)
    return str(key)
