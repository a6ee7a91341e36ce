"""The DeepAnalyze glue's pure parts: which references a request names, where the manifest goes."""

from __future__ import annotations

import asyncio

import pytest
from da_sources_client import DataSourcesError, token_path
from da_sources_client.deepanalyze import add_manifest, prepare_turn, references_in


def test_references_come_from_the_request_and_its_last_message() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b", "data": [{"source_id": "y"}]}]
    assert references_in(messages, [{"source_id": "x"}]) == [{"source_id": "x"}, {"source_id": "y"}]
    assert references_in([{"role": "user", "content": "a", "data": "nope"}], None) == []


def test_the_manifest_goes_to_the_last_user_message_and_nothing_else_changes() -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": {"value": "Which region?"}}], "thread_id": "t"}]
    result = add_manifest(messages, "Attached data:\n- a.csv: a.csv from source docs, 8 bytes")
    assert result[2]["content"] == "Which region?\n\nAttached data:\n- a.csv: a.csv from source docs, 8 bytes"
    assert result[2]["thread_id"] == "t" and result[:2] == messages[:2]
    assert messages[2]["content"][0]["type"] == "text"  # the caller's list is not changed


def test_data_without_a_configured_server_fails_before_the_model_runs() -> None:
    with pytest.raises(DataSourcesError, match="no da-sources server is configured"):
        asyncio.run(prepare_turn("thread-1", [{"role": "user", "content": "x"}], [{"source_id": "a", "path": "b"}]))
    assert asyncio.run(prepare_turn("thread-1", [{"role": "user", "content": "x"}])) == [
        {"role": "user", "content": "x"}]


@pytest.mark.parametrize("thread_id", ["", "../x", ".hidden", "a/b"])
def test_a_token_path_stays_in_its_folder(thread_id: str) -> None:
    with pytest.raises(DataSourcesError):
        token_path(thread_id)
