"""The sync logic in the Dagster layer, over the in-memory connector: exclude in the sensor, unsafe
items skipped without failing the run, removals logged, progress of a single partition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, materialize

from connectors.base import DataSourceConfig
from connectors.testing import MemoryStore
from da_pipelines.definitions import build_definitions
from da_pipelines.factory import build_source_defs
from da_pipelines.translator import item_partition_key
from tests.helpers.dagster_layer import SOURCE_ID, T0, N, evaluate, requested, run_sync


def source(store: MemoryStore, **sync: Any) -> DataSourceConfig:
    return DataSourceConfig(id=SOURCE_ID, type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
                            metadata={"dagster": {"retry_delay_seconds": 0}, "sync": sync})


def messages(instance: DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def test_the_sensor_and_the_sync_honour_exclude(store: MemoryStore, instance: DagsterInstance,
                                                tmp_path: Path) -> None:
    store.put("keep.csv", b"a\n", T0)
    store.put("scratch/x.partial", b"b\n", T0)
    defs = build_definitions(sources=[source(store, exclude=["*.partial"])], workspace=str(tmp_path / "ws"))
    assert requested(evaluate(defs, instance, None)) == ["keep.csv"]
    result = run_sync(defs, instance)
    assert result.success and store.fetches == ["keep.csv"]
    # asked for by name (a stale run config), an excluded item is skipped with the reason
    asked = run_sync(defs, instance, items=[("scratch/x.partial", "")])
    assert asked.success and store.fetches == ["keep.csv"]
    assert any("excluded by the pattern '*.partial'" in m for m in messages(instance, asked.run_id))


def test_an_unsafe_item_is_skipped_and_the_run_succeeds(store: MemoryStore, instance: DagsterInstance,
                                                        tmp_path: Path) -> None:
    store.put("incoming/2026/trailing dot.", b"x\n", T0)
    store.put("ok.csv", b"y\n", T0)
    defs = build_definitions(sources=[source(store)], workspace=str(tmp_path / "ws"))
    result = run_sync(defs, instance)
    assert result.success and store.fetches == ["ok.csv"]
    logged = messages(instance, result.run_id)
    assert any("skipped 'incoming/2026/trailing dot.'" in m and "unsafe name" in m for m in logged)
    assert any("files: 1 landed, 0 unchanged, 0 repaired, 1 skipped" in m for m in logged)
    del store.objects["ok.csv"]
    again = run_sync(defs, instance)
    assert again.success
    assert any("'ok.csv' is no longer at the source; its landed file was kept" in m
               for m in messages(instance, again.run_id))


def test_materializing_one_partition_logs_its_item_and_bytes(store: MemoryStore, instance: DagsterInstance,
                                                             tmp_path: Path) -> None:
    store.put("one/one.csv", b"a,b\n" * 100, T0)
    sets = [{"name": "files"}, {"name": "ones", "prefix": "one/", "partitioned": True}]
    configured = DataSourceConfig(id=SOURCE_ID, type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
                                  metadata={"dagster": {"retry_delay_seconds": 0, "item_sets": sets}})
    built = build_source_defs(configured)
    key = item_partition_key("one/one.csv")
    instance.add_dynamic_partitions(f"{N}__ones", [key])
    defs = build_definitions(sources=[configured], workspace=str(tmp_path / "ws"))
    result = materialize(built.assets, partition_key=key, instance=instance,
                         resources=dict(defs.resources or {}), selection=[AssetKey([N, "ones"])])
    assert result.success
    assert any("landed 'one/one.csv': 1/1 items, 400 B" in m for m in messages(instance, result.run_id))
