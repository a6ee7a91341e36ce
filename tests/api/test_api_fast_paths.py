"""The API's fast paths keep their answers right: cached source answers follow the sources file, a key checked
once per request is still the key presented, ``serve`` runs the httptools protocol with its start-up objects
frozen out of the garbage collector, and a response leaves in one write (its header cap and deadlines:
tests/api/test_serve_bounds.py)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from connectors.api.api_keys import KeyStore
from connectors.api.fast_protocol import OneWrite
from connectors.api.server import http_protocol, serve
from connectors.registry import SourceRegistry
from tests.api.conftest import Api, local_source, make_settings


def test_a_cached_source_answer_follows_the_sources_file(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    first = api.call("GET", "/v1/data-sources/docs", key="read", expect=200).json()
    listed = api.call("GET", "/v1/data-sources", key="read", expect=200).json()
    assert first["name"] == "Docs" and listed["data"] == [first]
    SourceRegistry(api.settings.sources_file).update("docs", name="Renamed")  # as the CLI does, from outside
    assert api.call("GET", "/v1/data-sources/docs", key="read", expect=200).json()["name"] == "Renamed"
    assert api.call("GET", "/v1/data-sources", key="read", expect=200).json()["data"][0]["name"] == "Renamed"
    SourceRegistry(api.settings.sources_file).remove("docs")
    api.call("GET", "/v1/data-sources/docs", key="read", expect=404)
    assert api.call("GET", "/v1/data-sources", key="read", expect=200).json()["data"] == []


def test_cached_answers_are_what_the_response_model_gives(api: Api, data_root: Path) -> None:
    for number in range(3):
        api.call("POST", "/v1/data-sources", json=local_source(data_root, f"s{number}"), expect=201)
    page = api.call("GET", "/v1/data-sources?limit=2", key="read", expect=200)
    assert page.headers["content-type"] == "application/json"
    body = page.json()
    assert body["has_more"] is True and body["next_cursor"] == "s1" and [s["id"] for s in body["data"]] == ["s0", "s1"]
    rest = api.call("GET", "/v1/data-sources?limit=2&after=s1", key="read", expect=200).json()
    assert [s["id"] for s in rest["data"]] == ["s2"] and rest["has_more"] is False and rest["next_cursor"] is None
    one = api.call("GET", "/v1/data-sources/s2", key="read", expect=200).json()
    assert one == rest["data"][0] and set(one) == {"id", "object", "created_at", "type", "name", "config", "metadata"}


def test_a_key_revoked_between_requests_stops_at_the_next(api: Api) -> None:
    api.call("GET", "/v1/data-sources", key="read", expect=200)
    KeyStore(api.settings.keys_file).revoke("reader")
    assert api.call("GET", "/v1/data-sources", key="read").status_code == 401
    assert api.call("GET", "/v1/data-sources/x", key="read").status_code == 401
    assert api.audit()[-1]["status"] == 401


def test_serve_uses_the_c_parser_with_the_bounds(tmp_path: Path) -> None:
    protocol = http_protocol(10, make_settings(tmp_path))
    assert protocol.__name__ == "BoundedHttpToolsProtocol"


def test_serve_freezes_its_start_up_objects_before_it_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    frozen: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: frozen.append(gc.get_freeze_count()))
    assert gc.get_freeze_count() == 0
    try:
        serve("127.0.0.1", 1, make_settings(tmp_path))
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 10_000  # the imports and the app: no full collection scans them again


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_one_write_joins_head_and_body_and_flushes_a_lone_head() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        loop = asyncio.get_running_loop()
        joined, lone = _Recorder(), _Recorder()
        writer: Any = OneWrite(joined, loop)  # type: ignore[arg-type]
        writer.write(b"HEAD")
        writer.write(b"BODY")
        writer.write(b"MORE")
        streamed: Any = OneWrite(lone, loop)  # type: ignore[arg-type]
        streamed.write(b"HEAD")
        await asyncio.sleep(0)  # the loop's next turn: a head alone goes out
        await asyncio.sleep(0)
        return joined.writes, lone.writes

    joined, lone = asyncio.run(run())
    assert joined == [b"HEADBODY", b"MORE"]
    assert lone == [b"HEAD"]


def test_one_write_sends_a_held_head_before_closing() -> None:
    async def run() -> _Recorder:
        transport = _Recorder()
        writer: Any = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        writer.write(b"HEAD")
        writer.close()
        return transport

    transport = asyncio.run(run())
    assert transport.writes == [b"HEAD"] and transport.closed
