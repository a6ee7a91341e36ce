"""The Dagster layer over an in-memory connector: sync job, single-item asset, checks, retries, sensor."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    materialize,
)

from connectors.base import DataSourceConfig
from connectors.errors import ConnectionError, NotFoundError
from connectors.landing.lineage import read_provenance
from connectors.testing import MemoryStore, memory_store
from da_pipelines.aio import NestedLoopError, run_coroutine
from da_pipelines.cursor import bucket_of
from da_pipelines.definitions import build_definitions
from da_pipelines.factory import build_source_defs
from da_pipelines.lineage_meta import verify_landed
from da_pipelines.names import partition_key_for_item
from tests.dagster_location import register_test_connectors

T0 = 1_700_000_000
SOURCE_ID = "Mem-Src"
N = "mem_src"
TABLE = {"row_count": 3, "columns": [{"name": "id", "type": "integer"}, {"name": "name", "type": "text"}],
         "table": "public.people", "sql": 'SELECT * FROM "public"."people"'}


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    register_test_connectors()
    name = f"unit-{uuid.uuid4().hex[:8]}"
    store = memory_store(name)
    store.name = name  # type: ignore[attr-defined]
    yield store


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield instance


def source(store: MemoryStore, **dagster: Any) -> DataSourceConfig:
    return DataSourceConfig(
        id=SOURCE_ID, type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
        metadata={"dagster": {"retry_delay_seconds": 0, "batch_size": 2, **dagster}},
    )


def defs_for(store: MemoryStore, workspace: Path, **dagster: Any) -> Definitions:
    return build_definitions(sources=[source(store, **dagster)], workspace=str(workspace))


def run_sync(defs: Definitions, instance: DagsterInstance, items: list[tuple[str, str]] | None = None) -> Any:
    config = {"ops": {f"{N}_sync_items": {"config": {"items": [
        {"identifier": i, "version": v} for i, v in items]}}}} if items else None
    job = defs.resolve_job_def(f"{N}_sync")
    return job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)


def materializations(result: Any) -> dict[str, Any]:
    return {e.event_specific_data.materialization.partition: e.event_specific_data.materialization
            for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION}


def fill(store: MemoryStore) -> None:
    store.put("sales.csv", b"id,total\n1,10\n2,20\n", T0 + 10)
    store.put("dir/customers.csv", b"id,name\n1,Ana\n", T0 + 20)
    store.put("public.people", b"id,name\n1,a\n2,b\n3,c\n", T0, version="snap-1", table=TABLE)


def test_sync_lands_every_item_with_lineage_and_metadata(store: MemoryStore, instance: DagsterInstance,
                                                          tmp_path: Path) -> None:
    fill(store)
    result = run_sync(defs_for(store, tmp_path / "ws"), instance)
    assert result.success
    folder = tmp_path / "ws" / SOURCE_ID
    record = read_provenance(folder / "sales.csv")
    assert record["run_id"] == result.run_id and record["source_version"] == store.objects["sales.csv"].version
    found = materializations(result)
    assert set(found) == {partition_key_for_item(p) for p in store.objects}
    sales = found["sales.csv"]
    assert sales.metadata["sha256"].value == record["sha256"]
    assert sales.metadata["dagster/uri"].value == f"memory://{store.name}/sales.csv"  # type: ignore[attr-defined]
    assert sales.tags["dagster/data_version"] == store.objects["sales.csv"].version
    table = found["public.people"]
    assert table.metadata["dagster/row_count"].value == 3
    assert [c.name for c in table.metadata["dagster/column_schema"].value.columns] == ["id", "name"]
    assert table.metadata["dagster/table_name"].value == "public.people"
    checks = [e.event_specific_data for e in result.all_events
              if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert len(checks) == 3 and all(c.passed for c in checks)
    assert set(instance.get_dynamic_partitions(f"{N}_items")) == set(found)


def test_a_second_sync_skips_unchanged_items_and_fetches_changed_ones(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws")
    assert run_sync(defs, instance).success
    fetched = len(store.fetches)
    again = run_sync(defs, instance)
    assert again.success and len(store.fetches) == fetched and materializations(again) == {}
    store.put("sales.csv", b"id,total\n1,11\n", T0 + 30)
    third = run_sync(defs, instance)
    assert list(materializations(third)) == ["sales.csv"] and store.fetches[fetched:] == ["sales.csv"]
    assert (tmp_path / "ws" / SOURCE_ID / "sales.csv").read_bytes() == b"id,total\n1,11\n"


def test_a_sync_of_requested_items_fetches_only_those(store: MemoryStore, instance: DagsterInstance,
                                                      tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws")
    result = run_sync(defs, instance, items=[("sales.csv", store.objects["sales.csv"].version)])
    assert result.success and store.fetches == ["sales.csv"]
    assert run_sync(defs, instance, items=[("sales.csv", store.objects["sales.csv"].version)]).success
    assert store.fetches == ["sales.csv"]  # the version it was asked for has landed already
    assert run_sync(defs, instance, items=[("sales.csv", "")]).success  # no version: fetch anyway
    assert store.fetches == ["sales.csv", "sales.csv"]


def test_one_item_materializes_on_its_own_with_its_check(store: MemoryStore, instance: DagsterInstance,
                                                         tmp_path: Path) -> None:
    store.put("odd name...v2/x.csv", b"a\n1\n", T0)
    built = build_source_defs(source(store))
    key = partition_key_for_item("odd name...v2/x.csv")
    instance.add_dynamic_partitions(f"{N}_items", [key])
    defs = defs_for(store, tmp_path / "ws")
    resources = {k: v for k, v in defs.resources.items()}  # type: ignore[union-attr]
    result = materialize([*built.assets, *built.checks], partition_key=key, instance=instance,
                         resources=resources, selection=[AssetKey([N, "files"])])
    assert result.success
    [event] = result.get_asset_materialization_events()
    landed = event.event_specific_data.materialization
    assert landed.metadata["identifier"].value == "odd name...v2/x.csv"
    assert landed.tags["dagster/data_version"] == store.objects["odd name...v2/x.csv"].version
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.partition == key
    assert (tmp_path / "ws" / SOURCE_ID / "odd name...v2/x.csv").read_bytes() == b"a\n1\n"


def test_the_integrity_check_fails_on_a_tampered_or_missing_file(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    store.put("a.csv", b"a\n1\n", T0)
    assert run_sync(defs_for(store, tmp_path / "ws"), instance).success
    landed = tmp_path / "ws" / SOURCE_ID / "a.csv"
    record = read_provenance(landed)
    assert verify_landed(record)[0]
    landed.write_bytes(b"a\n2\n")
    passed, facts = verify_landed(record)
    assert not passed and facts["problem"] == "the file differs from its lineage record"
    landed.unlink()
    passed, facts = verify_landed(record)
    assert not passed and facts["problem"] == "the landed file is missing"


def step_events(result: Any, kind: DagsterEventType) -> int:
    return sum(1 for e in result.all_events if e.event_type == kind)


def test_a_terminal_error_fails_without_retry(store: MemoryStore, instance: DagsterInstance,
                                              tmp_path: Path) -> None:
    store.put("a.csv", b"1", T0)
    store.put("b.csv", b"2", T0)
    store.fail_next("a.csv", NotFoundError("a.csv vanished", source_id=SOURCE_ID))
    result = run_sync(defs_for(store, tmp_path / "ws"), instance)
    assert not result.success
    assert step_events(result, DagsterEventType.STEP_UP_FOR_RETRY) == 0
    assert list(materializations(result)) == ["b.csv"]  # the other item still landed


def test_a_retryable_error_is_retried_and_then_succeeds(store: MemoryStore, instance: DagsterInstance,
                                                        tmp_path: Path) -> None:
    store.put("a.csv", b"1", T0)
    store.put("b.csv", b"2", T0)
    store.fail_next("a.csv", ConnectionError("connection reset", source_id=SOURCE_ID))
    result = run_sync(defs_for(store, tmp_path / "ws"), instance)
    assert result.success
    assert step_events(result, DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert sorted(store.fetches) == ["a.csv", "b.csv"]  # b.csv landed once: the retry skipped it


def test_a_source_that_refuses_the_connection_fails_without_retry(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    source_config = DataSourceConfig(id=SOURCE_ID, type="memory", name="Memory", config={"store": "no-such-store"},
                                     metadata={"dagster": {"retry_delay_seconds": 0}})
    defs = build_definitions(sources=[source_config], workspace=str(tmp_path / "ws"))
    result = run_sync(defs, instance)
    assert not result.success and step_events(result, DagsterEventType.STEP_UP_FOR_RETRY) == 0
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert "no memory store" in failure.event_specific_data.error.message


def test_retries_stop_at_the_budget(store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    store.put("a.csv", b"1", T0)
    store.fail_next("a.csv", *[ConnectionError("reset", source_id=SOURCE_ID) for _ in range(5)])
    result = run_sync(defs_for(store, tmp_path / "ws", max_retries=2), instance)
    assert not result.success and step_events(result, DagsterEventType.STEP_UP_FOR_RETRY) == 2


# --- the sensor -----------------------------------------------------------------


def evaluate(defs: Definitions, instance: DagsterInstance, cursor: str | None) -> Any:
    sensor = defs.resolve_sensor_def(f"{N}_sensor")
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                   resources=dict(defs.resources or {}))
    return sensor.evaluate_tick(context)


def requested(data: Any) -> list[str]:
    items = []
    for request in data.run_requests:
        items.extend(i["identifier"] for i in request.run_config["ops"][f"{N}_sync_items"]["config"]["items"])
    return sorted(items)


def test_sensor_ticks_request_exactly_the_new_and_changed_items(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    defs = defs_for(store, tmp_path / "ws")
    fill(store)
    first = evaluate(defs, instance, None)
    assert requested(first) == ["dir/customers.csv", "public.people", "sales.csv"]
    assert len(first.run_requests) == 2  # batch_size 2
    assert all(r.run_key.startswith(f"{N}:") for r in first.run_requests)
    added = first.dynamic_partitions_requests[0].partition_keys
    assert sorted(added) == sorted(partition_key_for_item(p) for p in store.objects)

    repeat = evaluate(defs, instance, None)  # a tick repeated before its cursor was saved
    assert [r.run_key for r in repeat.run_requests] == [r.run_key for r in first.run_requests]

    quiet = evaluate(defs, instance, first.cursor)
    assert quiet.run_requests == []

    store.put("new.csv", b"n\n", T0 + 40)
    added_tick = evaluate(defs, instance, quiet.cursor)
    assert requested(added_tick) == ["new.csv"]

    store.put("sales.csv", b"id,total\n9,9\n", T0 + 50)
    overwritten = evaluate(defs, instance, added_tick.cursor)
    assert requested(overwritten) == ["sales.csv"]

    store.put("late.csv", b"l\n", T0 + 15)  # visible now, older than items seen before
    late = evaluate(defs, instance, overwritten.cursor)
    assert requested(late) == ["late.csv"]

    store.put("public.people", b"id\n1\n", T0, version="snap-2", table=TABLE)
    table = evaluate(defs, instance, late.cursor)
    assert requested(table) == ["public.people"]
    assert evaluate(defs, instance, table.cursor).run_requests == []


def test_sensor_skips_bucket_mates_that_already_landed(store: MemoryStore, instance: DagsterInstance,
                                                      tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws", lookback_seconds=0)
    first = evaluate(defs, instance, None)
    assert run_sync(defs, instance).success  # the runs the first tick asked for
    # an item that shares a cursor bucket with sales.csv, visible late with an old timestamp
    mate = next(f"late-{i}.csv" for i in range(100_000) if bucket_of(f"late-{i}.csv") == bucket_of("sales.csv"))
    store.put(mate, b"late\n", T0 - 86_400)
    late = evaluate(defs, instance, first.cursor)
    assert requested(late) == [mate]


def test_sensor_requests_carry_the_versions_they_saw(store: MemoryStore, instance: DagsterInstance,
                                                     tmp_path: Path) -> None:
    store.put("a.csv", b"1", T0)
    data = evaluate(defs_for(store, tmp_path / "ws"), instance, None)
    [request] = data.run_requests
    items = request.run_config["ops"][f"{N}_sync_items"]["config"]["items"]
    assert items == [{"identifier": "a.csv", "version": store.objects["a.csv"].version}]
    assert request.tags["da/source"] == SOURCE_ID


def test_a_tick_over_10000_items_is_fast_and_bounded(store: MemoryStore, instance: DagsterInstance,
                                                     tmp_path: Path) -> None:
    for i in range(10_000):
        store.put(f"d/{i:05d}.csv", b"x", T0 + i, version=f"v{i}")
    defs = defs_for(store, tmp_path / "ws", max_items_per_tick=2000, batch_size=500)
    started = time.perf_counter()
    data = evaluate(defs, instance, None)
    elapsed = time.perf_counter() - started
    assert elapsed < 10, elapsed
    assert 2000 <= len(requested(data)) <= 2100 and len(data.run_requests) <= 5
    cursor, total = data.cursor, len(requested(data))
    for _ in range(10):
        data = evaluate(defs, instance, cursor)
        cursor, total = data.cursor, total + len(requested(data))
    assert total == 10_000
    assert len(cursor) < 25_000


# --- the loop helper --------------------------------------------------------------


def test_run_coroutine_runs_and_refuses_to_nest() -> None:
    async def answer() -> int:
        return 42

    assert run_coroutine(answer()) == 42

    async def nested() -> None:
        run_coroutine(answer())

    with pytest.raises(NestedLoopError):
        asyncio.run(nested())
