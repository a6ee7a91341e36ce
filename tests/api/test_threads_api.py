"""POST /v1/threads/{id}/data and POST /v1/data-sources/{id}/upload through the API."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.api.conftest import Api, local_source
from tests.harness import AzuriteServer


def top_level_files(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False))


def test_attach_lands_at_the_thread_top_level_with_a_manifest(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    body = {"references": [{"source_id": "docs", "glob": "2024/*.csv"}, {"source_id": "docs", "path": "a.csv"}],
            "create": True}
    api.call("POST", "/v1/threads/thread-1/data", key="none", json=body, expect=401)
    answer = api.call("POST", "/v1/threads/thread-1/data", key="read", json=body, expect=200).json()
    assert answer["object"] == "thread.data" and answer["thread_id"] == "thread-1"
    assert [f["name"] for f in answer["data"]] == ["q1.csv", "q2.csv", "a.csv"]
    first = answer["data"][0]
    assert first == {"name": "q1.csv", "source_id": "docs", "item": "2024/q1.csv", "version": first["version"],
                     "size": 4, "row_count": 1, "status": "attached", "wanted": None,
                     "profile": first["profile"], "options": None, "parts": None}  # files are described
    assert first["profile"]["rows"] == 1 and first["profile"]["columns"][0]["name"]
    assert answer["manifest"].startswith("Attached data:\n- q1.csv: 2024/q1.csv from source docs, version ")
    folder = api.settings.workspace_base / "thread-1"
    assert top_level_files(folder) == ["a.csv", "q1.csv", "q2.csv"]
    again = api.call("POST", "/v1/threads/thread-1/data", json={"references": [
        {"source_id": "docs", "path": "a.csv"}]}, expect=200).json()
    assert [(f["name"], f["status"]) for f in again["data"]] == [("a.csv", "unchanged")]  # no copy, no new name
    as_list = api.call("POST", "/v1/threads/thread-1/data", json=[{"source_id": "docs", "path": "notes.txt"}],
                       expect=200).json()  # a bare list of references is taken too
    assert [f["name"] for f in as_list["data"]] == ["notes.txt"]
    audit = api.audit()[-1]
    assert audit["route"] == "/v1/threads/{thread_id}/data" and audit["source_id"] == "docs"


def test_one_bad_reference_fails_all_and_leaves_nothing(api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    (api.settings.workspace_base / "t2").mkdir(parents=True)
    answer = api.call("POST", "/v1/threads/t2/data", json={"references": [
        {"source_id": "docs", "glob": "*.csv"}, {"source_id": "docs", "path": "missing.csv"}]}, expect=404).json()
    assert "missing.csv" in answer["detail"]
    assert api.call("POST", "/v1/threads/t2/data", json={"references": [
        {"source_id": "docs", "path": "a.csv"}, {"source_id": "nope", "path": "a.csv"}]}, expect=404).json() == {
        "detail": "no source 'nope'"}
    api.call("POST", "/v1/threads/t2/data", json={"references": [{"source_id": "docs", "path": "a.csv", "glob": "*"}]},
             expect=422)
    api.call("POST", "/v1/threads/t2/data", json={"references": []}, expect=422)
    api.call("POST", "/v1/threads/t2/data", json=[], expect=422)
    folder = api.settings.workspace_base / "t2"
    assert not folder.exists() or list(folder.rglob("*")) == []


@pytest.mark.parametrize("thread_id", ["..", "%2e%2e", ".hidden", "-x", "a.b", "a%2fb", "a%5cb", "a%00b", "x" * 129,
                                       "%C3%A9"])
def test_a_thread_id_never_leads_outside_the_workspace_base(api: Api, data_root: Path, thread_id: str) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    response = api.call("POST", f"/v1/threads/{thread_id}/data",
                        json={"references": [{"source_id": "docs", "path": "a.csv"}]})
    assert response.status_code in (400, 404, 405, 422), response.text
    base = api.settings.workspace_base
    outside = [p for p in api.settings.sources_file.parent.rglob("a.csv") if not p.is_relative_to(data_root)]
    assert outside == [] and (not base.exists() or list(base.iterdir()) == [])


def test_upload_generated_files_back_to_blob_storage(api: Api, azurite_server: AzuriteServer, data_root: Path) -> None:
    container = f"thr{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        service.create_container(container)
    api.call("POST", "/v1/data-sources", expect=201, json={
        "id": "lake", "type": "azure_blob", "name": "Lake",
        "config": {"container_name": container, "connection_string": azurite_server.connection_string}})
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    api.call("POST", "/v1/threads/t3/data", json={"references": [{"source_id": "docs", "path": "a.csv"}],
                                                  "create": True}, expect=200)
    generated = api.settings.workspace_base / "t3" / "generated"
    generated.mkdir()
    (generated / "chart.png").write_bytes(b"\x89PNG" + os.urandom(5000))
    body = {"thread_id": "t3", "files": ["chart.png"], "prefix": "results/"}
    api.call("POST", "/v1/data-sources/lake/upload", key="read", json=body, expect=403)
    answer = api.call("POST", "/v1/data-sources/lake/upload", json=body, expect=200).json()
    assert answer["object"] == "list" and answer["data"][0]["blob_name"] == "results/chart.png"
    assert '"item":"a.csv"' in answer["data"][0]["metadata"]["da_inputs"]
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        blob = service.get_blob_client(container, "results/chart.png")
        assert blob.download_blob().readall() == (generated / "chart.png").read_bytes()
        assert blob.get_blob_properties().metadata["da_thread"] == "t3"
    assert "exists" in api.call("POST", "/v1/data-sources/lake/upload", json=body, expect=409).json()["detail"]
    api.call("POST", "/v1/data-sources/lake/upload", json={**body, "overwrite": True}, expect=200)
    detail = api.call("POST", "/v1/data-sources/docs/upload", json=body, expect=400).json()["detail"]
    assert "does not support upload" in detail
    api.call("POST", "/v1/data-sources/lake/upload", json={**body, "files": ["nope.png"]}, expect=404)
    api.call("POST", "/v1/data-sources/lake/upload", json={**body, "thread_id": ".."}, expect=400)
    api.assert_nowhere(azurite_server.account_key)


def test_an_item_over_the_size_limit_is_refused_before_anything_lands(api: Api, data_root: Path) -> None:
    api.operator_add({**local_source(data_root), "metadata": {"api": {"max_item_bytes": 50}}})  # the operator's knob
    refs = [{"source_id": "docs", "path": "notes.txt"}, {"source_id": "docs", "path": "a.csv"}]
    (api.settings.workspace_base / "t4").mkdir(parents=True)
    detail = api.call("POST", "/v1/threads/t4/data", json={"references": refs}, expect=413).json()["detail"]
    assert detail == "source 'docs': path 'a.csv': it is 169 bytes, over the limit of 50; nothing was attached"
    api.call("POST", "/v1/threads/t4/data", json={"references": [{"source_id": "docs", "glob": "*.csv"}]}, expect=413)
    assert sorted(p.name for p in (api.settings.workspace_base / "t4").iterdir()) == []
    api.call("POST", "/v1/threads/t4/data", json={"references": [{"source_id": "docs", "path": "notes.txt"}]},
             expect=200)


def test_an_unknown_thread_is_404_unless_create_and_records_answer_from_the_state_folder(
        api: Api, data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    refs = [{"source_id": "docs", "path": "a.csv"}]
    detail = api.call("POST", "/v1/threads/thread-9/data", json={"references": refs}, expect=404).json()["detail"]
    assert detail.startswith("unknown or ended thread 'thread-9'")
    api.call("GET", "/v1/threads/thread-9/data", expect=404)
    assert not (api.settings.workspace_base / "thread-9").exists()
    attached = api.call("POST", "/v1/threads/thread-9/data", json={"references": refs, "create": True},
                        expect=200).json()
    folder = api.settings.workspace_base / "thread-9"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["a.csv"]  # data only
    state = api.settings.thread_state_dir / "threads" / "thread-9"
    assert (state / ".lineage" / "a.csv.json").is_file() and not state.is_relative_to(api.settings.workspace_base)
    now = api.call("GET", "/v1/threads/thread-9/data", key="read", expect=200).json()
    assert now["manifest"] == attached["manifest"] and [f["name"] for f in now["data"]] == ["a.csv"]
    record = api.call("GET", "/v1/lineage", params={"path": "thread-9/a.csv"}, expect=200).json()["record"]
    assert record["identifier"] == "a.csv" and record["attached_as"] == "a.csv" and record["source_id"] == "docs"


def test_file_references_take_limit_and_sample_or_say_why_not(api: Api, data_root: Path) -> None:
    """CSV and Parquet files are cut to their first rows or a seeded sample; other formats say why not."""
    import pyarrow.parquet as pq

    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    answer = api.call("POST", "/v1/threads/t-files/data", json={"create": True, "references": [
        {"source_id": "docs", "path": "a.csv", "limit": 3},
        {"source_id": "docs", "path": "b.parquet", "sample": 2, "seed": 4}]}, expect=200).json()
    folder = api.settings.workspace_base / "t-files"
    assert (folder / "a.csv").read_text() == "x,y\n0,0\n1,2\n2,4\n"
    assert [f["row_count"] for f in answer["data"]] == [3, 2]
    picked = pq.read_table(folder / "b.parquet").to_pylist()
    assert len(picked) == 2
    assert pq.read_schema(folder / "b.parquet").equals(pq.read_schema(data_root / "b.parquet"))
    again = api.call("POST", "/v1/threads/t-files-2/data", json={"create": True, "references": [
        {"source_id": "docs", "path": "b.parquet", "sample": 2, "seed": 4}]}, expect=200).json()
    assert pq.read_table(api.settings.workspace_base / "t-files-2" / "b.parquet").to_pylist() == picked
    assert again["data"][0]["options"] == {"sample": 2.0, "seed": 4}
    record = api.call("GET", "/v1/lineage", params={"path": "t-files/a.csv"}, expect=200).json()["record"]
    assert record["size"] == 16 and record["source_size"] == 169 and record["options"] == {"limit": 3, "seed": 0}
    refused = api.call("POST", "/v1/threads/t-files-3/data", json={"create": True, "references": [
        {"source_id": "docs", "path": "notes.txt", "limit": 1}]}).json()["detail"]
    assert "limit and sample apply to CSV and Parquet files; .txt files are not cut" in refused
    api.call("POST", "/v1/threads/t-files-3/data", json=[{"source_id": "docs", "path": "a.csv", "where": "x = 1"}],
             expect=422)
