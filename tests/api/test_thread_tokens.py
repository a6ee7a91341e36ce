"""Thread tokens: minted for one thread by a key allowed to, they attach listed sources' data to that thread only.

docs/RELIABILITY.md row 41.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from connectors.api.api_keys import KeyStore
from tests.api.conftest import Api, local_source


def _setup(api: Api, data_root: Path) -> tuple[str, dict[str, str]]:
    """Sources docs and other, thread-a's folder, and a minting key's header."""
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    api.call("POST", "/v1/data-sources", json=local_source(data_root, "other"), expect=201)
    for thread in ("thread-a", "thread-b"):
        (api.settings.workspace_base / thread).mkdir(parents=True)
    _, key = KeyStore(api.settings.keys_file).create("deepanalyze", read_only=True, can_mint=True)
    return key, {"Authorization": f"Bearer {key}"}


def _mint(client: TestClient, headers: dict[str, str], thread: str = "thread-a", **body: Any) -> Any:
    return client.post(f"/v1/threads/{thread}/tokens", headers=headers, json={"sources": ["docs"], **body})


def _attach(client: TestClient, token: str, thread: str = "thread-a", source: str = "docs") -> Any:
    return client.post(f"/v1/threads/{thread}/data", headers={"Authorization": f"Bearer {token}"},
                       json={"references": [{"source_id": source, "path": "a.csv"}]})


def test_a_thread_token_attaches_its_sources_to_its_thread(api: Api, data_root: Path) -> None:
    _, minter = _setup(api, data_root)
    answer = _mint(api.client, minter, ttl_seconds=600).json()
    assert answer["thread_id"] == "thread-a" and answer["sources"] == ["docs"]
    assert answer["expires_at"] - time.time() <= 600 and answer["token"].startswith("dst_")
    response = _attach(api.client, answer["token"])
    assert response.status_code == 200, response.text
    assert "a.csv" in response.json()["manifest"]
    assert (api.settings.workspace_base / "thread-a" / "a.csv").is_file()
    assert answer["token"] not in api.settings.keys_file.read_text()  # stored hashed


def test_a_thread_token_may_not_reach_another_thread_or_source(api: Api, data_root: Path) -> None:
    _, minter = _setup(api, data_root)
    token = _mint(api.client, minter).json()["token"]
    assert _attach(api.client, token, thread="thread-b").status_code == 403
    assert _attach(api.client, token, source="other").status_code == 403
    assert not (api.settings.workspace_base / "thread-b" / "a.csv").exists()
    assert not (api.settings.workspace_base / "thread-a" / "a.csv").exists()


def test_a_thread_token_cannot_manage_browse_mint_or_upload(api: Api, data_root: Path) -> None:
    _, minter = _setup(api, data_root)
    headers = {"Authorization": f"Bearer {_mint(api.client, minter).json()['token']}"}
    calls = [("GET", "/v1/data-sources", None), ("GET", "/v1/data-sources/docs/browse", None),
             ("POST", "/v1/data-sources", local_source(data_root, "mine")), ("DELETE", "/v1/data-sources/docs", None),
             ("POST", "/v1/data-sources/docs/fetch", {"items": ["a.csv"], "workspace": "thread-a"}),
             ("POST", "/v1/threads/thread-a/tokens", {"sources": ["docs"]}),
             ("POST", "/v1/data-sources/docs/upload", {"thread_id": "thread-a", "files": ["x.csv"]})]
    for method, url, body in calls:
        response = api.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 403, (method, url, response.status_code, response.text)
    assert api.call("GET", "/v1/data-sources/docs", expect=200)


def test_an_expired_thread_token_answers_401(api: Api, data_root: Path) -> None:
    _, minter = _setup(api, data_root)
    token = _mint(api.client, minter).json()["token"]
    document = json.loads(api.settings.keys_file.read_text())
    for entry in document["keys"]:
        if entry.get("thread_id"):
            entry["expires_at"] = int(time.time()) - 1  # its time passed
    api.settings.keys_file.write_text(json.dumps(document))
    response = _attach(api.client, token)
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert not (api.settings.workspace_base / "thread-a" / "a.csv").exists()


def test_only_a_key_made_to_mint_may_mint(api: Api, data_root: Path) -> None:
    _setup(api, data_root)
    assert _mint(api.client, api.read).status_code == 403
    assert _mint(api.client, api.manage).status_code == 403


def test_minting_checks_its_sources_thread_and_lifetime(api: Api, data_root: Path) -> None:
    _, minter = _setup(api, data_root)
    assert _mint(api.client, minter, sources=["nope"]).status_code == 404
    assert _mint(api.client, minter, thread="..").status_code in (400, 404)
    assert _mint(api.client, minter, ttl_seconds=10**9).status_code == 422


def test_revoking_the_minting_key_revokes_its_tokens(api: Api, data_root: Path) -> None:
    _, minter = _setup(api, data_root)
    token = _mint(api.client, minter).json()["token"]
    KeyStore(api.settings.keys_file).revoke("deepanalyze")
    assert _attach(api.client, token).status_code == 401
