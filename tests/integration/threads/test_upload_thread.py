"""A thread's generated file back to blob storage, with the thread and its inputs' lineage on the blob."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from connectors.azure_blob.upload import BlobExistsError
from connectors.errors import NotFoundError, UnsafeNameError
from connectors.registry import SourceRegistry
from connectors.threads import UploadNotSupportedError, attach_to_thread, publish_generated, published_records
from tests.harness import AzuriteServer

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path, lake: dict[str, Any]) -> SourceRegistry:  # noqa: F811
    registry = SourceRegistry(tmp_path / "sources.yaml")
    registry.add(lake)
    (tmp_path / "docs").mkdir()
    registry.add({"id": "docs", "type": "local_file", "name": "Docs", "config": {"root": str(tmp_path / "docs")}})
    return registry


def run(registry: SourceRegistry, work: Any) -> Any:
    async def main() -> Any:
        async with registry:
            return await work(registry)

    return asyncio.run(main())


def test_a_generated_file_goes_back_with_its_thread_and_inputs(
    registry: SourceRegistry, lake: dict[str, Any], azurite_server: AzuriteServer, tmp_path: Path  # noqa: F811
) -> None:
    base = tmp_path / "workspace"
    run(registry, lambda r: attach_to_thread(r, base, "t1", [{"source_id": "lake", "path": "exports/2026-01.csv"}],
                                                   create=True))
    (base / "t1" / "generated").mkdir()
    chart = bytes(range(256)) * 100
    (base / "t1" / "generated" / "chart.png").write_bytes(chart)
    record = run(registry, lambda r: publish_generated(r, base, "t1", "lake", "chart.png"))
    assert record["blob_name"] == "t1/chart.png" and record["size"] == len(chart)
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        blob = service.get_blob_client(lake["config"]["container_name"], "t1/chart.png")
        assert blob.download_blob().readall() == chart
        metadata = blob.get_blob_properties().metadata
    assert metadata["da_thread"] == "t1" and metadata["da_file"] == "chart.png"
    inputs = json.loads(metadata["da_inputs"])
    assert [(i["name"], i["source_id"], i["item"]) for i in inputs] == [("2026-01.csv", "lake", "exports/2026-01.csv")]
    assert inputs[0]["version"] and len(inputs[0]["sha256"]) == 64
    assert published_records(base, "t1") == [record]
    with pytest.raises(BlobExistsError):
        run(registry, lambda r: publish_generated(r, base, "t1", "lake", "chart.png"))
    again = run(registry, lambda r: publish_generated(r, base, "t1", "lake", "chart.png", "out/c.png", overwrite=True))
    assert [r["blob_name"] for r in published_records(base, "t1")] == ["t1/chart.png", "out/c.png"]
    assert again["overwrite"] is True


def test_refusals_say_why(registry: SourceRegistry, tmp_path: Path) -> None:
    base = tmp_path / "workspace"
    (base / "t2" / "generated").mkdir(parents=True)
    (base / "t2" / "generated" / "x.csv").write_text("x")
    (tmp_path / "secret.txt").write_text("outside")
    (base / "t2" / "generated" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(UploadNotSupportedError, match="a local_file source does not support upload"):
        run(registry, lambda r: publish_generated(r, base, "t2", "docs", "x.csv"))
    with pytest.raises(NotFoundError, match="no generated file 'nope.csv'"):
        run(registry, lambda r: publish_generated(r, base, "t2", "lake", "nope.csv"))
    with pytest.raises(NotFoundError, match="not a regular file"):
        run(registry, lambda r: publish_generated(r, base, "t2", "lake", "link.txt"))
    with pytest.raises(UnsafeNameError):
        run(registry, lambda r: publish_generated(r, base, "t2", "lake", "../../secret.txt"))
