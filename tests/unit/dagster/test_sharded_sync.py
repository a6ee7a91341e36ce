"""Sharded syncs on the Dagster layer, with the in-memory connector: shards add up to the full sync.

A set with ``shards: N`` is a graph asset of N shard steps and a merge step
(``da_pipelines.sharded``); an item belongs to shard ``crc32(identifier) mod N``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType, DagsterInstance, Definitions, build_sensor_context
from dagster._core.definitions.executor_definition import multiprocess_executor

from connectors.base import DataSourceConfig
from connectors.syncing.dataset_manifest import read_manifest, read_repairs
from connectors.syncing.shard_plan import merge_summaries, shard_of, split_by_shard
from connectors.testing import MemoryStore
from da_pipelines.definitions import build_definitions
from da_pipelines.jobs import shard_executor

N = "mem_shards"
T0 = 1_700_000_000


def defs_for(store: MemoryStore, workspace: Path, shards: int, prune: bool = False) -> Definitions:
    source = DataSourceConfig(
        id="mem-shards", type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
        metadata={"dagster": {"retry_delay_seconds": 0, "batch_size": 1000,
                              "item_sets": [{"name": "files", "shards": shards}]}, "sync": {"prune": prune}})
    return build_definitions(sources=[source], workspace=str(workspace))


def fill(store: MemoryStore, count: int) -> list[str]:
    names = [f"d{i % 4}/item-{i:04d}.csv" for i in range(count)]
    for index, name in enumerate(names):
        store.put(name, f"id,value\n{index},{index * 7}\n".encode(), T0 + index)
    return names


def sync(defs: Definitions, instance: DagsterInstance, **kwargs: Any) -> Any:
    result = defs.resolve_job_def(f"{N}_sync").execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def materialization(result: Any) -> Any:
    found = [e.event_specific_data.materialization for e in result.all_events
             if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
    assert [m.asset_key.to_user_string() for m in found] == [f"{N}/files"]
    return found[0]


def landed(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and ".lineage" not in p.parts}


def test_shard_assignment_is_a_stable_hash_the_same_in_every_process() -> None:
    names = [f"folder/file-{i}.csv" for i in range(200)] + ["é/ü.txt", "a\udcff.bin"]
    here = [shard_of(name, 4) for name in names]
    assert shard_of("2024/sales.csv", 4) == 3 and shard_of("2024/sales.csv", 7) == 6  # crc32 0x8AB7F2B3, for good
    code = ("import sys, json; from connectors.syncing.shard_plan import shard_of; "
            "print(json.dumps([shard_of(n, 4) for n in json.loads(sys.stdin.read())]))")
    for seed in ("0", "12345"):
        other = subprocess.run([sys.executable, "-c", code], input=json.dumps(names, ensure_ascii=True),
                               capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert json.loads(other) == here
    groups = split_by_shard(names, 4)
    assert sorted(n for g in groups for n in g) == sorted(names) and all(groups)  # every item once, no shard empty


def test_the_union_of_the_shards_is_the_full_sync(store: MemoryStore, instance: DagsterInstance,
                                                   tmp_path: Path) -> None:
    names = fill(store, 60)
    sync(defs_for(store, tmp_path / "whole", 1), instance)
    sharded = sync(defs_for(store, tmp_path / "sharded", 3), instance)
    whole_folder, sharded_folder = tmp_path / "whole" / "mem-shards", tmp_path / "sharded" / "mem-shards"
    assert landed(sharded_folder) == landed(whole_folder) and len(landed(whole_folder)) == 60
    merged = read_manifest(sharded_folder, "files")
    assert merged == read_manifest(whole_folder, "files") and sorted(merged) == sorted(names)
    parts = [read_manifest(sharded_folder, f"files.shard-{k}-of-3") for k in range(3)]
    assert sorted(i for part in parts for i in part) == sorted(names)  # disjoint, and together everything
    assert all(shard_of(i, 3) == k for k, part in enumerate(parts) for i in part)
    m = materialization(sharded)
    assert m.metadata["items"].value == 60 and m.metadata["items_landed"].value == 60
    assert m.metadata["shards"].value == 3
    whole = sync(defs_for(store, tmp_path / "again", 1), instance)
    assert m.tags["dagster/data_version"] == materialization(whole).tags["dagster/data_version"]


def test_a_resync_lands_nothing_and_keeps_the_data_version(store: MemoryStore, instance: DagsterInstance,
                                                           tmp_path: Path) -> None:
    fill(store, 30)
    defs = defs_for(store, tmp_path / "ws", 2)
    first = materialization(sync(defs, instance))
    again = materialization(sync(defs, instance))
    assert again.metadata["items_landed"].value == 0 and again.metadata["items_unchanged"].value == 30
    assert again.tags["dagster/data_version"] == first.tags["dagster/data_version"]
    store.put("d1/item-0001.csv", b"id,value\n1,changed\n", T0 + 999)
    changed = materialization(sync(defs, instance))
    assert changed.metadata["items_landed"].value == 1
    assert changed.tags["dagster/data_version"] != first.tags["dagster/data_version"]


def test_events_are_bounded_by_shards_not_by_items(store: MemoryStore, instance: DagsterInstance,
                                                    tmp_path: Path) -> None:
    fill(store, 10)
    few = len(sync(defs_for(store, tmp_path / "few", 2), instance).all_events)
    fill(store, 300)
    many = len(sync(defs_for(store, tmp_path / "many", 2), instance).all_events)
    assert many == few  # 300 items store exactly as many events as 10
    fill(store, 300)
    four = len(sync(defs_for(store, tmp_path / "four", 4), instance).all_events)
    assert few < four < few * 3  # more shards, a few more events each


def test_items_gone_at_the_source_are_reported_and_pruned_once_each_by_their_own_shard(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    names = fill(store, 30)
    defs = defs_for(store, tmp_path / "ws", 2, prune=True)
    sync(defs, instance)
    gone = names[:8]
    assert {shard_of(n, 2) for n in gone} == {0, 1}
    for name in gone:
        del store.objects[name]
    m = materialization(sync(defs, instance))
    assert m.metadata["items_removed_at_source"].value == len(gone)  # each once: by the shard it hashes to
    assert set(landed(tmp_path / "ws" / "mem-shards")) == set(names) - set(gone)
    assert sorted(read_manifest(tmp_path / "ws" / "mem-shards", "files")) == sorted(set(names) - set(gone))


def test_a_damaged_file_is_found_by_the_check_and_repaired_by_its_shard(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store, 20)
    defs = defs_for(store, tmp_path / "ws", 2)
    sync(defs, instance)
    (tmp_path / "ws" / "mem-shards" / "d2" / "item-0002.csv").write_bytes(b"tampered")
    checked = sync(defs, instance)  # the sync sees the wrong size and lands the file again
    assert materialization(checked).metadata["items_repaired"].value == 1
    evaluations = [e.event_specific_data for e in checked.all_events
                   if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert [e.passed for e in evaluations] == [True]


def test_the_check_runs_in_the_merge_step_and_alone_it_syncs_nothing(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store, 20)
    defs = defs_for(store, tmp_path / "ws", 2)
    first = sync(defs, instance)
    evaluated = [e.step_key for e in first.all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert evaluated == [f"{N}__files.{N}__files_merge"]  # no step (no process) started just for the check
    store.put("d0/new.csv", b"id\n1\n", T0 + 500)
    (tmp_path / "ws" / "mem-shards" / "d3" / "item-0003.csv").write_bytes(b"tampered")
    check = AssetCheckKey(AssetKey([N, "files"]), "landed_files_match_lineage")
    alone = defs.resolve_job_def(f"{N}_sync").get_subset(asset_selection=set(), asset_check_selection={check})
    result = alone.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
    (evaluation,) = [e.event_specific_data for e in result.all_events
                     if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert not evaluation.passed and evaluation.metadata["damaged"].value == 1
    folder = tmp_path / "ws" / "mem-shards"
    assert "d0/new.csv" not in landed(folder) and len(read_manifest(folder, "files")) == 20  # nothing synced
    assert read_repairs(folder, f"files.shard-{shard_of('d3/item-0003.csv', 2)}-of-2") == {"d3/item-0003.csv"}


def test_the_sensor_gives_each_shard_its_own_items(store: MemoryStore, instance: DagsterInstance,
                                                   tmp_path: Path) -> None:
    names = fill(store, 12)
    defs = defs_for(store, tmp_path / "ws", 3)
    sensor = defs.resolve_sensor_def(f"{N}_sensor")
    data = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs,
                                                     resources=dict(defs.resources or {})))
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    ops = request.run_config["ops"][f"{N}__files"]["ops"]
    given = {k: [i["identifier"] for i in ops[f"{N}__files_shard_{k}"]["config"]["items"]] for k in range(3)}
    assert sorted(i for items in given.values() for i in items) == sorted(names)
    assert all(shard_of(i, 3) == k for k, items in given.items() for i in items)
    result = defs.resolve_job_def(f"{N}_sync").execute_in_process(
        instance=instance, run_config=request.run_config, asset_selection=request.asset_selection)
    assert materialization(result).metadata["items_landed"].value == 12


def test_a_sharded_source_runs_its_steps_in_processes_and_refuses_an_unknown_executor(
        store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = defs_for(store, tmp_path / "ws", 2).resolve_job_def(f"{N}_sync")
    assert job.executor_def.name == multiprocess_executor.name
    assert defs_for(store, tmp_path / "ws", 1).resolve_job_def(f"{N}_sync").executor_def.name != "multiprocess"
    # steps forked from a server that imported Dagster and the code location once, unless the run says otherwise
    warm = {"forkserver": {"preload_modules": ["da_pipelines.step_preload"]}}
    for given, start in (({}, warm), ({"start_method": {"spawn": {}}}, {"spawn": {}})):
        resolved = job.executor_def.apply_config_mapping({"config": {**given, "max_concurrent": 3}})
        assert resolved.success and resolved.value["config"]["start_method"] == start
        assert resolved.value["config"]["max_concurrent"] == 3
    monkeypatch.setenv("DA_SHARD_EXECUTOR", "threads")
    with pytest.raises(Exception, match="DA_SHARD_EXECUTOR must be"):
        shard_executor()


STEP_IMPORTS = """
import json, sys
from dagster._core.executor.multiprocess import MultiprocessExecutor
preload = MultiprocessExecutor  # what the fork server imports first, then the shard executor's modules
for name in json.loads(sys.argv[1]):
    __import__(name)
held = set(sys.modules)
from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import create_execution_plan
with DagsterInstance.get():  # what each step process does before its step starts
    job = ReconstructableRepository.for_module("da_pipelines", "defs").get_reconstructable_job(sys.argv[2])
    create_execution_plan(job)
print(len(set(sys.modules) - held))
"""


def test_a_step_forked_from_the_fork_server_starts_without_importing_the_code_location_again(
        store: MemoryStore, tmp_path: Path) -> None:
    job = defs_for(store, tmp_path / "ws", 2).resolve_job_def(f"{N}_sync")
    config = job.executor_def.apply_config_mapping({"config": {}}).value["config"]
    preload = config["start_method"]["forkserver"].get("preload_modules", [])
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"sources": [{"id": "local", "type": "local_file", "name": "Local", "config": {
        "root": str(tmp_path)}, "metadata": {"dagster": {"item_sets": [{"name": "files", "shards": 2}]}}}]}))
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DA_SOURCES_FILE": str(sources), "DA_WORKSPACE": str(tmp_path / "ws"),
           "DAGSTER_HOME": str(tmp_path / "home")}
    imported = subprocess.run([sys.executable, "-c", STEP_IMPORTS, json.dumps(preload), "local_sync"], env=env,
                              capture_output=True, text=True, check=True).stdout
    assert int(imported.split()[-1]) < 100  # 16 now; 586 when each step imported the code location and storages


def test_a_partitioned_set_cannot_be_sharded(store: MemoryStore, tmp_path: Path) -> None:
    source = DataSourceConfig(
        id="mem-shards", type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
        metadata={"dagster": {"item_sets": [{"name": "files"}, {"name": "one", "partitioned": True, "shards": 2}]}})
    defs = build_definitions(sources=[source], workspace=str(tmp_path))
    assert "cannot be sharded" in str((defs.metadata or {})["da_sources/invalid_sources"].value)


def test_summaries_add_up_and_keep_a_few_names() -> None:
    parts = [{"shard": k, "landed": 2, "failed_items": [f"f{k}-{i}" for i in range(15)]} for k in range(2)]
    merged = merge_summaries(parts)
    assert merged["landed"] == 4 and merged["shards"] == 2 and len(merged["failed_items"]) == 20


def test_k8s_runs_the_shard_steps_in_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_k8s import k8s_job_executor

    monkeypatch.setenv("DA_SHARD_EXECUTOR", "k8s")
    assert shard_executor() is k8s_job_executor
