"""The API's shared listing is held on disk, not in memory: counted, not timed.

A glob over a source of N items (fetch job or thread attach) loads the source's listing once and
keeps it for ``cache_seconds``. It was a list of N ``DataItem`` in the cache (~600 MiB at 1,000,000
files, the "api fetch job" row of benchmarks/results/bench_growth.md); now it is a spill file read a
batch at a time. The objects the cache holds, and the memory traced while listing, must not grow
with N; the spill file must be gone once loaded, failed or cancelled (docs/RELIABILITY.md row 70).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import threading
import time
import tracemalloc
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.api.discovery import LISTINGS_FOLDER, ORPHAN_MARGIN_SECONDS
from connectors.base import DataItem
from connectors.errors import DataFetchError
from connectors.plugins import register_connector, unregister_connector
from connectors.testing import MemoryConnector, memory_store
from tests.api.conftest import Api, open_policy, start_api

WANTED = [f"wanted/part-{i}.csv" for i in range(3)]
COUNT: dict[str, int] = {}  # store name -> how many filler items its listing generates
FAIL_AFTER: dict[str, int] = {}  # store name -> raise after this many items
HOLD = threading.Event()  # set: listings go on; clear: they wait after their first item
HELD = threading.Event()  # a listing is waiting on HOLD


class GeneratedConnector(MemoryConnector):
    """A memory store's items, then COUNT filler items generated one at a time (held only by list_items)."""

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        return [item async for item in self.iter_items(path)]

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        for item in await super().list_items(path):
            yield item
        name = self.config.config["store"]
        for index in range(COUNT[name]):
            if index == 1 and not HOLD.is_set():
                HELD.set()
                await asyncio.to_thread(HOLD.wait, 60)
            if index == FAIL_AFTER.get(name):
                raise DataFetchError("the listing broke off", source_id=self.source_id)
            yield DataItem(name=f"f{index:07d}.bin", path=f"filler/{index // 1000:04d}/f{index:07d}.bin", size=64,
                           modified_at=1, metadata={"version": f"v{index}", "etag": f"e{index:032d}"})


@pytest.fixture
def generated(tmp_path: Path, secret_store_env: Path) -> Iterator[Api]:
    register_connector("generated", GeneratedConnector, replace=True)
    HOLD.set()
    try:
        yield from start_api(tmp_path, policy=open_policy(tmp_path, "generated"), timeout_seconds=900)
    finally:
        HOLD.set()
        unregister_connector("generated")


def _source(api: Api, source_id: str, count: int) -> None:
    store = memory_store(f"growth-{source_id}")
    for name in WANTED:
        store.put(name, b"a\n1\n", modified_at=1)
    COUNT[f"growth-{source_id}"] = count
    api.call("POST", "/v1/data-sources", expect=201, json={
        "id": source_id, "type": "generated", "name": source_id, "config": {"store": f"growth-{source_id}"}})


def _reachable(root: Any) -> int:
    """The number of Python objects reachable from ``root`` (what it keeps alive; not classes, modules, code)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType, types.FunctionType, types.CodeType)):
            continue
        seen.add(id(item))
        stack.extend(gc.get_referents(item))
    return len(seen)


def _glob_twice(api: Api, source_id: str) -> tuple[int, int]:
    """A fetch job's glob and a thread attach's glob over the source: (objects the cache holds, peak traced bytes)."""
    tracemalloc.start()
    try:
        job = api.call("POST", f"/v1/data-sources/{source_id}/fetch", key="read",
                       json={"glob": "wanted/*.csv", "workspace": f"w-{source_id}"}, expect=202).json()
        assert job["progress"]["items_total"] == len(WANTED)
        (api.settings.workspace_base / f"t-{source_id}").mkdir(parents=True)
        attached = api.call("POST", f"/v1/threads/t-{source_id}/data", key="read", expect=200,
                            json={"references": [{"source_id": source_id, "glob": "wanted/part-[01].csv"}]}).json()
        assert sorted(f["name"] for f in attached["data"]) == ["part-0.csv", "part-1.csv"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    state = api.client.app.state.da_sources  # type: ignore[attr-defined]
    return _reachable([value for _, _, value in state.cache._entries.values()]), peak


def test_the_cached_listing_holds_the_same_whatever_the_item_count(generated: Api) -> None:
    _source(generated, "small", 10_000)
    _source(generated, "big", 100_000)
    held_small, peak_small = _glob_twice(generated, "small")
    held_big, peak_big = _glob_twice(generated, "big")
    # the cache then holds both listings, 110,000 items, in a few hundred objects (a list of items: > 100,000)
    assert held_small < held_big < 1_000, (held_small, held_big)
    # listing 100,000 items traced about what listing 10,000 did: batches, never the whole source
    assert peak_big < peak_small + 8 * 2**20, (peak_small, peak_big)


def test_browse_pages_through_the_spilled_listing_in_order(generated: Api) -> None:
    _source(generated, "pages", 2_500)
    top = generated.call("GET", "/v1/data-sources/pages/browse", expect=200).json()
    assert [e["path"] for e in top["data"]] == ["filler/", "wanted/"] and not top["has_more"]
    seen: list[str] = []
    after = ""
    while True:
        page = generated.call("GET", f"/v1/data-sources/pages/browse?path=filler/0001/&limit=300{after}",
                              expect=200).json()
        seen += [e["path"] for e in page["data"]]
        if not page["has_more"]:
            break
        after = f"&after={page['next_cursor']}"
    assert seen == [f"filler/0001/f{i:07d}.bin" for i in range(1000, 2000)]
    folders = generated.call("GET", "/v1/data-sources/pages/browse?path=filler/&limit=2", expect=200).json()
    assert [e["path"] for e in folders["data"]] == ["filler/0000/", "filler/0001/"] and folders["has_more"]
    rest = generated.call("GET", f"/v1/data-sources/pages/browse?path=filler/&limit=2&after={folders['next_cursor']}",
                          expect=200).json()
    assert [e["path"] for e in rest["data"]] == ["filler/0002/"] and not rest["has_more"]
    item = generated.call("GET", "/v1/data-sources/pages/browse?path=wanted/&limit=1", expect=200).json()["data"][0]
    assert item == {"object": "data_source.item", "path": "wanted/part-0.csv", "name": "part-0.csv", "size": 4,
                    "modified_at": 1, "metadata": item["metadata"]} and item["metadata"]["version"]


def _spills(api: Api) -> list[str]:
    folder = api.settings.thread_state_dir / LISTINGS_FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(autouse=True)
def _own_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's temporary folder, as this process sees it, is the test's own: other processes'
    spill files in the shared /tmp (a sync running beside the suite) are not this test's to count."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


def _temp_spills() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("da-listing-*")}


def test_no_spill_file_outlives_a_listing_loaded_failed_or_cancelled(tmp_path: Path, secret_store_env: Path) -> None:
    register_connector("generated", GeneratedConnector, replace=True)
    in_temp = _temp_spills()
    try:
        for api in start_api(tmp_path, policy=open_policy(tmp_path, "generated"), timeout_seconds=2):
            _source(api, "ok", 5_000)
            _source(api, "broken", 5_000)
            FAIL_AFTER["growth-broken"] = 3_000
            _source(api, "stalled", 5_000)
            HOLD.set()
            api.call("POST", "/v1/data-sources/ok/fetch", key="read", expect=202,
                     json={"glob": "wanted/*", "workspace": "w1"})
            assert _spills(api) == []  # loaded: unlinked, though still cached and read
            api.call("GET", "/v1/data-sources/ok/browse", expect=200)
            answer = api.call("POST", "/v1/data-sources/broken/fetch", key="read",
                              json={"glob": "wanted/*", "workspace": "w2"})
            assert answer.status_code >= 400 and _spills(api) == []  # failed mid-listing
            HOLD.clear()
            HELD.clear()
            stalled = threading.Thread(target=api.call, args=("GET", "/v1/data-sources/stalled/browse"))
            stalled.start()
            assert HELD.wait(30)
            assert len(_spills(api)) == 1  # the spill file exists while the listing loads: this test sees it
            stalled.join(30)  # the deadline (2 s) cancels the load
            HOLD.set()  # the cancelled load's waiting thread ends now, not after its 60 s at shutdown
            assert _spills(api) == []
            assert _temp_spills() <= in_temp  # nothing went to the system's temporary folder either
    finally:
        HOLD.set()
        FAIL_AFTER.clear()
        unregister_connector("generated")


def test_a_killed_servers_spill_files_are_swept_before_the_next_load_and_nothing_else(
        tmp_path: Path, secret_store_env: Path) -> None:
    register_connector("generated", GeneratedConnector, replace=True)
    outside = tmp_path / "outside.sqlite"
    outside.write_bytes(b"keep me")
    HOLD.set()
    try:
        for api in start_api(tmp_path, policy=open_policy(tmp_path, "generated"), timeout_seconds=2):
            folder = api.settings.thread_state_dir / LISTINGS_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
            orphan, live, other = (folder / n for n in ("da-listing-dead.sqlite", "da-listing-live.sqlite",
                                                        "notes.sqlite"))
            for path in (orphan, live, other):
                path.write_bytes(b"x")
            (folder / "da-listing-link.sqlite").symlink_to(outside)
            old = time.time() - 2 - ORPHAN_MARGIN_SECONDS - 5  # idle past the deadline and the margin
            for path in (orphan, other):
                os.utime(path, (old, old))
            os.utime(folder / "da-listing-link.sqlite", (old, old), follow_symlinks=False)
            _source(api, "after-a-kill", 100)
            api.call("GET", "/v1/data-sources/after-a-kill/browse", expect=200)
            assert _spills(api) == ["da-listing-link.sqlite", "da-listing-live.sqlite", "notes.sqlite"]
            assert outside.read_bytes() == b"keep me"  # a link is never followed, nor removed
    finally:
        unregister_connector("generated")


def test_a_state_folder_that_cannot_be_written_spills_to_the_temporary_folder(tmp_path: Path,
                                                                              secret_store_env: Path) -> None:
    register_connector("generated", GeneratedConnector, replace=True)
    blocked = tmp_path / "state-is-a-file"
    blocked.write_text("not a folder")
    in_temp = _temp_spills()
    try:
        for api in start_api(tmp_path, policy=open_policy(tmp_path, "generated"), state_dir=blocked):
            _source(api, "elsewhere", 2_000)
            top = api.call("GET", "/v1/data-sources/elsewhere/browse", expect=200).json()
            assert [e["path"] for e in top["data"]] == ["filler/", "wanted/"]
            assert _temp_spills() <= in_temp  # spilled there, and unlinked once loaded
    finally:
        unregister_connector("generated")
