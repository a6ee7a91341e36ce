"""The source id rule (``connectors.ids``) wherever a source is created or loaded.

The rule: 1 to 63 ASCII letters, digits, ``-`` and ``_``, the first a letter. Its
Dagster name is always an identifier; two ids sharing one are refused, naming both.
One bad entry of the sources file fails that entry only, in the registry and in
the Dagster code location.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError, NotFoundError
from connectors.ids import (
    MAX_SOURCE_ID_LENGTH,
    InvalidSourceIdError,
    check_distinct,
    check_source_id,
    colliding_id,
    dagster_name,
    is_valid_source_id,
)
from connectors.registry import SourceRegistry, load_sources_file, read_sources_file

REPO = Path(__file__).resolve().parents[2]
BAD_IDS = ["../evil", "a/b", "2024-exports", "_staging", "-x", "", ".", "..", "/abs", "C:x", "a\\b", "a b",
           "a.b", "ünï", "a\x00b", "x" * (MAX_SOURCE_ID_LENGTH + 1), "x" * 100_000]


def entry(source_id: object, root: Path, **extra: object) -> dict[str, object]:
    return {"id": source_id, "type": "local_file", "name": "N", "config": {"root": str(root)}, **extra}


# --- the rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "sample", "ds-azure-prod", "nc_pg", "Prod2", "x" * MAX_SOURCE_ID_LENGTH])
def test_good_ids_pass(good: str) -> None:
    assert check_source_id(good) == good and is_valid_source_id(good)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_with_the_rule_and_a_bounded_echo(bad: str) -> None:
    with pytest.raises(InvalidSourceIdError) as raised:
        check_source_id(bad)
    message = str(raised.value)
    assert "starting with a letter" in message and "1 to 63 characters" in message
    assert len(message) < 300  # a 100,000-character id never comes back whole
    assert isinstance(raised.value, ConfigurationError)
    assert type(pickle.loads(pickle.dumps(raised.value))) is InvalidSourceIdError  # Dagster ships errors


@pytest.mark.parametrize("bad", [None, 5, ["a"], {"a": 1}])
def test_non_text_ids_are_refused(bad: object) -> None:
    with pytest.raises(InvalidSourceIdError):
        check_source_id(bad)


@given(st.text(max_size=80))
def test_any_text_is_a_valid_id_or_refused_and_valid_ids_give_identifiers(text: str) -> None:
    try:
        check_source_id(text)
    except InvalidSourceIdError:
        assert not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,62}", text)
        return
    name = dagster_name(text)
    assert name.isidentifier() and re.fullmatch(r"[a-z][a-z0-9_]*", name)
    assert Path(text).name == text and text not in (".", "..")  # one plain folder name


def test_dagster_name_and_collisions() -> None:
    assert dagster_name("DS-Azure-Prod") == "ds_azure_prod"
    assert colliding_id("nc_pg", ["nc-pg"]) == "nc-pg"
    assert colliding_id("prod", ["Prod", "other"]) == "Prod"
    assert colliding_id("nc_pg", ["nc_pg", "x"]) is None  # the same id is a duplicate, not a collision
    with pytest.raises(InvalidSourceIdError, match=r"'nc-pg' and 'nc_pg' both map to the Dagster name 'nc_pg'"):
        check_distinct("nc_pg", ["nc-pg"])


@pytest.mark.parametrize("bad", BAD_IDS)
def test_data_source_config_enforces_the_rule(bad: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidSourceIdError, match="starting with a letter"):
        DataSourceConfig(id=bad, type="local_file", name="N", config={"root": str(tmp_path)})


# --- the registry and the sources file -------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> SourceRegistry:
    return SourceRegistry(tmp_path / "sources.yaml")


def test_add_refuses_bad_and_colliding_ids_and_writes_nothing(registry: SourceRegistry, tmp_path: Path) -> None:
    for bad in ("../evil", "2024-exports", "_staging", "a/b"):
        with pytest.raises(InvalidSourceIdError):
            registry.add(entry(bad, tmp_path))
    assert not registry.path.exists()
    registry.add(entry("nc-pg", tmp_path))
    before = registry.path.read_bytes()
    with pytest.raises(InvalidSourceIdError, match=r"'nc-pg' and 'nc_pg'"):
        registry.add(entry("nc_pg", tmp_path))
    assert registry.path.read_bytes() == before
    with pytest.raises(InvalidSourceIdError):
        registry.get("../evil")


def write_file(path: Path, entries: list[object]) -> None:
    path.write_text(yaml.safe_dump({"sources": entries}))


def test_one_bad_entry_fails_that_entry_only(registry: SourceRegistry, tmp_path: Path) -> None:
    write_file(registry.path, [
        entry("good", tmp_path), entry("../evil", tmp_path), entry("2024-exports", tmp_path),
        entry("nc-pg", tmp_path), entry("nc_pg", tmp_path), entry("good", tmp_path),
        {"id": "broken", "type": "local_file", "name": "B", "config": {"rot": "/"}}, "not a mapping",
        entry("after", tmp_path),
    ])
    loaded = registry.load()
    assert [s.id for s in loaded.sources] == ["good", "nc-pg", "after"]
    assert [s.id for s in registry.list()] == ["good", "nc-pg", "after"]
    errors = {i.position: str(i.error) for i in loaded.invalid}
    assert sorted(errors) == [2, 3, 5, 6, 7, 8]
    assert "invalid source id '../evil'" in errors[2] and "starting with a letter" in errors[3]
    assert "'nc-pg' and 'nc_pg'" in errors[5]
    assert "'good' appears twice" in errors[6]
    assert "source 'broken'" in errors[7] and "config.root" in errors[7]
    assert "mapping" in errors[8]
    with pytest.raises(ConfigurationError, match="config.root"):
        registry.get("broken")
    assert registry.get("after").id == "after"
    with pytest.raises(ConfigurationError):  # the strict reader still refuses the whole file
        load_sources_file(registry.path)
    assert [s.id for s in read_sources_file(registry.path).sources] == ["good", "nc-pg", "after"]
    registry.add(entry("new", tmp_path))  # the file stays usable
    with pytest.raises(InvalidSourceIdError, match="'nc_pg'"):  # an invalid entry keeps its id taken
        registry.add(entry("NC-pg", tmp_path))


def test_a_broken_entry_can_be_removed(registry: SourceRegistry, tmp_path: Path) -> None:
    write_file(registry.path, [{"id": "broken", "type": "local_file", "name": "B", "config": {}},
                               entry("2024-exports", tmp_path), entry("good", tmp_path)])
    with pytest.raises(ConfigurationError):
        registry.remove("broken")  # remove() returns the config, which cannot be built
    registry.discard("broken")
    registry.discard("2024-exports")  # by its exact id, though it breaks the rule
    assert [e["id"] for e in yaml.safe_load(registry.path.read_text())["sources"]] == ["good"]
    with pytest.raises(NotFoundError):
        registry.discard("broken")


def test_the_strict_readers_refuse_a_missing_file(tmp_path: Path) -> None:
    for read in (load_sources_file, read_sources_file):
        with pytest.raises(ConfigurationError, match="does not exist"):
            read(tmp_path / "missing.yaml")


def test_a_sources_file_that_is_not_utf8_is_a_clear_error(registry: SourceRegistry) -> None:
    registry.path.write_bytes(b"sources:\n  - id: caf\xe9\n")
    with pytest.raises(ConfigurationError, match=r"is not UTF-8 text \(byte 0xe9 at offset 20\)"):
        registry.list()


def test_the_embedded_sample_stands_in_for_a_missing_default_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DA_SOURCES_FILE", raising=False)
    monkeypatch.delenv("DA_SAMPLE_ONLY", raising=False)
    assert SourceRegistry().list() == []  # the library's registry: the file only
    served = SourceRegistry(embedded_sample=True).load()
    assert served.embedded and [s.id for s in served.sources] == ["sample"]
    assert SourceRegistry(tmp_path / "named.yaml", embedded_sample=True).list() == []  # a named file: no sample
    SourceRegistry().add(entry("docs", tmp_path))
    assert [s.id for s in SourceRegistry(embedded_sample=True).list()] == ["docs"]  # as in Dagster
    monkeypatch.setenv("DA_SAMPLE_ONLY", "1")
    assert [s.id for s in SourceRegistry(embedded_sample=True).list()] == ["sample"]
    assert [s.id for s in SourceRegistry().list()] == ["docs"]


# --- the Dagster code location ---------------------------------------------------------------


def test_the_code_location_loads_the_good_sources_and_reports_the_bad(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from da_pipelines.definitions import build_definitions

    sources = tmp_path / "sources.yaml"
    write_file(sources, [entry("good", tmp_path), entry("2024-exports", tmp_path), entry("_staging", tmp_path),
                         entry("nc-pg", tmp_path), entry("nc_pg", tmp_path), entry("../evil", tmp_path),
                         {"id": "broken", "type": "local_file", "name": "B", "config": {"rot": "/"}},
                         entry("bad-tuning", tmp_path, metadata={"dagster": {"batch_size": 0}})])
    monkeypatch.setenv("DA_SOURCES_FILE", str(sources))
    defs = build_definitions(workspace=str(tmp_path / "ws"))
    repository = defs.get_repository_def()  # what `dagster dev` does: must not raise
    assert sorted(j.name for j in repository.get_all_jobs() if not j.name.startswith("__")) == [
        "good_sync", "nc_pg_sync"]
    report = (defs.metadata or {})["da_sources/invalid_sources"].value
    for text in ("'2024-exports'", "'_staging'", "'nc-pg' and 'nc_pg'", "'../evil'", "config.root",
                 "metadata.dagster.batch_size"):
        assert text in report
    assert "source left out of the code location" in caplog.text and "'nc-pg' and 'nc_pg'" in caplog.text


def test_build_definitions_refuses_colliding_ids_given_directly(tmp_path: Path) -> None:
    from da_pipelines.definitions import build_definitions

    given_sources = [DataSourceConfig(**entry(i, tmp_path)) for i in ("Prod", "prod", "other")]  # type: ignore[arg-type]
    defs = build_definitions(sources=given_sources, workspace=str(tmp_path / "ws"))
    jobs = sorted(j.name for j in defs.get_repository_def().get_all_jobs() if not j.name.startswith("__"))
    assert jobs == ["other_sync", "prod_sync"]
    assert "'Prod' and 'prod'" in (defs.metadata or {})["da_sources/invalid_sources"].value


def test_loading_the_code_location_emits_no_beta_warning(tmp_path: Path) -> None:
    # a real process, as `dagster dev` and every run load it (pytest resets warning filters per test)
    script = (
        "import warnings\n"
        "from dagster import BetaWarning\n"
        "warnings.simplefilter('error', BetaWarning)\n"
        "import da_pipelines\n"
        "assert da_pipelines.defs.get_repository_def().sensor_defs\n"
        "print('loaded')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DA_WORKSPACE": str(tmp_path / "ws")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr
    assert "BetaWarning" not in result.stderr
