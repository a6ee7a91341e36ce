"""The credential store: encrypted file, keyring, choice of backend, failing closed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.errors import ConfigurationError
from connectors.secrets import store as secret_store
from connectors.secrets.references import get_secret_store, resolve_reference, set_secret_store
from connectors.secrets.store import (
    FernetFileStore,
    KeyringStore,
    SecretStoreError,
    default_store,
    usable_keyring,
)

REPO = Path(__file__).resolve().parents[3]



@pytest.fixture
def key() -> str:
    return FernetFileStore.generate_key()


@pytest.fixture
def file_store(tmp_path: Path, key: str) -> FernetFileStore:
    return FernetFileStore(tmp_path / "cfg" / "secrets.fernet", key)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No store configured, no keyring, the file under tmp_path."""
    for name in (secret_store.KEY_ENV, secret_store.BACKEND_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(secret_store.FILE_ENV, str(tmp_path / "secrets.fernet"))
    monkeypatch.setattr(secret_store, "usable_keyring", lambda: None)
    set_secret_store(None)
    yield monkeypatch
    set_secret_store(None)


class FakeKeyring:
    """keyring's get/set/delete_password, in memory."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service_name: str, username: str) -> str | None:
        return self.entries.get((service_name, username))

    def set_password(self, service_name: str, username: str, password: str) -> None:
        self.entries[(service_name, username)] = password

    def delete_password(self, service_name: str, username: str) -> None:
        del self.entries[(service_name, username)]


# --- the encrypted file -----------------------------------------------------------


def test_file_store_round_trip_and_no_plaintext_on_disk(file_store: FernetFileStore, canary: str) -> None:
    file_store.set("pg-password", canary)
    assert file_store.get("pg-password") == canary
    raw = file_store.path.read_bytes()
    assert canary.encode() not in raw
    assert b"pg-password" not in raw  # names are encrypted too
    assert stat.S_IMODE(file_store.path.stat().st_mode) == 0o600


def test_file_store_mode_is_0600_whatever_the_umask(file_store: FernetFileStore) -> None:
    old = os.umask(0)
    try:
        file_store.set("a", "v")
    finally:
        os.umask(old)
    assert stat.S_IMODE(file_store.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_file_others_may_open_is_refused(file_store: FernetFileStore, canary: str, mode: int) -> None:
    file_store.set("pg-password", canary)
    os.chmod(file_store.path, mode)
    for read in (lambda: file_store.get("pg-password"), file_store.names, lambda: file_store.set("x", "y")):
        with pytest.raises(SecretStoreError, match=rf"open to other users \(mode {mode:04o}\).*chmod 600") as e:
            read()
        assert canary not in str(e.value)
    os.chmod(file_store.path, 0o600)
    assert file_store.get("pg-password") == canary
    os.chmod(file_store.path, 0o400)  # read-only for its owner is fine
    assert file_store.names() == ["pg-password"]


def test_the_cli_reports_a_store_others_may_read(tmp_path: Path, key: str, canary: str) -> None:
    store = FernetFileStore(tmp_path / "s.fernet", key)
    store.set("pw", canary)
    os.chmod(store.path, 0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DA_SECRETS_FILE": str(store.path),
           "DA_SECRETS_KEY": key, "DA_SECRETS_BACKEND": "file"}
    result = subprocess.run([str(REPO / ".venv" / "bin" / "da-sources"), "secrets", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "mode 0644" in result.stderr and "chmod 600" in result.stderr
    assert "pw" not in result.stdout and canary not in result.stdout + result.stderr


def test_setting_again_replaces_the_value(file_store: FernetFileStore) -> None:
    file_store.set("token", "old-value")
    file_store.set("token", "new-value")
    assert file_store.get("token") == "new-value"
    assert file_store.names() == ["token"]


def test_names_and_delete(file_store: FernetFileStore) -> None:
    assert file_store.names() == [] and file_store.get("x") is None
    file_store.set("b", "1")
    file_store.set("a", "2")
    assert file_store.names() == ["a", "b"]
    assert file_store.delete("a") is True
    assert file_store.delete("a") is False
    assert file_store.names() == ["b"]


def test_writes_leave_no_temporary(file_store: FernetFileStore) -> None:
    for index in range(5):
        file_store.set(f"n{index}", "v")
    leftovers = [p.name for p in file_store.path.parent.iterdir() if p.name.startswith(".~da-")]
    assert leftovers == []


def test_wrong_key_fails_closed_without_showing_values(file_store: FernetFileStore, canary: str) -> None:
    file_store.set("x", canary)
    other = FernetFileStore(file_store.path, FernetFileStore.generate_key())
    with pytest.raises(SecretStoreError, match="cannot decrypt") as caught:
        other.get("x")
    assert canary not in str(caught.value)


def test_tampered_file_is_refused(file_store: FernetFileStore) -> None:
    file_store.set("x", "value")
    data = bytearray(file_store.path.read_bytes())
    data[40] ^= 1
    file_store.path.write_bytes(bytes(data))
    with pytest.raises(SecretStoreError, match="altered"):
        file_store.get("x")


def test_invalid_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match="not a valid Fernet key"):
        FernetFileStore(tmp_path / "s", "not-a-key")


@pytest.mark.parametrize("name", ["", "has space", "__names__", "x" * 300, "a\nb"])
def test_invalid_names_are_refused(file_store: FernetFileStore, name: str) -> None:
    with pytest.raises(SecretStoreError, match="invalid secret name"):
        file_store.set(name, "v")


def test_empty_value_is_refused(file_store: FernetFileStore) -> None:
    with pytest.raises(SecretStoreError, match="non-empty"):
        file_store.set("a", "")


def test_two_processes_writing_at_once_both_land(file_store: FernetFileStore, key: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        from connectors.secrets.store import FernetFileStore
        store = FernetFileStore(sys.argv[1], sys.argv[2])
        for i in range(25):
            store.set(f"{sys.argv[3]}-{i}", f"value-{i}")
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(file_store.path), key, tag], cwd=REPO)
        for tag in ("first", "second")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    names = file_store.names()
    assert len(names) == 50
    assert {n.split("-")[0] for n in names} == {"first", "second"}


# --- the keyring ------------------------------------------------------------------


def test_keyring_store_round_trip_names_and_rotation(canary: str) -> None:
    ring = FakeKeyring()
    store = KeyringStore(ring)
    store.set("azure", canary)
    store.set("azure", canary + "-rotated")
    store.set("pg", "x")
    assert store.get("azure") == canary + "-rotated"
    assert store.names() == ["azure", "pg"]
    assert canary not in str(store.names()) and canary not in repr(store)
    assert store.delete("pg") and not store.delete("pg")
    assert store.names() == ["azure"]


def test_keyring_errors_become_store_errors_without_values(canary: str) -> None:
    class Broken(FakeKeyring):
        def set_password(self, service_name: str, username: str, password: str) -> None:
            raise RuntimeError(f"backend exploded with {password}")

    with pytest.raises(SecretStoreError) as caught:
        KeyringStore(Broken()).set("x", canary)
    assert canary not in str(caught.value)


def _fake_keyring_module(monkeypatch: pytest.MonkeyPatch, priority: float, module: str) -> None:
    backend_cls = type("Keyring", (FakeKeyring,), {"priority": priority, "__module__": module})
    fake = types.ModuleType("keyring")
    fake.get_keyring = backend_cls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)


def test_fail_backend_is_not_a_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_keyring_module(monkeypatch, 0, "keyring.backends.fail")
    assert usable_keyring() is None


def test_null_backend_is_not_a_keyring_even_with_a_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_keyring_module(monkeypatch, 1, "keyring.backends.null")
    assert usable_keyring() is None


def test_real_backend_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_keyring_module(monkeypatch, 5, "keyring.backends.SecretService")
    assert usable_keyring() is sys.modules["keyring"]


def test_missing_keyring_package_means_no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # import raises ImportError
    assert usable_keyring() is None


# --- choosing the store -----------------------------------------------------------


def test_no_backend_fails_closed_with_a_clear_message(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match="no credential store is available") as caught:
        default_store()
    assert "DA_SECRETS_KEY" in str(caught.value) and "plaintext" in str(caught.value)
    assert not (tmp_path / "secrets.fernet").exists()


def test_secret_reference_fails_closed_without_a_backend(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="no credential store"):
        resolve_reference({"secret": "x"}, where="config.password")


def test_key_in_the_environment_selects_the_file(clean_env: pytest.MonkeyPatch, key: str, canary: str) -> None:
    clean_env.setenv(secret_store.KEY_ENV, key)
    store = default_store()
    assert isinstance(store, FernetFileStore)
    store.set("pw", canary)
    assert resolve_reference({"secret": "pw"}, where="x") == canary  # credentials uses the same store
    store.set("pw", canary + "2")  # rotation: the next resolution sees it
    assert get_secret_store().get("pw") == canary + "2"


def test_keyring_is_preferred_without_a_key(clean_env: pytest.MonkeyPatch) -> None:
    ring = FakeKeyring()
    clean_env.setattr(secret_store, "usable_keyring", lambda: ring)
    assert isinstance(default_store(), KeyringStore)


def test_file_backend_takes_its_key_from_the_keyring(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ring = FakeKeyring()
    clean_env.setattr(secret_store, "usable_keyring", lambda: ring)
    clean_env.setenv(secret_store.BACKEND_ENV, "file")
    store = default_store()
    assert isinstance(store, FernetFileStore)
    store.set("a", "v")
    assert default_store().get("a") == "v"  # the same key comes back from the keyring
    assert len(ring.entries) == 1


def test_keyring_backend_requested_but_missing(clean_env: pytest.MonkeyPatch, key: str) -> None:
    clean_env.setenv(secret_store.BACKEND_ENV, "keyring")
    clean_env.setenv(secret_store.KEY_ENV, key)
    with pytest.raises(SecretStoreError, match="no working OS keyring"):
        default_store()


def test_unknown_backend_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(secret_store.BACKEND_ENV, "plaintext")
    with pytest.raises(SecretStoreError, match="must be 'keyring' or 'file'"):
        default_store()
