"""A source the API stores is whole, though DeepAnalyze's own Azure example config builds without a container."""

from __future__ import annotations

from tests.api.conftest import Api


def test_an_incomplete_azure_source_is_refused_before_anything_is_stored(api: Api) -> None:
    body = {"id": "lake", "type": "azure_blob", "name": "Lake",
            "config": {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5"}}
    detail = api.call("POST", "/v1/data-sources", json=body, expect=422).json()["detail"]
    assert detail == "source 'lake': config.container_name: required field is missing"
    assert api.call("GET", "/v1/data-sources", expect=200).json()["data"] == []
    assert not api.settings.sources_file.exists() or "lake" not in api.settings.sources_file.read_text()
