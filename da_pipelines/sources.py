"""Which sources the code location serves, and the resource that configures each.

Sources come from the sources file (``DA_SOURCES_FILE``, default
``./sources.yaml``). Without one, the embedded ``sample`` source (local files
in the repository's ``sample_data/``) is served, so the project runs with zero
set-up. The workspace root is ``DA_WORKSPACE`` (default ``./workspace``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dagster import EnvVar

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.registry import load_sources_file, settings_model_for, sources_file_path
from connectors.secrets.references import is_reference
from da_pipelines.resources import RESOURCE_TYPES, PluginSourceResource, SourceResource

WORKSPACE_ENV = "DA_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"
SAMPLE_SOURCE_ID = "sample"
# sample_data/ sits beside the package in the repository (an editable install keeps it there)
SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def workspace_root() -> Path:
    """The workspace root, absolute: runs in other processes and folders must agree on it."""
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).absolute()


def sample_source() -> DataSourceConfig:
    """The embedded default source: the small CSV and Parquet files of ``sample_data/``."""
    return DataSourceConfig(
        id=SAMPLE_SOURCE_ID,
        type="local_file",
        name="Sample data (embedded)",
        config={"root": str(SAMPLE_DATA_DIR)},
        metadata={"embedded": True},
    )


def load_sources() -> list[DataSourceConfig]:
    """The configured sources, or the embedded sample when there is no sources file.

    Raises:
        ConfigurationError: the sources file exists but is invalid (names the source and field).
    """
    path = sources_file_path()
    if not path.exists():
        if os.environ.get("DA_SOURCES_FILE"):
            raise ConfigurationError(f"DA_SOURCES_FILE names {str(path)!r}, which does not exist")
        return [sample_source()]
    return load_sources_file(path)


def resource_for(source: DataSourceConfig) -> SourceResource:
    """The Dagster resource configuring ``source``, with secrets as references only.

    Raises:
        ConfigurationError: a secret field holds a literal value (it would end up
            in Dagster's run config and UI); give it as ``{env: NAME}`` or ``{secret: NAME}``.
    """
    secret_fields = settings_model_for(source.type_name).secret_fields()
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
        elif key in secret_fields:
            raise ConfigurationError(
                f"config.{key}: a literal secret cannot be handed to Dagster; "
                "give it as {env: NAME} or {secret: NAME}",
                source_id=source.id,
            )
        else:
            values[key] = value
    identity: dict[str, Any] = {"source_id": source.id, "source_name": source.name,
                                "secret_refs": secret_refs, "references": references}
    resource_type = RESOURCE_TYPES.get(source.type_name)
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
