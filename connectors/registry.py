"""Connector types: the built-ins, plugins, and lookup by type name.

Built-ins are named by import path and imported only when used, so listing
types or validating a config never imports an SDK. Third-party packages add
types with :func:`register_connector` or through the ``da_sources.connectors``
entry-point group (name = type name, value = ``module:Class``).

Example:
    >>> register_connector("s3", S3Connector)
    >>> get_connector_class("s3")
    <class 'S3Connector'>
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.errors import ConfigurationError
from connectors.settings import BUILTIN_SETTINGS, ConnectorSettings

if TYPE_CHECKING:
    from connectors.base import DataSourceConfig, DataSourceConnector

ENTRY_POINT_GROUP = "da_sources.connectors"

_BUILTIN_PATHS = {
    "local_file": "connectors.local_file:LocalFileConnector",
    "azure_blob": "connectors.azure_blob:AzureBlobConnector",
    "postgresql": "connectors.postgresql:PostgreSQLConnector",
}
_INSTALL_HINTS = {
    "azure_blob": "pip install azure-storage-blob[aio]",
    "postgresql": "pip install 'psycopg[binary]' psycopg-pool",
}

_registered: dict[str, type[DataSourceConnector]] = {}
_plugin_paths: dict[str, str] | None = None


def _entry_point_paths() -> dict[str, str]:
    global _plugin_paths
    if _plugin_paths is None:
        _plugin_paths = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _plugin_paths


def known_type_names() -> set[str]:
    """Every type name that can be used in a source's ``type``."""
    return set(_BUILTIN_PATHS) | set(_registered) | set(_entry_point_paths())


def register_connector(
    type_name: str, cls: type[DataSourceConnector], *, replace: bool = False
) -> None:
    """Make ``cls`` serve sources of ``type_name``.

    Raises:
        ConfigurationError: ``cls`` does not implement the connector interface,
            lacks a ``settings_model``, or the name is taken and ``replace`` is
            not set.
    """
    from connectors.base import DataSourceConnector

    if not (isinstance(cls, type) and issubclass(cls, DataSourceConnector)):
        raise ConfigurationError(f"{cls!r} is not a DataSourceConnector subclass")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigurationError(f"{cls.__name__} does not implement: {missing}")
    settings = getattr(cls, "settings_model", None)
    if not (isinstance(settings, type) and issubclass(settings, ConnectorSettings)):
        raise ConfigurationError(f"{cls.__name__}.settings_model must be a ConnectorSettings subclass")
    if not replace and type_name in known_type_names() and _registered.get(type_name) is not cls:
        raise ConfigurationError(f"connector type {type_name!r} is already registered; pass replace=True")
    _registered[type_name] = cls


def unregister_connector(type_name: str) -> None:
    """Forget a type registered with :func:`register_connector`."""
    _registered.pop(type_name, None)


def get_connector_class(type_name: str) -> type[DataSourceConnector]:
    """The class serving ``type_name``, imported on first use.

    Raises:
        ConfigurationError: unknown type (the message lists the known ones), or
            its optional dependency is not installed (the message says what to install).
    """
    if type_name in _registered:
        return _registered[type_name]
    path = _BUILTIN_PATHS.get(type_name) or _entry_point_paths().get(type_name)
    if path is None:
        known = ", ".join(sorted(known_type_names()))
        raise ConfigurationError(f"unknown connector type {type_name!r} (known: {known})")
    cls = _import(type_name, path)
    _registered[type_name] = cls
    return cls


def _import(type_name: str, path: str) -> type[DataSourceConnector]:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(type_name, f"install the package that provides {module_name}")
        raise ConfigurationError(
            f"connector type {type_name!r} needs a package that is not installed ({exc.name}): {hint}"
        ) from exc
    cls: type[DataSourceConnector] = getattr(module, attribute)
    return cls


def settings_model_for(type_name: str) -> type[ConnectorSettings]:
    """The settings model of ``type_name`` (built-ins without importing their SDK)."""
    if type_name in BUILTIN_SETTINGS:
        return BUILTIN_SETTINGS[type_name]
    return get_connector_class(type_name).settings_model


def type_name_of(cls: type[DataSourceConnector]) -> str:
    """The type name a connector class is registered under."""
    for name, registered in _registered.items():
        if registered is cls:
            return name
    for name, path in {**_BUILTIN_PATHS, **_entry_point_paths()}.items():
        if path == f"{cls.__module__}:{cls.__qualname__}":
            return name
    raise ConfigurationError(f"{cls.__name__} is not a registered connector type")


# --- the sources file ---------------------------------------------------------

SOURCES_FILE_ENV = "DA_SOURCES_FILE"
DEFAULT_SOURCES_FILE = "sources.yaml"


def sources_file_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The sources file: ``path``, else ``$DA_SOURCES_FILE``, else ``./sources.yaml``."""
    return Path(path or os.environ.get(SOURCES_FILE_ENV) or DEFAULT_SOURCES_FILE)


def load_sources_file(path: str | os.PathLike[str]) -> list[DataSourceConfig]:
    """Parse and validate a sources file (``sources: [...]``).

    Raises:
        ConfigurationError: unreadable YAML, a wrong shape, a duplicate id, or a
            bad source (the message names the source and the field).
    """
    import yaml

    from connectors.base import DataSourceConfig

    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read sources file {str(path)!r}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("sources", []), list):
        raise ConfigurationError(f"{str(path)!r}: expected a mapping with a 'sources' list")
    unknown = set(document) - {"sources"}
    if unknown:
        raise ConfigurationError(f"{str(path)!r}: unknown top-level keys {sorted(unknown)}")
    sources = [DataSourceConfig.from_dict(entry) for entry in document.get("sources") or []]
    seen: set[str] = set()
    for source in sources:
        if source.id in seen:
            raise ConfigurationError(f"{str(path)!r}: source id {source.id!r} appears twice")
        seen.add(source.id)
    return sources
