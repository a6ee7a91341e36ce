"""Proven the way DeepAnalyze would use it: an app shaped like its API server.

The app has DeepAnalyze's parts that matter here (../shared/DEEPANALYZE.md): thread folders under
a workspace base with a ``generated/`` subfolder, a chat route that (with the few lines the README
gives) attaches the request's data references, then takes the turn-start snapshot of the folder,
builds the ``# Data`` section of the prompt from the folder's top-level files, runs the "model",
and reports as generated whatever appeared or changed after the snapshot. Our router is included
as DeepAnalyze would include it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from connectors.api import router as data_sources_router
from connectors.errors import DataSourceError
from connectors.registry import SourceRegistry
from connectors.threads import attach_to_thread
from tests.harness import AzuriteServer


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """DeepAnalyze's tracker: every file under the thread's folder, with size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def data_section(folder: Path) -> str:
    """DeepAnalyze's prompt builder: the top-level files, name and size, under '# Data'."""
    files = sorted((e.name, e.stat().st_size) for e in os.scandir(folder) if e.is_file(follow_symlinks=False))
    return "# Data\n" + "".join(f"- {name} ({size} bytes)\n" for name, size in files)


def deepanalyze_app(base: Path, sources_file: Path, model_calls: list[str]) -> FastAPI:
    registry = SourceRegistry(sources_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with registry:
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(data_sources_router)

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        thread_id = body["thread_id"]
        folder = base / thread_id
        (folder / "generated").mkdir(parents=True, exist_ok=True)
        manifest = ""
        if body.get("data"):  # the README's lines: attach before the snapshot, fail before the model runs
            try:
                manifest = (await attach_to_thread(registry, base, thread_id, body["data"])).manifest()
            except DataSourceError as exc:
                raise HTTPException(400, str(exc)) from None
        before = snapshot(folder)
        prompt = data_section(folder) + manifest
        model_calls.append(prompt)
        (folder / "generated" / "summary.csv").write_text("rows\n3\n")  # what the agent writes
        after = snapshot(folder)
        generated = sorted(name for name, facts in after.items() if before.get(name) != facts)
        return {"prompt": prompt, "generated": generated}

    return app


@pytest.fixture
def setup(tmp_path: Path, azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    container = f"da{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        client = service.create_container(container)
        client.upload_blob("exports/2026-01.csv", b"a,b\n1,2\n")
        client.upload_blob("exports/2026-02.csv", b"a,b\n3,4\n")
    monkeypatch.setenv("DA_AZURE", azurite_server.connection_string)
    sources = tmp_path / "sources.yaml"
    SourceRegistry(sources).add({"id": "lake", "type": "azure_blob", "name": "Lake", "config": {
        "connection_string": {"env": "DA_AZURE"}, "container_name": container}})
    base = tmp_path / "workspace"
    calls: list[str] = []
    with TestClient(deepanalyze_app(base, sources, calls)) as client:
        yield {"client": client, "base": base, "calls": calls}


def test_the_model_sees_exactly_the_attached_files_and_they_are_not_generated(setup: dict[str, Any]) -> None:
    client, base = setup["client"], setup["base"]
    (base / "thread-abc").mkdir(parents=True)
    (base / "thread-abc" / "uploaded.xlsx").write_bytes(b"xlsx")  # a file the user attached in the chat
    answer = client.post("/v1/chat/completions", json={"thread_id": "thread-abc", "messages": [], "data": [
        {"source_id": "lake", "glob": "exports/*.csv"}]}).json()
    listed = [line for line in answer["prompt"].split("Attached data:")[0].splitlines() if line.startswith("- ")]
    assert listed == ["- 2026-01.csv (8 bytes)", "- 2026-02.csv (8 bytes)", "- uploaded.xlsx (4 bytes)"]
    assert "- 2026-01.csv: exports/2026-01.csv from source lake" in answer["prompt"]
    assert answer["generated"] == ["generated/summary.csv"]


def test_a_failed_reference_fails_the_request_before_the_model_runs(setup: dict[str, Any]) -> None:
    client, base = setup["client"], setup["base"]
    response = client.post("/v1/chat/completions", json={"thread_id": "t2", "messages": [], "data": [
        {"source_id": "lake", "glob": "exports/*.csv"}, {"source_id": "lake", "path": "exports/missing.csv"}]})
    assert response.status_code == 400 and "exports/missing.csv" in response.json()["detail"]
    assert setup["calls"] == []
    assert sorted(str(p.relative_to(base)) for p in base.rglob("*")) == ["t2", "t2/generated"]
