"""Connector types: the built-ins and plugins, by type name.

Built-ins are named by import path and imported only when used, so listing
types or validating a config never imports an SDK. Third-party packages add
types with :func:`register_connector` or through the ``da_sources.connectors``
entry-point group (name = type name, value = ``module:Class``).
:mod:`connectors.registry` re-exports these names; the persistent registry of
configured sources lives there.

Example:
    >>> register_connector("s3", S3Connector)
    >>> get_connector_class("s3")
    <class 'S3Connector'>
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from pydantic import ConfigDict

from connectors.errors import ConfigurationError
from connectors.settings import BUILTIN_SETTINGS, ConnectorSettings

if TYPE_CHECKING:
    from connectors.base import DataSourceConnector

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
    "s3": "pip install 'da-sources[s3]' (botocore, for request signing and the AWS credential chain)",
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
        ConfigurationError: ``cls`` does not implement the connector interface
            (the seed's six methods), its ``settings_model`` is not a
            ``ConnectorSettings`` subclass, or the name is taken and ``replace``
            is not set.

    ``settings_model`` is optional: without one, the type's ``config`` is a free
    mapping (:class:`FreeformSettings`) that the connector reads itself.
    Registering affects this process only; the ``da-sources`` CLI and
    ``dagster -m da_pipelines`` see a type registered here only when it is
    declared as an entry point, or when your own code location registers it
    before building the definitions.
    """
    if not _is_connector_class(cls):
        raise ConfigurationError(f"{cls!r} is not a DataSourceConnector subclass")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigurationError(f"{cls.__name__} does not implement: {missing}")
    settings = getattr(cls, "settings_model", None)
    if settings is not None and not (isinstance(settings, type) and issubclass(settings, ConnectorSettings)):
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


class FreeformSettings(ConnectorSettings):
    """Settings of a connector type without a ``settings_model`` (a seed-style plugin): any keys.

    Values may still be secret references; the connector reads ``config.config`` itself.
    """

    model_config = ConfigDict(extra="allow", frozen=True)


def settings_model_for(type_name: str) -> type[ConnectorSettings]:
    """The settings model of ``type_name`` (built-ins without importing their SDK)."""
    if type_name in BUILTIN_SETTINGS:
        return BUILTIN_SETTINGS[type_name]
    model: type[ConnectorSettings] | None = getattr(get_connector_class(type_name), "settings_model", None)
    return model or FreeformSettings


def type_name_of(cls: type[DataSourceConnector]) -> str:
    """The type name a connector class is registered under."""
    for name, registered in _registered.items():
        if registered is cls:
            return name
    for name, path in {**_BUILTIN_PATHS, **_entry_point_paths()}.items():
        if _names_class(path, cls):
            return name
    raise ConfigurationError(f"{cls.__name__} is not a registered connector type")


def _is_connector_class(cls: object) -> bool:
    # by name, not issubclass: connectors.base imports this module, so it cannot import base back
    return isinstance(cls, type) and any(
        (klass.__module__, klass.__qualname__) == ("connectors.base", "DataSourceConnector") for klass in cls.__mro__
    )


def _names_class(path: str, cls: type) -> bool:
    """Whether ``module:Class`` is ``cls``, also when the module re-exports it (a package's ``__init__``)."""
    module_name, _, attribute = path.partition(":")
    if path == f"{cls.__module__}:{cls.__qualname__}":
        return True
    module = sys.modules.get(module_name)  # a class's package is imported before the class is used
    return module is not None and getattr(module, attribute, None) is cls
