"""Which sources the code location serves, and the resource that configures each.

Sources come from the sources file (``DA_SOURCES_FILE``, default
``./sources.yaml``). Without one, the embedded ``sample`` source (local files
in the repository's ``sample_data/``) is served, so the project runs with zero
set-up; ``DA_SAMPLE_ONLY=1`` serves the sample alone whatever the file says
(``scripts/run-sample`` sets it). An invalid entry of the file is left out and
reported (logged, and listed in the definitions' metadata); the others are
served. The workspace root is ``DA_WORKSPACE`` (default ``./workspace``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster import EnvVar

from connectors.api.policy import made_through_api, policy_file_path
from connectors.base import DataSourceConfig
from connectors.environment import read
from connectors.errors import ConfigurationError
from connectors.registry import (
    SAMPLE_DATA_DIR,
    SAMPLE_ONLY_ENV,
    SAMPLE_SOURCE_ID,
    SourceRegistry,
    SourcesFile,
    embedded_sample,
    sources_file_named,
    sources_file_path,
)
from connectors.secrets.references import is_reference
from connectors.settings import literal_secrets
from connectors.type_table import settings_model_for
from da_pipelines.resources import RESOURCE_TYPES, PluginSourceResource, SourceResource

__all__ = ["SAMPLE_DATA_DIR", "SAMPLE_SOURCE_ID", "load_sources", "resource_for", "sample_source",
           "served_sources", "workspace_root"]

WORKSPACE_ENV = "DA_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"


def workspace_root() -> Path:
    """The workspace root, absolute: runs in other processes and folders must agree on it.

    Returns:
        ``$DA_WORKSPACE`` or ``./workspace``, made absolute.
    """
    return Path(read(WORKSPACE_ENV) or DEFAULT_WORKSPACE).absolute()


def sample_source() -> DataSourceConfig:
    """The embedded default source: the small CSV and Parquet files of ``sample_data/``.

    Returns:
        The ``sample`` source's entry.
    """
    return embedded_sample()


def served_sources() -> SourcesFile:
    """What the code location serves: the valid sources, and the invalid entries with their errors.

    The same answer as ``da-sources list`` (both read it with ``SourceRegistry(embedded_sample=True)``).

    Returns:
        The parsed sources file.

    Raises:
        ConfigurationError: ``DA_SOURCES_FILE`` names a missing file, or the file
            itself is unreadable (not YAML, not UTF-8, not ``sources: [...]``).
    """
    path = sources_file_path()
    if sources_file_named() and not path.exists() and read(SAMPLE_ONLY_ENV) != "1":
        raise ConfigurationError(f"DA_SOURCES_FILE names {str(path)!r}, which does not exist")
    return SourceRegistry(embedded_sample=True).load()


def load_sources() -> list[DataSourceConfig]:
    """The valid configured sources.

    Returns:
        The sources file's valid entries, or the embedded sample when there is no sources file.
    """
    return served_sources().sources


def resource_for(source: DataSourceConfig) -> SourceResource:
    """The Dagster resource configuring ``source``, with secrets as references only.

    Args:
        source: The source's validated entry.

    Returns:
        The resource; its config holds ``{env: NAME}`` / ``{secret: NAME}`` references, never values.

    Raises:
        ConfigurationError: a secret field holds a literal value (it would end up
            in Dagster's run config and UI); give it as ``{env: NAME}`` or ``{secret: NAME}``.
    """
    literal = literal_secrets(settings_model_for(source.type_name), source.config)
    values: dict[str, Any] = {}
    secret_refs: dict[str, str] = {}
    references: dict[str, str] = {}
    for key, value in source.config.items():
        if is_reference(value):
            kind, name = next(iter(value.items()))
            if kind == "secret":
                secret_refs[key] = name
            elif _takes_text(source.type_name, key):
                values[key] = EnvVar(name)  # Dagster shows the variable's name, resolves it in the run
            else:
                references[key] = name
        elif key in literal:  # a secret field, or text carrying one (account_url with a SAS)
            raise ConfigurationError(
                f"{literal[key]}: a literal secret cannot be handed to Dagster; "
                "give it as {env: NAME} or {secret: NAME}",
                source_id=source.id,
            )
        else:
            values[key] = value
    identity: dict[str, Any] = {"source_id": source.id, "source_name": source.name,
                                "secret_refs": secret_refs, "references": references}
    if made_through_api(source):  # an API caller wrote it: its hosts are checked at connect time, as in the API
        identity["reach_policy_file"] = str(policy_file_path(sources_file_path()))
    resource_type = RESOURCE_TYPES.get(source.type_name)
    for nested in ("table_options", "incremental"):  # nested options travel as JSON in Dagster config
        if resource_type is not None and nested in values:
            values[f"{nested}_json"] = json.dumps(values.pop(nested))
    if resource_type is None:
        return PluginSourceResource(plugin_type=source.type_name, config_json=json.dumps(values), **identity)
    return resource_type(**identity, **values)


def _takes_text(type_name: str, key: str) -> bool:
    """Whether ``key`` of a built-in type is a text field (an ``EnvVar`` can only fill those)."""
    resource_type = RESOURCE_TYPES.get(type_name)
    if resource_type is None:
        return False
    field = resource_type.model_fields.get(key)
    return field is not None and field.annotation in (str, str | None)
