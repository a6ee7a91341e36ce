"""The API refuses at write time what the code location would leave out: 422 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import Api, local_source

BAD_DAGSTER = {
    "only_partitioned": ({"item_sets": [{"name": "parts", "partitioned": True}]}, "unpartitioned"),
    "bad_set_name": ({"item_sets": [{"name": "Bad Name"}]}, "lower-case"),
}


@pytest.mark.parametrize("case", sorted(BAD_DAGSTER))
def test_patch_and_create_with_bad_metadata_dagster_answer_422_naming_the_field(
        api: Api, data_root: Path, case: str) -> None:
    dagster, why = BAD_DAGSTER[case]
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    answer = api.call("PATCH", "/v1/data-sources/docs", json={"metadata": {"dagster": dagster}}, expect=422)
    assert "metadata.dagster.item_sets" in answer.text and why in answer.text
    assert "dagster" not in api.call("GET", "/v1/data-sources/docs", expect=200).json()["metadata"]
    created = api.call("POST", "/v1/data-sources", json={**local_source(data_root, "other"),
                                                         "metadata": {"dagster": dagster}}, expect=422)
    assert "metadata.dagster.item_sets" in created.text


def test_bad_metadata_sync_answers_422(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    answer = api.call("PATCH", "/v1/data-sources/docs", json={"metadata": {"sync": {"prune": "x"}}}, expect=422)
    assert "metadata.sync.prune" in answer.text


def test_a_read_only_key_is_told_which_route_needs_a_managing_key(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    refused = api.call("POST", "/v1/data-sources/docs/upload", key="read", json={}, expect=403).json()["detail"]
    assert "read-only" in refused and "POST /v1/data-sources/{source_id}/upload changes data" in refused
    assert "managing sources" not in refused


def test_docs_and_redoc_load_every_asset_from_the_server_itself(api: Api) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = api.call("GET", page, key="none", expect=200).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html)
        assets = [a or b for a, b in urls]
        assert assets and not [u for u in assets if u.startswith(("http:", "https:", "//"))], (page, assets)
        for asset in assets:
            if asset.endswith((".js", ".css", ".png")):
                assert len(api.call("GET", asset, key="none", expect=200).content) > 100, asset
        assert "cdn" not in html.lower() and "fonts.googleapis" not in html


def test_a_bad_workspace_name_is_told_the_workspace_rule(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    said = api.call("POST", "/v1/data-sources/docs/fetch", json={"items": ["a.csv"], "workspace": "../x"},
                    expect=400).json()["detail"]
    assert "a workspace name is 1 to" in said and "source id" not in said


def test_an_attach_422_names_fields_not_pydantic_internals(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    answer = api.call("POST", "/v1/threads/t1/data", json=[{"source_id": "docs"}], expect=422).text
    assert "give exactly one of path, glob, table, query" in answer
    assert "function-after" not in answer and "Value error" not in answer


def test_browse_reports_the_names_the_listing_refused(api: Api, tmp_path: Path) -> None:
    root = tmp_path / "refusing"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("x\n")
    (root / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (root / "back\\slash.csv").write_text("b\n")
    (root / "ok.csv").write_text("ok\n")
    api.call("POST", "/v1/data-sources", json=local_source(root), expect=201)
    page = api.call("GET", "/v1/data-sources/docs/browse", expect=200).json()
    assert [e["path"] for e in page["data"]] == ["ok.csv"]
    assert page["refused_count"] == 2
    assert {r["path"]: r["reason"] for r in page["refused"]}["escape.txt"] == "a symlink leading outside root"
