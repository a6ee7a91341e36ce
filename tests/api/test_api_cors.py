"""The 401 help text as written, and CORS: none by default, preflights answered for the origins given."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.api.api_settings import ApiSettings, cors_origins
from connectors.cli.api import _settings
from connectors.errors import ConfigurationError
from tests.api.conftest import Api, start_api

UI = "https://ui.example.com"
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}


@pytest.fixture
def cors_api(tmp_path: Path, secret_store_env: Path) -> Iterator[Api]:
    yield from start_api(tmp_path, cors_origins=(UI,))


def test_the_no_key_answer_shows_the_header_to_send(api: Api) -> None:
    answer = api.call("GET", "/v1/data-sources", key="none", expect=401).json()
    assert answer == {"detail": "an API key is required: Authorization: Bearer <key>"}


def test_no_origin_is_allowed_by_default(api: Api) -> None:
    response = api.client.options("/v1/data-sources", headers={"Origin": UI, **PREFLIGHT})
    assert response.status_code == 405 and "access-control-allow-origin" not in response.headers
    plain = api.client.get("/v1/data-sources", headers={"Origin": UI, **api.read})
    assert "access-control-allow-origin" not in plain.headers


def test_an_allowed_origin_gets_its_preflight_and_answers(cors_api: Api) -> None:
    response = cors_api.client.options("/v1/data-sources", headers={"Origin": UI, **PREFLIGHT})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == UI
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    listed = cors_api.client.get("/v1/data-sources", headers={"Origin": UI, **cors_api.read})
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == UI
    assert "x-request-id" in listed.headers["access-control-expose-headers"].lower()
    other = cors_api.client.options("/v1/data-sources", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


def test_origins_come_from_the_flag_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_API_CORS_ORIGINS", "https://a.example, http://127.0.0.1:5173/,")
    assert ApiSettings.from_env().cors_origins == ("https://a.example", "http://127.0.0.1:5173")
    args = argparse.Namespace(sources=str(tmp_path / "s.yaml"), workspace=None, cors_origin=[UI])
    assert _settings(args).cors_origins == (UI,)
    monkeypatch.delenv("DA_API_CORS_ORIGINS")
    assert ApiSettings.from_env().cors_origins == ()
    for bad in ("*", "ui.example.com", "https://ui.example.com/app", "https://*.example.com"):
        with pytest.raises(ConfigurationError, match="scheme://host"):
            cors_origins([bad])


def test_the_state_folder_comes_from_the_flag_the_environment_or_beside_the_sources_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = tmp_path / "conf" / "s.yaml"
    monkeypatch.delenv("DA_STATE_DIR")
    args = argparse.Namespace(sources=str(sources), workspace=None, cors_origin=[], state_dir=None)
    assert _settings(args).thread_state_dir == sources.with_name("da-sources-state")
    monkeypatch.setenv("DA_STATE_DIR", str(tmp_path / "env-state"))
    assert _settings(args).thread_state_dir == tmp_path / "env-state"
    args.state_dir = str(tmp_path / "flag-state")
    assert _settings(args).thread_state_dir == tmp_path / "flag-state"
