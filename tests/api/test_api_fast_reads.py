"""The short way to the two source reads (connectors/api/fast_reads.py) answers plain reads without FastAPI's
routing, refuses exactly what FastAPI refuses (same status, body, headers and audit lines: it hands every refusal
to FastAPI), never shows a secret, and follows a change made through the API at the next request.

docs/RELIABILITY.md row 72.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from connectors.api.api_keys import KeyStore
from connectors.api.fast_reads import FastReadsApp
from tests.api.conftest import Api, local_source

Answer = tuple[int, bytes, dict[str, str], list[dict[str, Any]]]


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the HTTP requests that reached FastAPI (the rest took the short way)."""
    seen: list[str] = []
    original = FastAPI.__call__

    async def recording(self: FastAPI, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(FastAPI, "__call__", recording)
    yield seen


def _app(api: Api) -> FastReadsApp:
    app = api.client.app
    assert isinstance(app, FastReadsApp)
    return app


def _one_way(api: Api, url: str, headers: list[tuple[str, str]], fast: bool) -> Answer:
    """One GET with the short way open or closed: status, body, headers (but the per-request ones), audit lines."""
    _app(api).fast_reads = fast
    before = len(api.audit())
    try:
        response = api.client.get(url, headers=headers)
    finally:
        _app(api).fast_reads = True
    api.seen.append(json.dumps(dict(response.headers)) + response.text)
    kept = {k: v for k, v in response.headers.items() if k not in ("date", "x-request-id")}
    lines = [{k: v for k, v in line.items() if k not in ("time", "request_id")} for line in api.audit()[before:]]
    assert response.status_code != 200 or response.headers["x-request-id"].startswith("req-")
    return response.status_code, response.content, kept, lines


def _both_ways(api: Api, url: str, headers: list[tuple[str, str]]) -> Answer:
    fast, slow = _one_way(api, url, headers, True), _one_way(api, url, headers, False)
    assert fast == slow, (url, headers)
    return fast


def _bearer(key: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {key}")]


def _thread_tokens(api: Api) -> tuple[str, str]:
    """A live thread token and an expired one (thread tokens may not read sources: 403 and 401)."""
    store = KeyStore(api.settings.keys_file)
    minter, _ = store.create("minter", read_only=True, can_mint=True)
    _, live = store.mint_thread_token(minter, "thread-a", ["docs"], 600)
    record, expired = store.mint_thread_token(minter, "thread-a", ["docs"], 600)
    document = json.loads(api.settings.keys_file.read_text())
    for entry in document["keys"]:
        if entry["id"] == record.id:
            entry["expires_at"] = int(time.time()) - 1
    api.settings.keys_file.write_text(json.dumps(document))
    return live, expired


def test_plain_reads_take_the_short_way_with_the_routes_answers(api: Api, data_root: Path,
                                                                routed: list[str]) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    routed.clear()
    read = api.read["Authorization"].removeprefix("Bearer ")
    one = _both_ways(api, "/v1/data-sources/docs", _bearer(read))
    listed = _both_ways(api, "/v1/data-sources", _bearer(read))
    assert one[0] == listed[0] == 200 and json.loads(listed[1])["data"] == [json.loads(one[1])]
    assert one[2]["content-type"] == "application/json" and one[3] == listed[3] == []  # a read writes no line
    # each pair: the short way did not reach FastAPI, the closed one did
    assert routed == ["/v1/data-sources/docs", "/v1/data-sources"]


def test_the_short_way_refuses_exactly_what_the_routes_refuse(api: Api, data_root: Path, routed: list[str]) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    read = api.read["Authorization"].removeprefix("Bearer ")
    live, expired = _thread_tokens(api)
    _, revoked = KeyStore(api.settings.keys_file).create("gone", read_only=True)
    KeyStore(api.settings.keys_file).revoke("gone")
    refusals: dict[str, list[tuple[str, str]]] = {
        "no key": [], "empty bearer": [("Authorization", "Bearer ")], "basic": [("Authorization", f"Basic {read}")],
        "wrong key": _bearer(read + "x"), "revoked key": _bearer(revoked), "thread token": _bearer(live),
        "expired thread token": _bearer(expired), "a key in pieces": _bearer(read[:10]),
    }
    for path in ("/v1/data-sources/docs", "/v1/data-sources"):
        for why, headers in refusals.items():
            status, _, kept, lines = _both_ways(api, path, headers)
            assert status in (401, 403), (why, path, status)
            assert len(lines) == 1 and lines[0]["status"] == status and "www-authenticate" in kept or status == 403
    hostile = ["..", "%2e%2e", "a%2Fb", "x" * 64, "d%C3%B6cs", "docs%00", "docs%20", "Docs", "nope", "-docs",
               "%20docs", "docs/x", "docs%2Fx"]
    for source_id in hostile:
        status, body, _, _ = _both_ways(api, f"/v1/data-sources/{source_id}", _bearer(read))
        assert status in (404, 422), (source_id, status, body)
    assert _both_ways(api, "/v1/data-sources/docs/", _bearer(read))[0] == 200  # redirected, as FastAPI does
    assert api.read["Authorization"] not in "".join(api.seen) and read not in "".join(api.seen)


def test_unusual_requests_go_to_fastapi(api: Api, data_root: Path, routed: list[str]) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    read = api.read["Authorization"].removeprefix("Bearer ")
    unusual = [("/v1/data-sources/docs?x=1", _bearer(read)), ("/v1/data-sources?limit=1", _bearer(read)),
               ("/v1/data-sources?limit=0", _bearer(read)), ("/v1/data-sources?after=" + "x" * 300, _bearer(read)),
               ("/v1/data-sources/docs", _bearer(read) + _bearer(read + "x")),
               ("/v1/data-sources/docs", _bearer(read + "x") + _bearer(read)),
               ("/v1/data-sources/docs", [*_bearer(read), ("Origin", "https://elsewhere.example")])]
    for url, headers in unusual:
        routed.clear()
        _both_ways(api, url, headers)
        assert routed == [url.partition("?")[0]] * 2, url  # both ways went through FastAPI


def test_with_opentelemetry_on_every_read_goes_through_fastapi(api: Api, data_root: Path, routed: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    monkeypatch.setattr(_app(api)._native_telemetry, "enabled", lambda: True)  # a tracer provider configured
    routed.clear()
    assert _one_way(api, "/v1/data-sources/docs", _bearer(api.read["Authorization"][7:]), True)[0] == 200
    assert routed == ["/v1/data-sources/docs"]


def test_no_secret_comes_back_the_short_way(api: Api, canary: str, routed: list[str]) -> None:
    body = {"id": "pg", "type": "postgresql",
            "config": {"host": "127.0.0.1", "port": 1, "user": "u", "dbname": "d", "password": canary}}
    api.call("POST", "/v1/data-sources", json=body, expect=201)
    read = api.read["Authorization"].removeprefix("Bearer ")
    routed.clear()
    one = _one_way(api, "/v1/data-sources/pg", _bearer(read), True)
    listed = _one_way(api, "/v1/data-sources", _bearer(read), True)
    assert routed == [] and one[0] == listed[0] == 200
    assert json.loads(one[1])["config"]["password"] == {"secret": "pg.password"}
    api.assert_nowhere(canary)


def test_an_answer_follows_a_change_through_the_api_at_once(api: Api, data_root: Path, routed: list[str]) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    read = api.read["Authorization"].removeprefix("Bearer ")

    def fast(url: str) -> tuple[int, Any]:
        status, content, _, _ = _one_way(api, url, _bearer(read), True)
        return status, json.loads(content)

    assert fast("/v1/data-sources/docs")[1]["name"] == "Docs"  # cached now
    api.call("PATCH", "/v1/data-sources/docs", json={"name": "Dacs"}, expect=200)  # same size
    assert fast("/v1/data-sources/docs")[1]["name"] == "Dacs"
    assert [s["name"] for s in fast("/v1/data-sources")[1]["data"]] == ["Dacs"]
    api.call("POST", "/v1/data-sources", json=local_source(data_root, "more"), expect=201)
    assert [s["id"] for s in fast("/v1/data-sources")[1]["data"]] == ["docs", "more"]
    api.call("DELETE", "/v1/data-sources/docs", expect=200)
    assert [s["id"] for s in fast("/v1/data-sources")[1]["data"]] == ["more"]
    routed.clear()
    assert fast("/v1/data-sources/docs")[0] == 404  # refused by FastAPI
    assert routed == ["/v1/data-sources/docs"]
