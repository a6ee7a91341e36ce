"""The Dagster layer over an in-memory connector: datasets as assets, one event per set, repair, sensor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    materialize,
)

from connectors.base import DataSourceConfig
from connectors.errors import ConnectionError, NotFoundError
from connectors.landing.lineage import read_provenance
from connectors.syncing.aio import NestedLoopError, run_coroutine
from connectors.syncing.cursor import bucket_of
from connectors.syncing.dataset_manifest import read_manifest
from connectors.testing import MemoryStore
from da_pipelines.checks import verify_landed
from da_pipelines.definitions import build_definitions
from da_pipelines.factory import build_source_defs
from da_pipelines.translator import item_partition_key
from tests.helpers.dagster_layer import SOURCE_ID, T0, N, defs_for, evaluate, requested, run_sync, source

TABLE = {"row_count": 3, "columns": [{"name": "id", "type": "integer"}, {"name": "name", "type": "text"}],
         "table": "public.people", "sql": 'SELECT * FROM "public"."people"'}


def materializations(result: Any) -> dict[str, Any]:
    """Per asset key (and partition, where there is one), the run's materialization."""
    found = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            m = event.event_specific_data.materialization
            found[m.asset_key.to_user_string() + (f"[{m.partition}]" if m.partition else "")] = m
    return found


def counts(m: Any) -> dict[str, int]:
    return {k: m.metadata[f"items_{k}"].value for k in ("landed", "unchanged", "repaired", "failed")} | {
        "removed": m.metadata["items_removed_at_source"].value}


def checks(result: Any) -> list[Any]:
    return [e.event_specific_data for e in result.all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]


def fill(store: MemoryStore) -> None:
    store.put("sales.csv", b"id,total\n1,10\n2,20\n", T0 + 10)
    store.put("dir/customers.csv", b"id,name\n1,Ana\n", T0 + 20)
    store.put("public.people", b"id,name\n1,a\n2,b\n3,c\n", T0, version="snap-1", table=TABLE)


FILES = f"{N}/files"


def test_sync_lands_every_item_with_lineage_and_one_summary_event_per_set(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    result = run_sync(defs_for(store, tmp_path / "ws"), instance)
    assert result.success
    folder = tmp_path / "ws" / SOURCE_ID
    record = read_provenance(folder / "sales.csv")
    assert record["run_id"] == result.run_id and record["source_version"] == store.objects["sales.csv"].version
    [(key, files)] = materializations(result).items()  # one event for the set, not one per item
    assert key == FILES
    assert counts(files) == {"landed": 3, "unchanged": 0, "repaired": 0, "failed": 0, "removed": 0}
    assert files.metadata["bytes_landed"].value == sum(len(o.data) for o in store.objects.values())
    assert files.metadata["dagster/uri"].value == f"memory://{SOURCE_ID}"
    manifest = read_manifest(folder, "files")
    assert manifest["sales.csv"].sha256 == record["sha256"] and manifest["sales.csv"].path == "sales.csv"
    assert Path(files.metadata["manifest"].value).is_file()
    assert files.tags["dagster/data_version"]
    [check] = checks(result)
    assert check.passed and check.asset_key == AssetKey([N, "files"])


def test_a_resync_fetches_nothing_unchanged_and_the_data_version_moves_only_on_change(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws")
    first = materializations(run_sync(defs, instance))[FILES]
    fetched = len(store.fetches)
    again = materializations(run_sync(defs, instance))[FILES]
    assert len(store.fetches) == fetched and counts(again)["unchanged"] == 3
    assert again.tags["dagster/data_version"] == first.tags["dagster/data_version"]
    store.put("sales.csv", b"id,total\n1,11\n", T0 + 30)
    third = materializations(run_sync(defs, instance))[FILES]
    assert counts(third)["landed"] == 1 and store.fetches[fetched:] == ["sales.csv"]
    assert third.tags["dagster/data_version"] != first.tags["dagster/data_version"]
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


def test_item_sets_are_assets_and_materializing_one_lands_only_its_items(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    sets = [{"name": "csvs", "glob": "*.csv"}, {"name": "dirs", "prefix": "dir/"}]
    defs = defs_for(store, tmp_path / "ws", item_sets=sets)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {f"{N}/remote", f"{N}/csvs", f"{N}/dirs"}
    job = defs.resolve_job_def(f"{N}_sync")
    result = job.execute_in_process(instance=instance, asset_selection=[AssetKey([N, "dirs"])])
    assert result.success and store.fetches == ["dir/customers.csv"]
    assert list(materializations(result)) == [f"{N}/dirs"]
    both = materializations(run_sync(defs, instance))
    assert counts(both[f"{N}/csvs"]) == {"landed": 1, "unchanged": 1, "repaired": 0, "failed": 0, "removed": 0}
    assert counts(both[f"{N}/dirs"])["unchanged"] == 1


def test_a_deleted_or_damaged_landed_file_is_repaired_by_the_next_sync(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws", check={"mode": "full"})
    assert run_sync(defs, instance).success
    landed = tmp_path / "ws" / SOURCE_ID / "sales.csv"
    landed.unlink()
    repaired = run_sync(defs, instance)
    assert counts(materializations(repaired)[FILES])["repaired"] == 1 and landed.exists()
    landed.write_bytes(landed.read_bytes().replace(b"1", b"9"))  # same size, other bytes: only a hash sees it
    job = defs.resolve_job_def(f"{N}_sync")
    check_only = job.execute_in_process(instance=instance, asset_selection=[])
    [check] = checks(check_only) or checks(run_sync(defs, instance))
    assert not check.passed and check.metadata["damaged"].value == 1
    fixed = run_sync(defs, instance)
    assert counts(materializations(fixed)[FILES])["repaired"] == 1
    assert read_provenance(landed)["sha256"] == verify_landed(read_provenance(landed))[1]["actual_sha256"]
    assert all(c.passed for c in checks(fixed))


def test_a_deleted_lineage_record_is_restored_by_the_next_sync(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws")
    assert run_sync(defs, instance).success
    record = tmp_path / "ws" / SOURCE_ID / ".lineage" / "dir" / "customers.csv.json"
    record.unlink()
    again = materializations(run_sync(defs, instance))[FILES]
    assert counts(again)["repaired"] == 1 and record.is_file()
    assert read_provenance(tmp_path / "ws" / SOURCE_ID / "dir" / "customers.csv")["identifier"] == "dir/customers.csv"


def test_items_removed_at_source_are_counted_and_leave_the_manifest(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws")
    assert run_sync(defs, instance).success
    del store.objects["sales.csv"]
    after = materializations(run_sync(defs, instance))[FILES]
    assert counts(after)["removed"] == 1 and after.metadata["removed_items"].value == ["sales.csv"]
    assert "sales.csv" not in read_manifest(tmp_path / "ws" / SOURCE_ID, "files")


def test_a_partitioned_set_has_readable_keys_and_follows_the_source(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    fill(store)
    store.put("odd name...v2/x.csv", b"a\n1\n", T0)
    sets = [{"name": "files"}, {"name": "tables", "prefix": "public.", "partitioned": True}]
    sets[1]["name"] = "people"
    defs = defs_for(store, tmp_path / "ws", item_sets=[*sets, {"name": "odd", "prefix": "odd", "partitioned": True}])
    assert run_sync(defs, instance).success
    assert instance.get_dynamic_partitions(f"{N}__people") == ["public.people"]  # the identifier, as is
    assert instance.get_dynamic_partitions(f"{N}__odd") == [item_partition_key("odd name...v2/x.csv")]
    store.put("odd name...v2/x.csv", b"a\n2\n", T0 + 1)
    built = build_source_defs(source(store, item_sets=[*sets, {"name": "odd", "prefix": "odd", "partitioned": True}]))
    resources = dict(defs.resources or {})
    key = item_partition_key("odd name...v2/x.csv")
    result = materialize(built.assets, partition_key=key, instance=instance, resources=resources,
                         selection=[AssetKey([N, "odd"])])
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.event_specific_data.materialization.metadata["identifier"].value == "odd name...v2/x.csv"
    assert (tmp_path / "ws" / SOURCE_ID / "odd name...v2/x.csv").read_bytes() == b"a\n2\n"
    del store.objects["public.people"]
    assert run_sync(defs, instance).success
    assert instance.get_dynamic_partitions(f"{N}__people") == []  # removed items delete their partitions


def test_a_partitioned_set_over_the_limit_fails_with_a_clear_message(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("da_pipelines.assets.MAX_PARTITIONS", 2)
    fill(store)
    defs = defs_for(store, tmp_path / "ws", item_sets=[{"name": "main", "prefix": "nothing/"},
                                                       {"name": "all", "partitioned": True}])
    result = run_sync(defs, instance)
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert "has 3 items, more than the 2 a partitioned set may hold" in failure.event_specific_data.error.message


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
    files = materializations(result)[FILES]  # the other item still landed, and the summary says so
    assert counts(files)["landed"] == 1 and files.metadata["failed_items"].value == ["a.csv"]


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


def test_sensor_ticks_request_exactly_the_new_and_changed_items(
        store: MemoryStore, instance: DagsterInstance, tmp_path: Path) -> None:
    defs = defs_for(store, tmp_path / "ws")
    fill(store)
    first = evaluate(defs, instance, None)
    assert requested(first) == ["dir/customers.csv", "public.people", "sales.csv"]
    assert len(first.run_requests) == 2  # batch_size 2
    assert all(r.run_key.startswith(f"{N}:") for r in first.run_requests)
    assert all(r.asset_selection == [AssetKey([N, "files"])] for r in first.run_requests)

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


def test_sensor_requests_runs_only_for_the_sets_that_changed(store: MemoryStore, instance: DagsterInstance,
                                                              tmp_path: Path) -> None:
    fill(store)
    defs = defs_for(store, tmp_path / "ws", item_sets=[{"name": "csvs", "glob": "*.csv"}, {"name": "dirs",
                                                                                             "prefix": "dir/"}])
    first = evaluate(defs, instance, None)
    store.put("dir/new.csv", b"n\n", T0 + 40)
    changed = evaluate(defs, instance, first.cursor)
    [request] = changed.run_requests
    assert sorted(k.to_user_string() for k in request.asset_selection) == [f"{N}/csvs", f"{N}/dirs"]
    store.put("other.txt", b"t\n", T0 + 50)  # only in no set but the default? here: in none
    assert evaluate(defs, instance, changed.cursor).run_requests == []
    store.put("dir/x.txt", b"t\n", T0 + 60)
    [only_dirs] = evaluate(defs, instance, changed.cursor).run_requests
    assert only_dirs.asset_selection == [AssetKey([N, "dirs"])]


def test_sensor_requests_carry_the_versions_they_saw(store: MemoryStore, instance: DagsterInstance,
                                                     tmp_path: Path) -> None:
    store.put("a.csv", b"1", T0)
    data = evaluate(defs_for(store, tmp_path / "ws"), instance, None)
    [request] = data.run_requests
    items = request.run_config["ops"][f"{N}_sync_items"]["config"]["items"]
    assert items == [{"identifier": "a.csv", "version": store.objects["a.csv"].version}]
    assert request.tags["da/source"] == SOURCE_ID


def test_a_tick_over_10000_items_is_bounded(store: MemoryStore, instance: DagsterInstance,
                                            tmp_path: Path) -> None:
    """Each tick requests at most its share (its time is measured in benchmarks/bench_sensor.py)."""
    for i in range(10_000):
        store.put(f"d/{i:05d}.csv", b"x", T0 + i, version=f"v{i}")
    defs = defs_for(store, tmp_path / "ws", max_items_per_tick=2000, batch_size=500)
    data = evaluate(defs, instance, None)
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
