"""``DataSourceComponent``: one data source as a Dagster Component (``dg scaffold defs``, ``defs.yaml``).

It gives the same definitions as a source of the sources file (``da_pipelines.factory``), built
from a state that is the source's listing (``dg utils refresh-defs-state``). Secrets are given as
references; a literal or ``{{ env.NAME }}`` in a secret field is refused. Usage, state and why:
``docs/design/component.md``.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from dagster.components.component.state_backed_component import StateBackedComponent
from dagster.components.scaffold.scaffold import scaffold_with
from dagster.components.utils.defs_state import DefsStateConfig, DefsStateConfigArgs, ResolvedDefsStateConfig
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import Field, JsonValue, field_validator

from connectors.base import DataSourceConfig
from connectors.entry_checks import check_entry
from connectors.errors import ConfigurationError
from connectors.landing.lineage import utc_now_iso
from connectors.secrets.references import carries_secret, is_reference
from connectors.syncing.datasets import TABLE_TYPES, Dataset
from connectors.syncing.table_listing import ListingState, refreshed
from connectors.type_table import known_type_names
from da_pipelines.components.data_sources.scaffolder import DataSourceScaffolder
from da_pipelines.factory import build_source_defs, source_keys
from da_pipelines.lost_retries import lost_retries_sensor
from da_pipelines.resources import WorkspaceResource
from da_pipelines.sources import resource_for, workspace_root
from da_pipelines.translator import WORKSPACE_KEY

log = logging.getLogger("da_pipelines")

__all__ = ["DataSourceComponent"]


def _translation_vars(dataset: Dataset) -> dict[str, Any]:
    """Template variables of ``translation``: ``{{ data.name }}``, ``{{ data.kind }}``, ``{{ data.schema }}``..."""
    return {"data": {"name": dataset.name, "kind": dataset.kind, "prefix": dataset.prefix, "glob": dataset.glob,
                     "schema": dataset.facts.get("schema"), "table": dataset.facts.get("table"),
                     "key": list(dataset.path)}}


def _refuse_templated_references(config: dict[str, Any], source_id: str) -> None:
    """Refuse a reference whose name is a value (``{env: "{{ env.X }}"}``): it would show in descriptions.

    Such a name is the value of an environment variable that is not itself set as a variable, or text
    that carries a secret; the message names the field only.
    """
    values = {v for v in os.environ.values() if v}
    for key, value in config.items():
        if not is_reference(value):
            continue
        kind, name = next(iter(value.items()))
        if carries_secret(name) or (name in values and not (kind == "env" and name in os.environ)):
            raise ConfigurationError(
                f"config.{key}: the {kind} reference's name is a value (given as {{{{ env.NAME }}}}?); "
                "write the name itself: {env: NAME} or {secret: NAME}", source_id=source_id)


@scaffold_with(DataSourceScaffolder)
class DataSourceComponent(StateBackedComponent, dg.Model, dg.Resolvable):
    """A data source (Azure Blob, PostgreSQL, local files) landed into the DeepAnalyze workspace with lineage.

    One asset per table (PostgreSQL) or per item set (blobs, files), a sync job
    ``N_sync`` and a sensor ``N_sensor``; its state is the source's table listing.
    """

    id: str = Field(description="The source's id; its files land under <workspace>/<id>/.")
    type: str = Field(description="Connector type: local_file, azure_blob, s3, postgresql, or a plugin type.",
                      # in the YAML schema too, so `dg check defs` points at the line instead of a traceback
                      json_schema_extra={"enum": list[JsonValue](sorted(known_type_names()))})
    name: str | None = Field(None, description="Human-readable name (default: the id).")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The connector config. Secrets only as references: {env: NAME} or {secret: NAME}.")
    item_sets: list[dict[str, Any]] | None = Field(
        None, description="Blob and file sources: [{name, prefix, glob, partitioned}]; default one set 'files'.")
    tables: dict[str, Any] | None = Field(None, description="PostgreSQL sources: {include: [globs], exclude: [globs]}.")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Other per-source Dagster settings (minimum_interval_seconds, max_items_per_tick, batch_size, "
                    "concurrency, max_retries, check, sensor_running_by_default, ...).")
    workspace: str | None = Field(None, description="Workspace root (default: $DA_WORKSPACE or ./workspace).")
    translation: Annotated[
        TranslationFn[Dataset] | None,
        TranslationFnResolver[Dataset](template_vars_for_translation_fn=_translation_vars),
    ] = Field(None, description="Change the asset specs: key, group_name, tags, automation_condition, ... "
                                "({{ data.name }}, {{ data.schema }}, {{ data.table }} are available).")
    defs_state: ResolvedDefsStateConfig = Field(
        default_factory=DefsStateConfigArgs.local_filesystem,
        description="Where the listing state is kept (default: the local filesystem of the project).")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        # checked with the YAML, so `dg check defs` names the attribute instead of printing a traceback
        known = sorted(known_type_names())
        if value not in known:
            close = difflib.get_close_matches(value, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown connector type {value!r} (known: {', '.join(known)}){hint}")
        return value

    def source_config(self) -> DataSourceConfig:
        """The source as the connectors see it, checked as a sources-file entry is, before anything connects.

        Returns:
            The source's config, ``item_sets``, ``tables`` and ``settings`` under ``metadata.dagster``.

        Raises:
            ConfigurationError: an invalid entry, a literal secret, or a reference whose name is a value.
        """
        dagster = {**self.settings}
        if self.item_sets is not None:
            dagster["item_sets"] = self.item_sets
        if self.tables is not None:
            dagster["tables"] = self.tables
        _refuse_templated_references(self.config, self.id)
        return check_entry(DataSourceConfig(id=self.id, type=self.type, name=self.name or self.id,
                                            config=self.config, metadata={"dagster": dagster} if dagster else {}))

    @property
    def defs_state_config(self) -> DefsStateConfig:
        return DefsStateConfig.from_args(self.defs_state, default_key=f"DataSourceComponent[{self.id}]")

    def write_state_to_path(self, state_path: Path) -> None:
        """List the source's tables into ``state_path``; on failure keep the previous state with the reason.

        Args:
            state_path: where Dagster keeps this component's state.
        """
        source = self.source_config()
        previous = ListingState.from_json(state_path.read_text()) if state_path.is_file() else None
        if source.type_name in TABLE_TYPES:
            state = refreshed(source, previous)  # a failure keeps the previous tables and says why
        else:
            state = ListingState(tables=None, listed_at=utc_now_iso(), extra={"item_sets": json.loads(json.dumps(
                self.item_sets or [{"name": "files"}]))})
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(state.to_json())

    def build_defs_from_state(self, context: dg.ComponentLoadContext, state_path: Path | None) -> dg.Definitions:
        """The source's assets, job, sensors and resources, from its listing state.

        Args:
            context: Dagster's load context.
            state_path: the listing written by :meth:`write_state_to_path`, or None before any.

        Returns:
            The definitions; with no listing, one stand-in asset covers every table and says why.
        """
        source = self.source_config()
        listing = ListingState.from_json(state_path.read_text()) if state_path and state_path.is_file() else None
        if listing is None and source.type_name in TABLE_TYPES:
            listing = ListingState(error="no listing state yet: run `dg utils refresh-defs-state` "
                                         "(dagster dev refreshes it on load)")
            log.warning("source %r: %s", source.id, listing.error)
        elif listing is not None and listing.error:
            log.warning("source %r: %s", source.id, listing.error)
        keys = source_keys(source, listing, self.translation)
        built = build_source_defs(source, keys=keys)
        root = Path(self.workspace).absolute() if self.workspace else workspace_root()
        lost = lost_retries_sensor([built.job], name=f"{keys.slug}_lost_retries")
        return dg.Definitions(assets=built.assets, jobs=[built.job], sensors=[built.sensor, lost],
                              resources={built.resource_key: resource_for(source),
                                         WORKSPACE_KEY: WorkspaceResource(root=str(root))})
