"""An API instance over temporary files: its client, a manage key, a read-only key, and the canary checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from connectors.api import create_app
from connectors.api.api_keys import KeyStore
from connectors.api.api_settings import ApiSettings
from connectors.api.policy import ApiPolicy
from connectors.registry import SourceRegistry
from connectors.secrets.store import FernetFileStore


@dataclass
class Api:
    """A running app (in-process) and what a test needs around it; every response body is kept."""

    client: TestClient
    settings: ApiSettings
    manage: dict[str, str]
    read: dict[str, str]
    seen: list[str] = field(default_factory=list)

    def call(self, method: str, url: str, *, key: str = "manage", expect: int | None = None, **kwargs: Any) -> Any:
        headers = {"manage": self.manage, "read": self.read, "none": {}}[key]
        response = self.client.request(method, url, headers=headers, **kwargs)
        self.seen.append(json.dumps(dict(response.headers)) + response.text)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.text)
        return response

    def operator_add(self, source: dict[str, Any]) -> None:
        """Add a source to the sources file as the operator does (the CLI): operator knobs allowed."""
        SourceRegistry(self.settings.sources_file).add(source)

    def audit(self) -> list[dict[str, Any]]:
        path = self.settings.audit_log
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def assert_nowhere(self, secret: str) -> None:
        """``secret`` is in no response (headers, bodies), audit line, sources file or keys file."""
        for text in self.seen:
            assert secret not in text
        for path in (self.settings.audit_log, self.settings.sources_file, self.settings.keys_file):
            if path.exists():
                assert secret not in path.read_text(), path


def open_policy(tmp_path: Path, *types: str) -> ApiPolicy:
    """What the operator of a test server allows: the test's folder, the harness's loopback services, ``types``.

    The default policy is closed (no root, no host); a test lists what it serves, as an operator would.
    """
    return ApiPolicy.from_mapping({"local_roots": [str(tmp_path)], "hosts": ["127.0.0.1"], "ports": "any",
                                   "schemes": ["http", "https", "postgresql"],
                                   "connector_types": ["azure_blob", "postgresql", "local_file", *types]})


def make_settings(tmp_path: Path, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "sources_file": tmp_path / "sources.yaml", "keys_file": tmp_path / "api-keys.json",
        "audit_log": tmp_path / "audit.jsonl", "workspace_base": tmp_path / "workspace", "cache_seconds": 60.0,
        "policy": open_policy(tmp_path), **overrides}
    return ApiSettings(**values)


@pytest.fixture
def secret_store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An encrypted credential store of the test's own (write-only secrets go there)."""
    return use_own_secret_store(tmp_path, monkeypatch)


def use_own_secret_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "secrets.fernet"
    monkeypatch.setenv("DA_SECRETS_FILE", str(path))
    monkeypatch.setenv("DA_SECRETS_KEY", FernetFileStore.generate_key())
    monkeypatch.setenv("DA_SECRETS_BACKEND", "file")
    return path


def start_api(tmp_path: Path, **overrides: Any) -> Iterator[Api]:
    settings = make_settings(tmp_path, **overrides)
    keys = KeyStore(settings.keys_file)
    _, manage = keys.create("admin")
    _, read = keys.create("reader", read_only=True)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Api(client, settings, {"Authorization": f"Bearer {manage}"}, {"Authorization": f"Bearer {read}"})


@pytest.fixture
def api(tmp_path: Path, secret_store_env: Path) -> Iterator[Api]:
    yield from start_api(tmp_path)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A local folder: a.csv, b.parquet, 2024/q1.csv, 2024/q2.csv, notes.txt."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "data"
    (root / "2024").mkdir(parents=True)
    (root / "a.csv").write_text("x,y\n" + "".join(f"{i},{i * 2}\n" for i in range(30)))
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), root / "b.parquet")
    (root / "2024" / "q1.csv").write_text("q\n1\n")
    (root / "2024" / "q2.csv").write_text("q\n2\n")
    (root / "notes.txt").write_text("hello")
    return root


def local_source(root: Path, source_id: str = "docs", **config: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "local_file", "name": "Docs", "config": {"root": str(root), **config}}
