"""The table of connector types by name: built-ins, registered classes and entry-point plugins.

Built-ins are named by import path and imported only when used, so listing
types or validating a config never imports an SDK. Third-party packages add
types through the ``da_sources.connectors`` entry-point group (name = type
name, value = ``module:Class``) or with :func:`connectors.register_connector`.

This module knows connector classes only as classes: it sits below
:mod:`connectors.base` (which validates configs against it), and
:mod:`connectors.plugins` (registering, typed lookups) sits above both.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

from pydantic import ConfigDict

from connectors.errors import ConfigurationError
from connectors.settings import BUILTIN_SETTINGS, ConnectorSettings

__all__ = ["ENTRY_POINT_GROUP", "FreeformSettings", "known_type_names", "settings_model_for", "type_name_of"]
# the rest (add_class, remove_class, is_taken, load_class) is connectors.plugins' machinery

ENTRY_POINT_GROUP = "da_sources.connectors"

_BUILTIN_PATHS = {
    "local_file": "connectors.local_file:LocalFileConnector",
    "azure_blob": "connectors.azure_blob:AzureBlobConnector",
    "postgresql": "connectors.postgresql:PostgreSQLConnector",
    "s3": "connectors.s3:S3Connector",
}
_INSTALL_HINTS = {
    "azure_blob": "pip install azure-storage-blob[aio]",
    "postgresql": "pip install 'psycopg[binary]' psycopg-pool",
    "s3": "pip install 'da-sources[s3]' (botocore for profiles and the AWS credential chain, awscrt for CRC checks)",
}

_registered: dict[str, type] = {}
_plugin_paths: dict[str, str] | None = None


def _entry_point_paths() -> dict[str, str]:
    global _plugin_paths
    if _plugin_paths is None:
        _plugin_paths = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _plugin_paths


def known_type_names() -> set[str]:
    """Every type name that can be used in a source's ``type``.

    Returns:
        The built-ins, the registered classes and the entry-point plugins' names.
    """
    return set(_BUILTIN_PATHS) | set(_registered) | set(_entry_point_paths())


def is_taken(type_name: str, cls: type) -> bool:
    """Whether ``type_name`` already names another class than ``cls``."""
    return type_name in known_type_names() and _registered.get(type_name) is not cls


def add_class(type_name: str, cls: type) -> None:
    """Record ``cls`` as the class of ``type_name`` (checked by the caller)."""
    _registered[type_name] = cls


def remove_class(type_name: str) -> None:
    """Forget the class recorded for ``type_name``."""
    _registered.pop(type_name, None)


def load_class(type_name: str) -> type:
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


def _import(type_name: str, path: str) -> type:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(type_name, f"install the package that provides {module_name}")
        raise ConfigurationError(
            f"connector type {type_name!r} needs a package that is not installed ({exc.name}): {hint}"
        ) from exc
    cls: type = getattr(module, attribute)
    return cls


class FreeformSettings(ConnectorSettings):
    """Settings of a connector type without a ``settings_model`` (a plugin that reads its config itself): any keys.

    Values may still be secret references; the connector reads ``config.config`` itself.
    """

    model_config = ConfigDict(extra="allow", frozen=True)


def settings_model_for(type_name: str) -> type[ConnectorSettings]:
    """The settings model of ``type_name`` (built-ins without importing their SDK).

    Args:
        type_name: A connector type's name.

    Returns:
        The model its configs are validated against (:class:`FreeformSettings` when it has none).

    Raises:
        ConfigurationError: unknown type, or its package is not installed.
    """
    if type_name in BUILTIN_SETTINGS:
        return BUILTIN_SETTINGS[type_name]
    model: type[ConnectorSettings] | None = getattr(load_class(type_name), "settings_model", None)
    return model or FreeformSettings


def type_name_of(cls: type) -> str:
    """The type name a connector class is registered under.

    Args:
        cls: A connector class.

    Returns:
        Its type name.

    Raises:
        ConfigurationError: ``cls`` is not a registered connector type.
    """
    for name, registered in _registered.items():
        if registered is cls:
            return name
    for name, path in {**_BUILTIN_PATHS, **_entry_point_paths()}.items():
        if _names_class(path, cls):
            return name
    raise ConfigurationError(f"{cls.__name__} is not a registered connector type")


def _names_class(path: str, cls: type) -> bool:
    """Whether ``module:Class`` is ``cls``, also when the module re-exports it (a package's ``__init__``)."""
    module_name, _, attribute = path.partition(":")
    if path == f"{cls.__module__}:{cls.__qualname__}":
        return True
    module = sys.modules.get(module_name)  # a class's package is imported before the class is used
    if module is None:
        return False
    if attribute not in vars(module) and not cls.__module__.startswith(f"{module_name}."):
        return False  # a lazy attribute of another package: asking would import it (the Azure SDK for S3)
    return getattr(module, attribute, None) is cls
