"""The code location's ``Definitions``: every configured source, its resource, and the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import Definitions

from connectors.base import DataSourceConfig
from da_pipelines.factory import WORKSPACE_KEY, build_source_defs
from da_pipelines.resources import WorkspaceResource
from da_pipelines.sources import load_sources, resource_for, workspace_root


def build_definitions(
    sources: list[DataSourceConfig] | None = None, workspace: str | None = None
) -> Definitions:
    """Definitions for ``sources`` (default: the sources file, or the embedded sample).

    Args:
        sources: the sources to serve; None reads them with ``load_sources()``.
        workspace: the workspace root; None reads ``DA_WORKSPACE`` (default ``./workspace``).
    """
    sources = load_sources() if sources is None else sources
    root = Path(workspace).absolute() if workspace else workspace_root()
    resources: dict[str, Any] = {WORKSPACE_KEY: WorkspaceResource(root=str(root))}
    assets: list[Any] = []
    jobs: list[Any] = []
    sensors: list[Any] = []
    for source in sources:
        built = build_source_defs(source, root)
        resources[built.resource_key] = resource_for(source)
        assets.extend(built.assets)
        jobs.append(built.job)
        sensors.append(built.sensor)
    return Definitions(assets=assets, jobs=jobs, sensors=sensors, resources=resources)
