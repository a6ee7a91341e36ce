"""The code location's ``Definitions``: every configured source, its resource, and the workspace.

A source that cannot be served (an invalid entry of the sources file, an id
whose Dagster name another source already has, a literal secret, bad
``metadata.dagster``) is left out and reported: logged as a warning and listed
under ``da_sources/invalid_sources`` in the definitions' metadata, and shown in the
UI as a stand-in asset ``["sources_left_out", "entry_<position>"]`` whose description
gives the reason (:func:`left_out_assets`). The other
sources load; one bad source never takes the code location down.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetSpec, BetaWarning, Definitions, MetadataValue

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.ids import check_distinct
from connectors.registry import InvalidSource
from connectors.secrets.references import redact
from da_pipelines.factory import WORKSPACE_KEY, SourceDefs, build_source_defs
from da_pipelines.lost_retries import lost_retries_sensor
from da_pipelines.resources import SourceResource, WorkspaceResource
from da_pipelines.sources import resource_for, served_sources, workspace_root

log = logging.getLogger(__name__)
LEFT_OUT_GROUP = "sources_left_out"

# Binding resources, Dagster rebuilds every sensor whose job needs them and passes the
# sensor's beta ``owners`` parameter itself (even when empty): a BetaWarning per sensor in
# every process that loads these definitions. We never set owners; ignore that one warning.
warnings.filterwarnings(
    "ignore", message=r"Parameter `owners` of initializer `SensorDefinition", category=BetaWarning
)


def build_definitions(
    sources: list[DataSourceConfig] | None = None, workspace: str | None = None
) -> Definitions:
    """Definitions for ``sources`` (default: the sources file, or the embedded sample).

    Args:
        sources: The sources to serve; None reads them with ``served_sources()``.
        workspace: The workspace root; None reads ``DA_WORKSPACE`` (default ``./workspace``).

    Returns:
        Every source's assets, checks, jobs, sensors and resources, plus a stand-in asset per
        entry left out of the sources file.
    """
    invalid: list[InvalidSource] = []
    positions: list[int] = []
    if sources is None:
        served = served_sources()
        sources, invalid, positions = served.sources, list(served.invalid), served.positions
    root = Path(workspace).absolute() if workspace else workspace_root()
    resources: dict[str, Any] = {WORKSPACE_KEY: WorkspaceResource(root=str(root))}
    parts: dict[str, list[Any]] = {"assets": [], "jobs": [], "sensors": []}
    served_ids: list[str] = []
    for index, source in enumerate(sources):
        try:
            built, resource = _source_defs(source, served_ids, root)
        except ConfigurationError as exc:  # the entry's position in the file, not among the valid ones
            invalid.append(InvalidSource(positions[index] if positions else index + 1, source.id, exc))
            continue
        served_ids.append(source.id)
        resources[built.resource_key] = resource
        parts["assets"].extend(built.assets)
        parts["jobs"].append(built.job)
        parts["sensors"].append(built.sensor)
    if parts["jobs"]:
        parts["sensors"].append(lost_retries_sensor(parts["jobs"]))
    invalid.sort(key=lambda item: item.position)
    parts["assets"].extend(left_out_assets(invalid))
    return Definitions(assets=parts["assets"], jobs=parts["jobs"], sensors=parts["sensors"],
                       resources=resources, metadata=_report(invalid))


def left_out_assets(invalid: list[InvalidSource]) -> list[AssetSpec]:
    """One stand-in asset per entry left out, in group ``sources_left_out``: the UI's catalog shows the reason.

    Its key is ``["sources_left_out", "entry_<position>"]`` (the id may break the rule, so
    it is not part of the key); it is never materialized.

    Args:
        invalid: The sources-file entries that failed validation, with their errors.

    Returns:
        One asset spec per entry, its description the (redacted) reason.
    """
    return [
        AssetSpec(
            key=AssetKey([LEFT_OUT_GROUP, f"entry_{item.position}"]),
            group_name=LEFT_OUT_GROUP,
            description=f"Left out of the code location: {_line(item)}\n\nFix the entry in the sources file "
                        "(`da-sources list` shows the same reason) and reload the code location.",
            metadata={"da_sources/left_out": MetadataValue.text(_line(item))},
            tags={"da_sources/left_out": "true"},
        )
        for item in invalid
    ]


def _line(item: InvalidSource) -> str:
    return f"entry {item.position}: {redact(str(item.error))}"


def _source_defs(source: DataSourceConfig, served_ids: list[str], root: Path) -> tuple[SourceDefs, SourceResource]:
    check_distinct(source.id, served_ids)
    if source.id in served_ids:
        raise ConfigurationError(f"source id {source.id!r} appears twice")
    return build_source_defs(source, root), resource_for(source)


def _report(invalid: list[InvalidSource]) -> dict[str, Any]:
    """Log each source left out; the same lines as definitions metadata, for the UI."""
    if not invalid:
        return {}
    lines = [_line(item) for item in invalid]
    for line in lines:
        log.warning("source left out of the code location: %s", line)
    return {"da_sources/invalid_sources": MetadataValue.md("\n".join(f"- {line}" for line in lines))}
