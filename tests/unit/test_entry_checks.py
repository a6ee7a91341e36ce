"""One validation of a source entry everywhere: the file reader, writes, the code location, the Component.

Each entry refused here is refused before anything connects: a PostgreSQL entry points at
a closed loopback port, and its listing state (written only after a connection) never appears.

docs/RELIABILITY.md row 53.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey

from connectors.entry_checks import check_entry
from connectors.errors import ConfigurationError
from connectors.registry import SourceRegistry
from da_pipelines.components import DataSourceComponent
from da_pipelines.definitions import build_definitions
from tests.harness import free_port

CANARY = "canary-Entry-5b1d"


def _local(source_id: str, tmp_path: Path, **metadata: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "local_file", "name": source_id, "config": {"root": str(tmp_path)},
            "metadata": metadata}


def _pg(source_id: str, password: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "postgresql", "name": source_id,
            "config": {"host": "127.0.0.1", "port": free_port(), "dbname": "d", "user": "u", "password": password,
                       "connect_timeout": 1}}


BAD = {
    "only_partitioned": {"dagster": {"item_sets": [{"name": "parts", "partitioned": True}]}},
    "bad_set_name": {"dagster": {"item_sets": [{"name": "Bad Name"}]}},
    "bad_sync": {"sync": {"prune": "sometimes"}},
}


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"sources": entries}))


def test_the_file_reader_refuses_bad_metadata_and_literal_secrets_naming_the_right_entry(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    _write(path, [{"id": "broken"}, _local("good", tmp_path), _local("parts", tmp_path, **BAD["only_partitioned"]),
                  _pg("pg", CANARY), _local("named", tmp_path, **BAD["bad_set_name"]),
                  _local("synced", tmp_path, **BAD["bad_sync"])])
    loaded = SourceRegistry(path).load()
    assert [s.id for s in loaded.sources] == ["good"] and loaded.positions == [2]
    reasons = {item.position: str(item.error) for item in loaded.invalid}
    assert sorted(reasons) == [1, 3, 4, 5, 6]
    assert "at least one set must be unpartitioned" in reasons[3]
    assert "config.password" in reasons[4] and "literal secret" in reasons[4] and CANARY not in reasons[4]
    assert "metadata.dagster.item_sets" in reasons[5]
    assert "metadata.sync.prune" in reasons[6]


@pytest.mark.parametrize("case", sorted(BAD))
def test_writes_refuse_what_the_reader_refuses(tmp_path: Path, case: str) -> None:
    registry = SourceRegistry(tmp_path / "sources.yaml")
    with pytest.raises(ConfigurationError, match=r"metadata\.(dagster|sync)"):
        registry.add(_local("x", tmp_path, **BAD[case]))
    registry.add(_local("y", tmp_path))
    with pytest.raises(ConfigurationError, match=r"metadata\.(dagster|sync)"):
        registry.update("y", metadata=BAD[case])
    assert registry.get("y").metadata == {}


def test_the_code_location_shows_a_left_out_source_with_its_reason_and_never_connects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sources.yaml"
    _write(path, [{"id": "broken"}, _local("good", tmp_path), _pg("pg", CANARY),
                  _local("parts", tmp_path, **BAD["only_partitioned"])])
    monkeypatch.setenv("DA_SOURCES_FILE", str(path))
    workspace = tmp_path / "ws"
    defs = build_definitions(workspace=str(workspace))
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    third, fourth = specs[AssetKey(["sources_left_out", "entry_3"])], specs[AssetKey(["sources_left_out", "entry_4"])]
    assert "entry 3" in (third.description or "") and "literal secret" in (third.description or "")
    assert "unpartitioned" in (fourth.description or "")
    assert AssetKey(["sources_left_out", "entry_1"]) in specs
    assert AssetKey(["good", "files"]) in specs
    assert not (workspace / "pg").exists()  # no listing state: nothing connected
    assert "source left out of the code location: entry 3:" in caplog.text
    assert all(CANARY not in text for text in (caplog.text, *(s.description or "" for s in specs.values())))


def test_the_component_refuses_the_same_entries_before_connecting(tmp_path: Path) -> None:
    component = DataSourceComponent(id="parts", type="local_file", config={"root": str(tmp_path)},
                                    item_sets=[{"name": "parts", "partitioned": True}])
    with pytest.raises(ConfigurationError, match="unpartitioned"):
        component.write_state_to_path(tmp_path / "state.json")
    literal = DataSourceComponent(**{k: v for k, v in _pg("pg", CANARY).items() if k != "name"})
    with pytest.raises(ConfigurationError, match="literal secret") as raised:
        literal.write_state_to_path(tmp_path / "state.json")
    assert CANARY not in str(raised.value) and not (tmp_path / "state.json").exists()


def test_check_entry_passes_a_good_entry_unchanged(tmp_path: Path) -> None:
    from connectors.base import DataSourceConfig

    source = DataSourceConfig.from_dict(_local("good", tmp_path, dagster={"item_sets": [{"name": "a"}]}))
    assert check_entry(source) is source


def test_the_component_names_a_mistyped_type_with_a_suggestion() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"unknown connector type 'postgres' .*did you mean 'postgresql'\?"):
        DataSourceComponent(id="pg", type="postgres", config={"host": "h"})


def test_an_entry_without_a_name_shows_every_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    _write(path, [{"id": "pg", "type": "postgresql", "config": {"port": "nope", "bogus": 1}},
                  {"id": "typo", "type": "postgres", "config": {}}])
    first, second = (str(item.error) for item in SourceRegistry(path).load().invalid)
    assert "name: required field is missing" in first
    assert "config.port" in first and "config.bogus: unknown field" in first
    assert "unknown connector type 'postgres'" in second and "did you mean 'postgresql'?" in second
