"""The Dagster layer over the in-memory connector: the source's names, a sync job run in process, a sensor tick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    DagsterInstance,
    Definitions,
    build_sensor_context,
)

from connectors.base import DataSourceConfig
from connectors.testing import MemoryStore
from da_pipelines.definitions import build_definitions

T0 = 1_700_000_000


SOURCE_ID = "Mem-Src"


N = "mem_src"


def run_sync(defs: Definitions, instance: DagsterInstance, items: list[tuple[str, str]] | None = None) -> Any:
    config = {"ops": {f"{N}_sync_items": {"config": {"items": [
        {"identifier": i, "version": v} for i, v in items]}}}} if items else None
    job = defs.resolve_job_def(f"{N}_sync")
    return job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)


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


def source(store: MemoryStore, **dagster: Any) -> DataSourceConfig:
    return DataSourceConfig(
        id=SOURCE_ID, type="memory", name="Memory", config={"store": store.name},  # type: ignore[attr-defined]
        metadata={"dagster": {"retry_delay_seconds": 0, "batch_size": 2, **dagster}},
    )


def defs_for(store: MemoryStore, workspace: Path, **dagster: Any) -> Definitions:
    return build_definitions(sources=[source(store, **dagster)], workspace=str(workspace))
