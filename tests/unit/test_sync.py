"""The sync logic (connectors.syncing.source_sync) over the in-memory connector: repair, removal, prune, unsafe names,
exclude, progress, and the framework's checks around any connector (connectors.checked_fetch)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import DataItem, DataSourceConfig, DataSourceConnector
from connectors.checked_fetch import fetch_checked, fetch_many_checked, landed_relative
from connectors.errors import ConfigurationError, NotFoundError, UnsafeNameError
from connectors.landing.lineage import read_provenance, read_record, record_path
from connectors.plugins import register_connector, unregister_connector
from connectors.syncing.progress_log import ProgressLog
from connectors.syncing.source_sync import SyncOptions, SyncReport, sync_options, sync_source
from connectors.testing import MemoryConnector, MemoryStore, memory_store
from connectors.type_table import settings_model_for

T0 = 1_700_000_000


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    register_connector("memory", MemoryConnector, replace=True)
    name = f"sync-{uuid.uuid4().hex[:8]}"
    store = memory_store(name)
    store.name = name  # type: ignore[attr-defined]
    for index, path in enumerate(["a.csv", "b.csv", "d/c.csv"]):
        store.put(path, f"x,y\n{index},{index}\n".encode(), modified_at=T0)
    yield store


def config(store: MemoryStore, **sync: Any) -> DataSourceConfig:
    return DataSourceConfig(id="mem", type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
                            metadata={"sync": sync} if sync else {})


def sync(store: MemoryStore, folder: Path, **kwargs: Any) -> SyncReport:
    report = SyncReport()
    options = kwargs.pop("options", None)

    async def run() -> None:
        async for _ in sync_source(MemoryConnector(config(store, **(options or {}))), folder, report=report,
                                   **kwargs):
            pass

    asyncio.run(run())
    return report


# --- a sync repairs what is missing or altered ---------------------------------------


def test_sync_repairs_a_deleted_and_an_appended_file(store: MemoryStore, tmp_path: Path) -> None:
    assert len(sync(store, tmp_path).landed) == 3
    (tmp_path / "a.csv").unlink()
    with (tmp_path / "d" / "c.csv").open("a") as handle:
        handle.write("9,9\n")
    store.fetches.clear()

    report = sync(store, tmp_path)

    assert sorted(report.repaired) == ["a.csv", "d/c.csv"]
    assert sorted(r["identifier"] for r in report.landed) == ["a.csv", "d/c.csv"]
    assert report.unchanged == ["b.csv"] and not report.failed
    assert sorted(store.fetches) == ["a.csv", "d/c.csv"]
    assert (tmp_path / "d" / "c.csv").read_bytes() == store.objects["d/c.csv"].data
    assert (tmp_path / "a.csv").read_bytes() == store.objects["a.csv"].data
    assert sync(store, tmp_path).unchanged == ["a.csv", "b.csv", "d/c.csv"]


def test_same_size_change_is_found_by_its_mtime_then_its_hash(store: MemoryStore, tmp_path: Path) -> None:
    sync(store, tmp_path)
    record = read_provenance(tmp_path / "b.csv")
    assert record["mtime_ns"] == (tmp_path / "b.csv").stat().st_mtime_ns  # the cheap test's reference
    (tmp_path / "b.csv").write_bytes(b"x,y\n7,7\n")  # same size, other bytes
    os.utime(tmp_path / "a.csv", ns=(T0 * 10**9, T0 * 10**9))  # touched only: same bytes

    report = sync(store, tmp_path)

    assert report.repaired == ["b.csv"]
    assert sorted(report.unchanged) == ["a.csv", "d/c.csv"]
    assert (tmp_path / "b.csv").read_bytes() == store.objects["b.csv"].data


def test_records_without_mtime_fall_back_to_their_fetch_time(store: MemoryStore, tmp_path: Path) -> None:
    sync(store, tmp_path)
    for name in ("a.csv", "b.csv"):  # records written before mtime_ns existed
        path = record_path(tmp_path, name)
        record = json.loads(path.read_text())
        del record["mtime_ns"]
        path.write_text(json.dumps(record))
    (tmp_path / "a.csv").write_bytes(b"x,y\n7,7\n")  # altered after its record was written

    report = sync(store, tmp_path)

    assert report.repaired == ["a.csv"]
    assert sorted(report.unchanged) == ["b.csv", "d/c.csv"]  # b.csv: older than its record, not hashed


def test_force_lands_everything(store: MemoryStore, tmp_path: Path) -> None:
    sync(store, tmp_path)
    report = sync(store, tmp_path, force=True)
    assert len(report.landed) == 3 and not report.unchanged and not report.repaired


# --- items deleted at the source ----------------------------------------------------


def test_deleted_items_are_reported_and_kept(store: MemoryStore, tmp_path: Path) -> None:
    sync(store, tmp_path)
    del store.objects["d/c.csv"]
    report = sync(store, tmp_path)
    assert report.removed == ["d/c.csv"] and report.pruned == []
    assert (tmp_path / "d" / "c.csv").exists() and read_record(tmp_path, "d/c.csv") is not None


def test_prune_removes_the_landed_file_and_its_record_only(store: MemoryStore, tmp_path: Path) -> None:
    sync(store, tmp_path)
    (tmp_path / "d" / "notes.txt").write_text("the agent's own file")
    del store.objects["d/c.csv"]

    report = sync(store, tmp_path, options={"prune": True})

    assert report.removed == report.pruned == ["d/c.csv"]
    assert not (tmp_path / "d" / "c.csv").exists() and read_record(tmp_path, "d/c.csv") is None
    assert (tmp_path / "d" / "notes.txt").read_text() == "the agent's own file"
    assert sorted(report.unchanged) == ["a.csv", "b.csv"]
    assert sync(store, tmp_path, options={"prune": True}).removed == []


def test_prune_leaves_a_link_planted_in_place_of_the_file(store: MemoryStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    folder = tmp_path / "ws"
    sync(store, folder)
    (folder / "a.csv").unlink()
    (folder / "a.csv").symlink_to(outside)
    del store.objects["a.csv"]
    assert sync(store, folder, options={"prune": True}).pruned == ["a.csv"]
    assert outside.read_text() == "not ours" and (folder / "a.csv").is_symlink()


def test_an_empty_listing_never_prunes(store: MemoryStore, tmp_path: Path) -> None:
    sync(store, tmp_path)
    store.objects.clear()
    report = sync(store, tmp_path, options={"prune": True})
    assert sorted(report.removed) == ["a.csv", "b.csv", "d/c.csv"] and report.pruned == []
    assert (tmp_path / "a.csv").exists()


def test_requested_items_do_not_report_removals(store: MemoryStore, tmp_path: Path) -> None:
    from connectors.syncing.source_sync import ItemRequest

    sync(store, tmp_path)
    del store.objects["d/c.csv"]
    report = sync(store, tmp_path, requested=[ItemRequest("a.csv", "")])
    assert report.removed == [] and [r["identifier"] for r in report.landed] == ["a.csv"]


# --- unsafe items are skipped and reported; exclude ----------------------------------


def test_an_unsafe_name_is_skipped_and_the_rest_lands(store: MemoryStore, tmp_path: Path) -> None:
    store.put("incoming/2026/trailing dot.", b"x", modified_at=T0)
    store.put("../../escape.txt", b"x", modified_at=T0)

    report = sync(store, tmp_path)

    assert sorted(i for i, _ in report.skipped) == ["../../escape.txt", "incoming/2026/trailing dot."]
    assert all("unsafe name" in reason for _, reason in report.skipped)
    assert len(report.landed) == 3 and not report.failed
    assert "incoming/2026/trailing dot." not in store.fetches  # the connector never saw it
    assert not (tmp_path.parent / "escape.txt").exists()
    again = sync(store, tmp_path)
    assert len(again.skipped) == 2 and len(again.unchanged) == 3 and not again.failed


def test_exclude_patterns_are_not_listed_landed_or_removed(store: MemoryStore, tmp_path: Path) -> None:
    store.put("tmp/scratch.partial", b"x", modified_at=T0)
    report = sync(store, tmp_path, options={"exclude": ["*.partial", "d/*"]})
    assert sorted(r["identifier"] for r in report.landed) == ["a.csv", "b.csv"]
    assert report.removed == [] and report.skipped == []
    sync(store, tmp_path)  # everything lands, then d/* is excluded again: not "removed at source"
    assert sync(store, tmp_path, options={"exclude": ["d/*"], "prune": True}).removed == []
    assert (tmp_path / "d" / "c.csv").exists()


def test_sync_options_live_in_metadata_sync(store: MemoryStore) -> None:
    assert sync_options(config(store, exclude=["*.tmp"], prune=True)) == SyncOptions(exclude=["*.tmp"], prune=True)
    with pytest.raises(ConfigurationError, match=r"source 'mem'.*metadata\.sync\.purne"):
        sync_options(config(store, purne=True))


# --- every path that lands bytes reports them ----------------------------------------


def test_progress_counts_the_bytes_of_connectors_that_report_none(store: MemoryStore, tmp_path: Path) -> None:
    lines: list[str] = []
    progress = ProgressLog(lines.append, total_items=0)
    sync(store, tmp_path, on_bytes=progress.on_bytes, on_item_done=progress.item_done,
         on_planned=progress.set_total)
    size = sum(len(o.data) for o in store.objects.values())
    assert progress.summary().startswith(f"3/3 items, {size} B")


# --- a minimal plugin ---------------------------------------------------------------


class SeedConnector(DataSourceConnector):
    """Written to the original interface: the six methods, no settings_model, writes its own files."""

    seen: list[str] = []

    async def connect(self) -> bool:
        self.files: dict[str, str] = self.config.config["files"]
        return True

    async def disconnect(self) -> None:
        pass

    async def test_connection(self) -> bool:
        return True

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        return [DataItem(name=n, path=n, size=len(t), modified_at=T0, metadata={"version": t}) for n, t in
                self.files.items()]

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        SeedConnector.seen.append(identifier)
        if identifier not in self.files:
            raise NotFoundError(f"no {identifier!r}")
        target = os.path.join(workspace, self.config.config.get("redirect", {}).get(identifier, identifier))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write(self.files[identifier])
        return target

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        return {"version": self.files[identifier]}


@pytest.fixture
def seed_type() -> Iterator[str]:
    register_connector("seedstyle", SeedConnector, replace=True)
    SeedConnector.seen = []
    yield "seedstyle"
    unregister_connector("seedstyle")


def seed_source(files: dict[str, str], **extra: Any) -> SeedConnector:
    return SeedConnector(DataSourceConfig(id="seed", type="seedstyle", name="Seed",
                                          config={"files": files, **extra}))


def test_register_connector_accepts_a_class_without_settings_model(seed_type: str) -> None:
    settings_model_for(seed_type).model_validate({"anything": 1})  # a free mapping: the plugin reads it


def test_the_framework_writes_the_record_a_plugin_did_not(seed_type: str, tmp_path: Path) -> None:
    async def run() -> dict[str, Any]:
        async with seed_source({"a/b.txt": "hello"}) as connector:
            return await fetch_checked(connector, "a/b.txt", tmp_path)

    record = asyncio.run(run())
    assert read_provenance(tmp_path / "a" / "b.txt") == record
    assert (record["source_id"], record["identifier"], record["source_version"]) == ("seed", "a/b.txt", "hello")
    assert record["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert record["size"] == 5 and record["source_type"] == seed_type


def test_unsafe_identifiers_never_reach_a_plugin(seed_type: str, tmp_path: Path) -> None:
    folder = tmp_path / "ws" / "seed"

    async def run() -> list[Any]:
        async with seed_source({"../../escape.txt": "x", "ok.txt": "y"}) as connector:
            return await fetch_many_checked(connector, ["../../escape.txt", "ok.txt"], folder)

    escaped, ok = asyncio.run(run())
    assert isinstance(escaped.error, UnsafeNameError) and ok.ok
    assert SeedConnector.seen == ["ok.txt"]
    assert not (tmp_path / "escape.txt").exists()


def test_a_returned_path_outside_the_workspace_is_refused_and_reported(seed_type: str, tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    connector = seed_source({"a.txt": "x", "b.txt": "y"}, redirect={"a.txt": "../outside.txt"})
    report = SyncReport()

    async def run() -> None:
        async for _ in sync_source(connector, folder, report=report):
            pass

    asyncio.run(run())
    assert [i for i, _ in report.skipped] == ["a.txt"] and "not a file inside the workspace" in report.skipped[0][1]
    assert [r["identifier"] for r in report.landed] == ["b.txt"] and not report.failed
    assert (tmp_path / "outside.txt").read_text() == "x"  # reported, not touched: it is not ours
    assert read_record(tmp_path, "outside.txt") is None


def test_landed_relative_refuses_links_and_the_lineage_tree(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / ".lineage").mkdir()
    (tmp_path / ".lineage" / "r.json").write_text("{}")
    assert landed_relative(tmp_path, str(tmp_path / "real" / "f")) == "real/f"
    for path in (tmp_path / "link" / "f", tmp_path / ".lineage" / "r.json", tmp_path / "real", tmp_path / "none"):
        with pytest.raises(UnsafeNameError):
            landed_relative(tmp_path, str(path))


def test_a_plugin_writing_over_another_items_file_is_reported(seed_type: str, tmp_path: Path) -> None:
    async def run(connector: SeedConnector, identifier: str) -> Any:
        async with connector:
            return (await fetch_many_checked(connector, [identifier], tmp_path))[0]

    assert asyncio.run(run(seed_source({"b.txt": "b"}), "b.txt")).ok
    clash = asyncio.run(run(seed_source({"a.txt": "a"}, redirect={"a.txt": "b.txt"}), "a.txt"))
    assert isinstance(clash.error, UnsafeNameError) and "holds 'b.txt'" in str(clash.error)
    assert read_provenance(tmp_path / "b.txt")["identifier"] == "b.txt"  # its record is not rewritten
