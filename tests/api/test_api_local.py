"""The API over local_file sources: management, discovery, fetch jobs, lineage, limits, keys and audit."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from connectors.api.api_keys import KeyStore
from connectors.landing.lineage import read_provenance
from connectors.plugins import register_connector, unregister_connector
from connectors.testing import MemoryConnector, memory_store
from tests.api.conftest import Api, local_source, open_policy, start_api
from tests.helpers.api import wait_job


def big_source(root: Path) -> dict[str, Any]:
    return {**local_source(root), "metadata": {"api": {"max_item_bytes": 1 << 30}}}


def test_create_list_get_update_delete(api: Api, data_root: Path) -> None:
    created = api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201).json()
    assert created["object"] == "data_source" and created["id"] == "docs" and created["type"] == "local_file"
    assert isinstance(created["created_at"], int)
    # the same sources file as the CLI
    assert yaml.safe_load(api.settings.sources_file.read_text())["sources"][0]["config"]["root"] == str(data_root)
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=409)
    listed = api.call("GET", "/v1/data-sources", expect=200).json()
    assert listed["object"] == "list" and [s["id"] for s in listed["data"]] == ["docs"]
    assert api.call("GET", "/v1/data-sources/docs", expect=200).json()["name"] == "Docs"
    updated = api.call("PATCH", "/v1/data-sources/docs", json={"name": "Shared", "config": {"pattern": "*.csv"}},
                       expect=200).json()
    assert (updated["name"], updated["config"]["pattern"]) == ("Shared", "*.csv")
    cleared = api.call("PATCH", "/v1/data-sources/docs", json={"config": {"pattern": None}}, expect=200).json()
    assert "pattern" not in cleared["config"]
    deleted = api.call("DELETE", "/v1/data-sources/docs", expect=200).json()
    assert deleted == {"id": "docs", "object": "data_source", "deleted": True}
    api.call("GET", "/v1/data-sources/docs", expect=404)
    api.call("DELETE", "/v1/data-sources/docs", expect=404)


def test_list_is_paged_with_a_cursor(api: Api, data_root: Path) -> None:
    for index in range(5):
        api.call("POST", "/v1/data-sources", json=local_source(data_root, f"s{index}"), expect=201)
    first = api.call("GET", "/v1/data-sources?limit=2", expect=200).json()
    assert [s["id"] for s in first["data"]] == ["s0", "s1"] and first["has_more"]
    rest = api.call("GET", f"/v1/data-sources?limit=10&after={first['next_cursor']}", expect=200).json()
    assert [s["id"] for s in rest["data"]] == ["s2", "s3", "s4"] and not rest["has_more"]


def test_validation_is_the_cli_one_and_says_which_field(api: Api, data_root: Path) -> None:
    bad = api.call("POST", "/v1/data-sources", json={**local_source(data_root), "config": {"rooot": "x"}},
                   expect=422).json()
    assert "config.rooot" in bad["detail"]
    api.call("POST", "/v1/data-sources", json={**local_source(data_root), "type": "nope"}, expect=422)
    api.call("POST", "/v1/data-sources", json={**local_source(data_root), "id": "../x"}, expect=422)
    api.call("POST", "/v1/data-sources", json={**local_source(data_root), "id": "9lives"}, expect=422)
    api.call("POST", "/v1/data-sources", json={"id": "x"}, expect=422)
    api.call("POST", "/v1/data-sources", content=b"{not json", expect=422)
    assert not api.settings.sources_file.exists()


def test_test_route_reports_the_cause(api: Api, data_root: Path, tmp_path: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    ok = api.call("POST", "/v1/data-sources/docs/test", key="read", expect=200).json()
    assert ok["ok"] is True and ok["error"] is None and ok["object"] == "data_source.test"
    api.call("POST", "/v1/data-sources", json=local_source(tmp_path / "missing", "gone"), expect=201)
    failed = api.call("POST", "/v1/data-sources/gone/test", expect=200).json()
    assert failed["ok"] is False and "config.root: the folder does not exist" in failed["error"]  # not its value


def test_browse_folders_paging_and_metadata(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    top = api.call("GET", "/v1/data-sources/docs/browse", key="read", expect=200).json()
    assert [(e["object"], e["path"]) for e in top["data"]] == [
        ("data_source.folder", "2024/"), ("data_source.item", "a.csv"), ("data_source.item", "b.parquet"),
        ("data_source.item", "notes.txt")]
    inside = api.call("GET", "/v1/data-sources/docs/browse?path=2024/", expect=200).json()
    assert [e["path"] for e in inside["data"]] == ["2024/q1.csv", "2024/q2.csv"]
    flat = api.call("GET", "/v1/data-sources/docs/browse?delimiter=", expect=200).json()
    assert len(flat["data"]) == 5
    paths, after = [], ""
    while True:
        page = api.call("GET", f"/v1/data-sources/docs/browse?delimiter=&limit=2{after}", expect=200).json()
        paths += [e["path"] for e in page["data"]]
        if not page["has_more"]:
            break
        after = f"&after={page['next_cursor']}"
    assert paths == [e["path"] for e in flat["data"]]
    api.call("GET", "/v1/data-sources/docs/browse?after=%%%", expect=400)
    meta = api.call("GET", "/v1/data-sources/docs/metadata?item=a.csv", expect=200).json()
    assert meta["metadata"]["size"] == (data_root / "a.csv").stat().st_size
    api.call("GET", "/v1/data-sources/docs/metadata?item=nope.csv", expect=404)
    api.call("GET", "/v1/data-sources/docs/metadata?item=../../etc/passwd", expect=400)


def test_listing_cache_lasts_until_the_source_changes(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    before = api.call("GET", "/v1/data-sources/docs/browse?delimiter=", expect=200).json()["data"]
    (data_root / "new.csv").write_text("n\n1\n")
    cached = api.call("GET", "/v1/data-sources/docs/browse?delimiter=", expect=200).json()["data"]
    assert cached == before  # within cache_seconds: the cached listing
    api.call("PATCH", "/v1/data-sources/docs", json={"metadata": {"team": "x"}}, expect=200)
    after = api.call("GET", "/v1/data-sources/docs/browse?delimiter=", expect=200).json()["data"]
    assert "new.csv" in [e["path"] for e in after]


def test_preview_of_csv_and_parquet_items(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    csv = api.call("GET", "/v1/data-sources/docs/preview?item=a.csv", key="read", expect=200).json()
    assert [c["name"] for c in csv["columns"]] == ["x", "y"] and len(csv["rows"]) == 10 and csv["rows"][1] == [1, 2]
    parquet = api.call("GET", "/v1/data-sources/docs/preview?item=b.parquet&limit=2", expect=200).json()
    assert parquet["rows"] == [[1, "a"], [2, "b"]]
    api.call("GET", "/v1/data-sources/docs/preview?item=notes.txt", expect=400)
    api.call("GET", "/v1/data-sources/docs/preview?item=a.csv&limit=100000", expect=413)
    api.call("GET", "/v1/data-sources/docs/schema?item=a.csv", expect=400)
    api.call("GET", "/v1/data-sources/docs/stats?item=a.csv", expect=400)


def test_a_previews_default_row_count_is_the_settings(tmp_path: Path, data_root: Path,
                                                      secret_store_env: Path) -> None:
    for preview_rows, expected in ((4, 4), (25, 25), (5000, 30)):  # 5000: capped at preview_max_rows (1000)
        for api in start_api(tmp_path / str(preview_rows), preview_rows=preview_rows, policy=open_policy(tmp_path)):
            api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
            answer = api.call("GET", "/v1/data-sources/docs/preview?item=a.csv", key="read", expect=200).json()
            assert len(answer["rows"]) == expected == min(answer["limit"], 30)  # a.csv has 30 rows
            asked = api.call("GET", "/v1/data-sources/docs/preview?item=a.csv&limit=2", expect=200).json()
            assert len(asked["rows"]) == 2  # the request's limit still wins


def test_fetch_job_lands_files_with_lineage(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    job = api.call("POST", "/v1/data-sources/docs/fetch", key="read",
                   json={"glob": "2024/*.csv", "workspace": "thread-1"}, expect=202).json()
    assert job["object"] == "data_source.fetch_job" and job["progress"]["items_total"] == 2
    done = wait_job(api, "docs", job["id"])
    assert done["status"] == "succeeded" and done["progress"]["items_done"] == 2
    assert done["progress"]["bytes_done"] == done["progress"]["bytes_total"] == 8
    landed = {f["identifier"]: f for f in done["files"]}
    assert landed["2024/q1.csv"]["path"] == "thread-1/2024/q1.csv"
    path = api.settings.jobs_base / "thread-1" / "2024" / "q1.csv"
    assert path.read_bytes() == b"q\n1\n"
    assert landed["2024/q1.csv"]["sha256"] == read_provenance(path)["sha256"]
    record = api.call("GET", "/v1/lineage?path=thread-1/2024/q1.csv", key="read", expect=200).json()
    assert record["record"]["identifier"] == "2024/q1.csv" and record["record"]["source_id"] == "docs"
    api.call("GET", "/v1/lineage?path=../etc/passwd", expect=400)
    api.call("GET", "/v1/lineage?path=/etc/passwd", expect=400)
    api.call("GET", "/v1/lineage?path=thread-1/none.csv", expect=404)
    assert [j["id"] for j in api.call("GET", "/v1/data-sources/docs/jobs", expect=200).json()["data"]] == [job["id"]]
    fetches = [r for r in api.audit() if r["route"] == "/v1/data-sources/{source_id}/fetch"]
    assert [(r["job_id"], r["status"], r["source_id"]) for r in fetches] == [(job["id"], 202, "docs")]


def test_fetch_refusals_come_before_any_work(api: Api, data_root: Path) -> None:
    api.operator_add({**local_source(data_root), "metadata": {"api": {"max_item_bytes": 50}}})  # the operator's knob
    over = api.call("POST", "/v1/data-sources/docs/fetch", json={"items": ["a.csv", "2024/q1.csv"],
                    "workspace": "w"}, expect=413).json()
    assert "a.csv" in over["detail"]
    assert not (api.settings.jobs_base / "w" / "2024").exists()
    for workspace in ("../x", "/tmp", "a/b", ""):
        api.call("POST", "/v1/data-sources/docs/fetch", json={"items": ["2024/q1.csv"], "workspace": workspace},
                 expect=400 if workspace else 400)
    api.call("POST", "/v1/data-sources/docs/fetch", json={"items": ["nope"], "workspace": "w"}, expect=404)
    api.call("POST", "/v1/data-sources/docs/fetch", json={"glob": "*.xlsx", "workspace": "w"}, expect=404)
    api.call("POST", "/v1/data-sources/docs/fetch", json={"workspace": "w"}, expect=422)
    api.call("GET", "/v1/data-sources/docs/jobs/job_nope", expect=404)


GATE = threading.Event()


class GatedConnector(MemoryConnector):
    """A memory source whose fetches wait for GATE: jobs that stay running as long as a test needs."""

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        while not GATE.is_set():
            await asyncio.sleep(0.01)
        return await super().fetch_data(identifier, workspace)


def test_job_caps_refuse_with_429(tmp_path: Path, secret_store_env: Path) -> None:
    register_connector("gated", GatedConnector, replace=True)
    store = memory_store("api-gated")
    store.put("a.csv", b"a\n1\n", modified_at=1)
    GATE.clear()
    try:
        for api in start_api(tmp_path, max_jobs=2, max_jobs_per_source=1, policy=open_policy(tmp_path, "gated")):
            for source_id in ("g1", "g2", "g3"):
                api.call("POST", "/v1/data-sources", expect=201, json={
                    "id": source_id, "type": "gated", "name": "g", "config": {"store": "api-gated"}})
            fetch = {"items": ["a.csv"], "workspace": "w"}
            first = api.call("POST", "/v1/data-sources/g1/fetch", json=fetch, expect=202).json()
            per_source = api.call("POST", "/v1/data-sources/g1/fetch", json=fetch, expect=429)
            assert per_source.headers["Retry-After"] and "per source" in per_source.json()["detail"]
            api.call("POST", "/v1/data-sources/g2/fetch", json={**fetch, "workspace": "w2"}, expect=202)
            overall = api.call("POST", "/v1/data-sources/g3/fetch", json=fetch, expect=429).json()
            assert "2 fetch jobs are running" in overall["detail"]
            assert api.call("GET", f"/v1/data-sources/g1/jobs/{first['id']}").json()["status"] == "running"
            GATE.set()
            done = wait_job(api, "g1", first["id"])
            assert done["status"] == "succeeded", done["errors"]
            api.call("POST", "/v1/data-sources/g1/fetch", json=fetch, expect=202)
    finally:
        GATE.set()
        unregister_connector("gated")


def test_a_running_job_survives_a_change_of_its_source(tmp_path: Path, secret_store_env: Path) -> None:
    register_connector("gated", GatedConnector, replace=True)
    memory_store("api-gated").put("a.csv", b"a\n1\n", modified_at=1)
    GATE.clear()
    try:
        for api in start_api(tmp_path, policy=open_policy(tmp_path, "gated")):
            api.call("POST", "/v1/data-sources", expect=201, json={
                "id": "g1", "type": "gated", "name": "g", "config": {"store": "api-gated"}})
            job = api.call("POST", "/v1/data-sources/g1/fetch", json={"items": ["a.csv"], "workspace": "w"},
                           expect=202).json()
            api.call("PATCH", "/v1/data-sources/g1", json={"name": "renamed"}, expect=200)  # closes the pooled one
            GATE.set()
            done = wait_job(api, "g1", job["id"])
            assert done["status"] == "succeeded", done["errors"]
    finally:
        GATE.set()
        unregister_connector("gated")


def test_cancel_leaves_no_partial_file(api: Api, data_root: Path) -> None:
    big = data_root / "big.bin"
    big.write_bytes(b"\1" * (256 << 20))
    api.operator_add(big_source(data_root))  # metadata.api is the operator's
    job = api.call("POST", "/v1/data-sources/docs/fetch", json={"items": ["big.bin"], "workspace": "w"},
                   expect=202).json()
    cancelled = api.call("DELETE", f"/v1/data-sources/docs/jobs/{job['id']}", expect=200).json()
    assert cancelled["status"] == "cancelled"
    folder = api.settings.jobs_base / "w"
    assert [p.name for p in folder.iterdir() if p.name != ".lineage"] == []  # no temporary, no partial file
    assert any(e["route"] == "/v1/data-sources/{source_id}/jobs/{job_id}" for e in api.audit())


def test_delete_cancels_running_jobs(api: Api, data_root: Path) -> None:
    (data_root / "big.bin").write_bytes(b"\2" * (256 << 20))
    api.operator_add(big_source(data_root))  # metadata.api is the operator's
    job = api.call("POST", "/v1/data-sources/docs/fetch", json={"items": ["big.bin"], "workspace": "w"},
                   expect=202).json()
    api.call("DELETE", "/v1/data-sources/docs", expect=200)
    state = api.client.app.state.da_sources  # type: ignore[attr-defined]
    assert state.jobs.get("docs", job["id"]).status in ("cancelled", "succeeded")
    assert not state.jobs.running()


def test_keys_scopes_and_revocation_without_restart(api: Api, data_root: Path) -> None:
    api.call("GET", "/v1/data-sources", key="none", expect=401)
    bad = api.client.get("/v1/data-sources", headers={"Authorization": "Bearer dsk_wrong"})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    api.call("POST", "/v1/data-sources", key="read", json=local_source(data_root), expect=403)
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    api.call("PATCH", "/v1/data-sources/docs", key="read", json={"name": "x"}, expect=403)
    api.call("DELETE", "/v1/data-sources/docs", key="read", expect=403)
    api.call("GET", "/v1/data-sources/docs", key="read", expect=200)
    assert api.client.get("/health").status_code == 200
    KeyStore(api.settings.keys_file).revoke("reader")  # as 'da-sources api-keys revoke' does, from outside
    api.call("GET", "/v1/data-sources/docs", key="read", expect=401)
    api.call("GET", "/v1/data-sources/docs", key="manage", expect=200)
    stored = api.settings.keys_file.read_text()
    assert api.manage["Authorization"].split()[1] not in stored


def test_audit_log_records_changes_data_and_refusals(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    api.call("GET", "/v1/data-sources/docs", expect=200)  # a plain read: not audited
    api.call("GET", "/v1/data-sources/docs/preview?item=a.csv", key="read", expect=200)
    api.call("DELETE", "/v1/data-sources/docs", key="read", expect=403)
    api.call("DELETE", "/v1/data-sources/docs", expect=200)
    records = api.audit()
    assert [(r["method"], r["route"], r["status"], r["outcome"]) for r in records] == [
        ("POST", "/v1/data-sources", 201, "ok"),
        ("GET", "/v1/data-sources/{source_id}/preview", 200, "ok"),
        ("DELETE", "/v1/data-sources/{source_id}", 403, "refused"),
        ("DELETE", "/v1/data-sources/{source_id}", 200, "ok")]
    keys = {k.name: k.id for k in KeyStore(api.settings.keys_file).list()}
    assert [r["key_id"] for r in records] == [keys["admin"], keys["reader"], keys["reader"], keys["admin"]]
    assert all(r["source_id"] == "docs" and r["request_id"].startswith("req-") for r in records)
    assert set(records[0]) == {"time", "request_id", "key_id", "method", "route", "source_id", "status", "outcome",
                               "job_id", "config"}  # what was created
    assert records[0]["config"] == {"root": str(data_root)} and records[1]["item"] == "a.csv"


def test_write_only_secrets_go_to_the_store_and_never_come_back(api: Api, canary: str,
                                                               secret_store_env: Path) -> None:
    body = {"id": "pg", "type": "postgresql", "name": "PG",
            "config": {"host": "127.0.0.1", "port": 1, "user": "u", "dbname": "d", "password": canary}}
    created = api.call("POST", "/v1/data-sources", json=body, expect=201).json()
    assert created["config"]["password"] == {"secret": "pg.password"}
    from connectors.secrets.store import default_store

    assert default_store().get("pg.password") == canary
    api.call("PATCH", "/v1/data-sources/pg", json={"config": {"password": canary + "x"}}, expect=200)
    assert default_store().get("pg.password") == canary + "x"
    api.call("POST", "/v1/data-sources/pg/test", expect=200)
    api.call("GET", "/v1/data-sources/pg/browse", expect=502)
    api.call("POST", "/v1/data-sources", json={**body, "id": "pg2", "config": {**body["config"], "port": "x"}},
             expect=422)
    api.call("DELETE", "/v1/data-sources/pg", expect=200)
    assert default_store().get("pg.password") is None
    api.assert_nowhere(canary)
    assert canary not in secret_store_env.read_text(errors="replace")


def test_the_router_works_inside_another_app(tmp_path: Path, secret_store_env: Path, data_root: Path,
                                             monkeypatch: Any) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from connectors.api import router

    monkeypatch.setenv("DA_SOURCES_FILE", str(tmp_path / "da" / "sources.yaml"))
    monkeypatch.setenv("DA_WORKSPACE", str(tmp_path / "da-workspace"))
    (tmp_path / "da").mkdir()  # the operator's policy file, beside the sources file: the data folder allowed
    (tmp_path / "da" / "api-policy.yaml").write_text(f"local_roots: [{str(data_root)!r}]\n")
    _, key = KeyStore(tmp_path / "da" / "api-keys.json").create("deepanalyze")  # beside the sources file
    app = FastAPI()  # DeepAnalyze's create_app(): its own routes, then one line
    app.include_router(router)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        assert client.get("/v1/data-sources").status_code == 401
        assert client.post("/v1/data-sources", json=local_source(data_root), headers=headers).status_code == 201
        job = client.post("/v1/data-sources/docs/fetch", json={"items": ["a.csv"], "workspace": "t1"},
                          headers=headers).json()
        for _ in range(200):
            if client.get(f"/v1/data-sources/docs/jobs/{job['id']}", headers=headers).json()["status"] != "running":
                break
            time.sleep(0.05)
        assert (tmp_path / "da-workspace" / ".fetch-jobs" / "t1" / "a.csv").exists()
        error = client.get("/v1/data-sources/nope", headers=headers)
        assert error.status_code == 404 and set(error.json()) == {"detail"} and error.headers["X-Request-ID"]
    assert (tmp_path / "da" / "api-audit.jsonl").exists()
