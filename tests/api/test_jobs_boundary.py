"""Fetch jobs behind the trust boundary (docs/RELIABILITY.md rows 32, 34, 35, 36): their own trusted root
apart from thread folders, each key's own jobs, bounded retention, a listing shared by concurrent globs, and
names with line separators or backslashes refused on every path."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from connectors.api.api_settings import ApiSettings
from connectors.api.fetch_jobs import Job, JobManager
from connectors.api.fetching import workspace_dir
from connectors.base import DataItem, DataSourceConfig, DataSourceType
from connectors.errors import ConfigurationError
from connectors.plugins import register_connector, unregister_connector
from connectors.testing import MemoryConnector, memory_store
from tests.api.conftest import Api, local_source, make_settings, open_policy, start_api

SEPARATORS = ["\x00", "\r", "\n", "\x85", "\u2028", "\u2029", "\x1b", "\\"]


def _wait(api: Api, job_id: str, key: str = "manage") -> dict[str, Any]:
    for _ in range(600):
        job = api.call("GET", f"/v1/data-sources/docs/jobs/{job_id}", key=key, expect=200).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def _fetch(api: Api, key: str, workspace: str = "w", **what: Any) -> dict[str, Any]:
    body = {"items": ["a.csv"], "workspace": workspace, **what}
    return api.call("POST", "/v1/data-sources/docs/fetch", key=key, json=body, expect=202).json()


def test_a_workspace_swapped_for_a_link_after_the_check_lands_nothing_outside(tmp_path: Path,
                                                                                data_root: Path) -> None:
    settings = make_settings(tmp_path)
    source = DataSourceConfig(id="docs", type=DataSourceType.LOCAL_FILE, name="Docs", config={"root": str(data_root)})
    outside = tmp_path / "outside"
    outside.mkdir()

    async def run() -> Any:
        jobs = JobManager(settings)
        folder = workspace_dir(settings, "w")  # the request's check: a plain folder
        job = jobs.start(source, ["a.csv", "2024/q1.csv"], "w", folder, None, "key-1")
        folder.rename(tmp_path / "moved")  # the job has not run yet: the agent swaps the folder for a link
        folder.symlink_to(outside)
        assert job.task is not None
        await job.task
        return job

    job = asyncio.run(run())
    assert job.status == "failed" and job.files == []
    assert len(job.errors) == 2 and all("link" in e["detail"] for e in job.errors)
    assert list(outside.iterdir()) == []


def test_jobs_land_apart_from_thread_folders(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    thread = api.settings.workspace_base / "thread-1"
    (thread / "generated").mkdir(parents=True)
    (thread / "a.csv").write_text("the agent's own file\n")
    done = _wait(api, _fetch(api, "read", workspace="thread-1", items=["a.csv", "2024/q1.csv"])["id"])
    assert done["status"] == "succeeded"
    assert (thread / "a.csv").read_text() == "the agent's own file\n"  # never touched
    assert sorted(p.name for p in thread.iterdir()) == ["a.csv", "generated"]
    assert (api.settings.jobs_base / "thread-1" / "a.csv").read_text().startswith("x,y")
    assert api.settings.jobs_base.parent == api.settings.workspace_base and api.settings.jobs_base.name[0] == "."


@pytest.mark.parametrize("jobs_dir", ["workspace", ".", "workspace/thread-1", "workspace/t2/x"])
def test_a_jobs_dir_that_would_reach_a_thread_folder_is_refused(tmp_path: Path, jobs_dir: str) -> None:
    with pytest.raises(ConfigurationError, match="DA_API_JOBS_DIR"):
        make_settings(tmp_path, jobs_dir=tmp_path / jobs_dir)
    assert make_settings(tmp_path, jobs_dir=tmp_path / "jobs").jobs_base == tmp_path / "jobs"


def test_a_key_sees_and_cancels_its_own_jobs_only(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    mine = _fetch(api, "manage")
    theirs = _fetch(api, "read")
    _wait(api, mine["id"])
    _wait(api, theirs["id"], key="read")
    listed = api.call("GET", "/v1/data-sources/docs/jobs", key="read", expect=200).json()
    assert [j["id"] for j in listed["data"]] == [theirs["id"]]
    api.call("GET", f"/v1/data-sources/docs/jobs/{mine['id']}", key="read", expect=404)
    api.call("DELETE", f"/v1/data-sources/docs/jobs/{mine['id']}", key="read", expect=404)
    # a manage key sees every job, and cancels only its own
    everything = api.call("GET", "/v1/data-sources/docs/jobs", expect=200).json()
    assert [j["id"] for j in everything["data"]] == [mine["id"], theirs["id"]]
    api.call("DELETE", f"/v1/data-sources/docs/jobs/{theirs['id']}", expect=403)
    api.call("DELETE", f"/v1/data-sources/docs/jobs/{theirs['id']}", key="read", expect=200)


def test_job_lists_are_paged(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    started = [_wait(api, _fetch(api, "read")["id"], key="read")["id"] for _ in range(5)]  # one at a time
    seen: list[str] = []
    after: str | None = None
    while True:
        url = "/v1/data-sources/docs/jobs?limit=2" + (f"&after={after}" if after else "")
        page = api.call("GET", url, key="read", expect=200).json()
        assert len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert seen == started
    api.call("GET", "/v1/data-sources/docs/jobs?after=nope", key="read", expect=400)
    api.call("GET", "/v1/data-sources/docs/jobs?limit=100000", key="read", expect=422)


def test_finished_jobs_are_kept_within_a_count_and_a_size(tmp_path: Path, data_root: Path) -> None:
    source = DataSourceConfig(id="docs", type=DataSourceType.LOCAL_FILE, name="Docs", config={"root": str(data_root)})

    async def run(settings: ApiSettings, count: int) -> list[Job]:
        jobs = JobManager(settings)
        for _ in range(count):
            job = jobs.start(source, ["a.csv"], "w", workspace_dir(settings, "w"), None, "key-1")
            assert job.task is not None
            await job.task
        return jobs.of_source("docs")

    kept = asyncio.run(run(make_settings(tmp_path, keep_jobs=3), 6))
    assert len(kept) == 3
    one_view = max(job.view_bytes for job in kept)  # a job with one landed file and its lineage
    assert one_view > 100
    assert len(asyncio.run(run(make_settings(tmp_path, keep_jobs_bytes=2 * one_view + 1), 6))) == 2


@pytest.mark.parametrize("bad", SEPARATORS)
def test_separators_and_backslashes_are_refused_in_fetch_and_attach(api: Api, data_root: Path, bad: str) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    fetch = "/v1/data-sources/docs/fetch"
    for body in ({"items": [f"a{bad}b.csv"], "workspace": "w"}, {"glob": f"*{bad}*", "workspace": "w"}):
        detail = api.call("POST", fetch, json=body, expect=422).json()["detail"]
        assert "backslash" in str(detail) or "separator" in str(detail)
    for ref in ({"path": f"x{bad}.csv"}, {"glob": f"{bad}*"}):
        api.call("POST", "/v1/threads/t1/data", json={"references": [{"source_id": "docs", **ref}]}, expect=422)
    assert not (api.settings.workspace_base / "t1").exists()


@pytest.mark.parametrize("name", ["a\u2028b.csv", "a\x85b.csv", "a\u2029b.csv", "a\rb.csv"])
def test_a_listed_name_with_a_line_separator_never_lands_nor_reaches_a_manifest(api: Api, tmp_path: Path,
                                                                                  name: str) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    (root / name).write_text("x\n1\n")
    (root / "ok.csv").write_text("x\n1\n")
    api.call("POST", "/v1/data-sources", json=local_source(root), expect=201)
    thread = api.settings.workspace_base / "t1"
    thread.mkdir(parents=True)
    answer = api.call("POST", "/v1/threads/t1/data", json={"references": [{"source_id": "docs", "glob": "*"}]})
    assert answer.status_code in (400, 200), answer.text
    if answer.status_code == 200:  # the odd name is left out; the manifest is one line per file
        manifest = answer.json()["manifest"]
        lines = manifest.splitlines()  # a header, one line per file, and its columns under it
        assert name not in manifest and [line for line in lines if not line.startswith("  columns (")] == lines[:2]
        assert len(lines) == 3 and lines[1].startswith("- ok.csv")
    assert not any(name in str(p) for p in thread.rglob("*"))
    job = _fetch(api, "manage", items=["ok.csv"])
    assert _wait(api, job["id"])["status"] == "succeeded"


@pytest.mark.parametrize("prefix", ["data/..\\existing\\", "data/x\r\n", "a\u2028/", "a\x00/", "../up/", "a/../"])
def test_upload_prefixes_with_separators_backslashes_or_dotdot_are_refused(api: Api, tmp_path: Path,
                                                                            prefix: str) -> None:
    from connectors.threads import publish_generated

    generated = api.settings.workspace_base / "t1" / "generated"
    generated.mkdir(parents=True)
    (generated / "chart.png").write_bytes(b"png")

    async def never(_: str) -> Any:
        raise AssertionError("no connection is made for a refused name")

    from connectors.errors import UnsafeNameError

    with pytest.raises(UnsafeNameError, match="unsafe name"):
        asyncio.run(publish_generated(never, api.settings.workspace_base, "t1", "lake", "chart.png",
                                      prefix + "chart.png"))


LISTING_OPEN = threading.Event()
LISTINGS: list[str] = []


class SlowListingConnector(MemoryConnector):
    """A big source: listing it holds a worker thread until LISTING_OPEN (as a scan of 140k files does)."""

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        LISTINGS.append(self.source_id)
        await asyncio.to_thread(LISTING_OPEN.wait, 120)
        return await super().list_items(path)


def test_concurrent_big_globs_share_one_listing_and_a_tiny_attach_still_lands(tmp_path: Path, secret_store_env: Path,
                                                                              data_root: Path) -> None:
    register_connector("slowlist", SlowListingConnector, replace=True)
    store = memory_store("api-slowlist")
    for index in range(50):
        store.put(f"part-{index:03}.csv", b"a\n1\n", modified_at=1)
    LISTING_OPEN.clear()
    LISTINGS.clear()
    try:
        for api in start_api(tmp_path, max_jobs=16, max_jobs_per_source=8,
                             policy=open_policy(tmp_path, "slowlist")):  # the operator lists the plugin type
            api.call("POST", "/v1/data-sources", expect=201, json={
                "id": "lake", "type": "slowlist", "name": "lake", "config": {"store": "api-slowlist"}})
            api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
            (api.settings.workspace_base / "t1").mkdir(parents=True)
            with ThreadPoolExecutor(9) as pool:
                globs = [pool.submit(api.call, "POST", "/v1/data-sources/lake/fetch", key="read",
                                     json={"glob": "part-*.csv", "workspace": f"w{i}"}) for i in range(8)]
                while not LISTINGS:
                    time.sleep(0.01)
                tiny = pool.submit(api.call, "POST", "/v1/threads/t1/data", key="read",
                                   json={"references": [{"source_id": "docs", "path": "a.csv"}]})
                # the eight globs wait on one listing (one worker thread); the attach is not queued behind them
                assert tiny.result(timeout=60).status_code == 200
                assert not any(g.done() for g in globs)
                LISTING_OPEN.set()
                assert [g.result(timeout=60).status_code for g in globs] == [202] * 8
            assert LISTINGS == ["lake"]  # listed once for all eight
            assert (api.settings.workspace_base / "t1" / "a.csv").exists()
            # glob attaches share the same listing
            for thread in ("t2", "t3", "t4"):
                (api.settings.workspace_base / thread).mkdir()
            with ThreadPoolExecutor(3) as pool:
                attaches = [pool.submit(api.call, "POST", f"/v1/threads/{thread}/data", key="read",
                                        json={"references": [{"source_id": "lake", "glob": "part-00*.csv"}]})
                            for thread in ("t2", "t3", "t4")]
                assert [a.result(timeout=60).status_code for a in attaches] == [200] * 3
            assert LISTINGS == ["lake"]
    finally:
        LISTING_OPEN.set()
        unregister_connector("slowlist")


SECOND_ITEM = threading.Event()


class SecondWaitsConnector(MemoryConnector):
    """A memory source whose 'b.csv' waits for SECOND_ITEM: a job half done, as long as a test needs."""

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        if identifier == "b.csv":
            while not SECOND_ITEM.is_set():
                await asyncio.sleep(0.01)
        return await super().fetch_data(identifier, workspace)


def test_a_workspace_swapped_for_a_link_mid_job_fails_the_job_with_nothing_outside(tmp_path: Path) -> None:
    register_connector("second-waits", SecondWaitsConnector, replace=True)
    store = memory_store("api-second-waits")
    store.put("a.csv", b"a\n1\n", modified_at=1)
    store.put("b.csv", b"b\n2\n", modified_at=1)
    SECOND_ITEM.clear()
    settings = make_settings(tmp_path)
    source = DataSourceConfig(id="mem", type="second-waits", name="m", config={"store": "api-second-waits"})
    outside = tmp_path / "outside"
    outside.mkdir()

    async def run() -> Job:
        folder = workspace_dir(settings, "w")
        job = JobManager(settings).start(source, ["a.csv", "b.csv"], "w", folder, None, "key-1")
        while not (folder / "a.csv").exists():  # the first item landed; the second is under way
            await asyncio.sleep(0.01)
        folder.rename(tmp_path / "moved")
        folder.symlink_to(outside)
        SECOND_ITEM.set()
        assert job.task is not None
        await job.task
        return job

    try:
        job = asyncio.run(run())
    finally:
        SECOND_ITEM.set()
        unregister_connector("second-waits")
    assert list(outside.iterdir()) == []  # before: b.csv and its record landed through the link
    assert job.status == "failed" and "b.csv" in [e["identifier"] for e in job.errors], job.errors
    assert job.files == []  # a.csv's record, read after the swap, is not reached through the link either
    assert (tmp_path / "moved" / "a.csv").read_bytes() == b"a\n1\n"


@pytest.mark.parametrize(("prefix", "file"), [("data/..\\existing\\", "chart.png"), ("a\u2028/", "chart.png"),
                                              ("ok/", "c\u2029.png"), ("ok/", "c\x85.png")])
def test_the_upload_route_refuses_such_names_before_connecting(api: Api, data_root: Path, prefix: str,
                                                               file: str) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)  # cannot upload: never reached
    generated = api.settings.workspace_base / "t1" / "generated"
    generated.mkdir(parents=True)
    response = api.call("POST", "/v1/data-sources/docs/upload", expect=400,
                        json={"thread_id": "t1", "files": [file], "prefix": prefix})
    assert "unsafe name" in response.json()["detail"]
