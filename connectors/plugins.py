"""Connector types: register a connector class under a type name, and get the class of a type.

The table itself (built-ins by import path, entry-point plugins, settings
models) is :mod:`connectors.type_table`; this module adds the typed API over it.

Example:
    >>> register_connector("memory", MemoryConnector)
    >>> get_connector_class("memory")
    <class 'MemoryConnector'>
"""

from __future__ import annotations

from typing import cast

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError
from connectors.settings import ConnectorSettings
from connectors.type_table import add_class, is_taken, load_class, remove_class

__all__ = ["get_connector_class", "register_connector", "unregister_connector"]


def register_connector(type_name: str, cls: type[DataSourceConnector], *, replace: bool = False) -> None:
    """Make ``cls`` serve sources of ``type_name``.

    ``settings_model`` is optional: without one, the type's ``config`` is a free
    mapping that the connector reads itself. Registering affects this process
    only; the ``da-sources`` CLI and ``dagster -m da_pipelines`` see a type
    registered here only when it is declared as an entry point, or when your own
    code location registers it before building the definitions.

    Args:
        type_name: the name sources use in ``type``.
        cls: a concrete :class:`~connectors.base.DataSourceConnector` subclass.
        replace: allow replacing a class already registered under ``type_name``.

    Raises:
        ConfigurationError: ``cls`` does not implement the connector interface,
            its ``settings_model`` is not a ``ConnectorSettings`` subclass, or the
            name is taken and ``replace`` is not set.
    """
    if not (isinstance(cls, type) and issubclass(cls, DataSourceConnector)):
        raise ConfigurationError(f"{cls!r} is not a DataSourceConnector subclass")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigurationError(f"{cls.__name__} does not implement: {missing}")
    settings = getattr(cls, "settings_model", None)
    if settings is not None and not (isinstance(settings, type) and issubclass(settings, ConnectorSettings)):
        raise ConfigurationError(f"{cls.__name__}.settings_model must be a ConnectorSettings subclass")
    if not replace and is_taken(type_name, cls):
        raise ConfigurationError(f"connector type {type_name!r} is already registered; pass replace=True")
    add_class(type_name, cls)


def unregister_connector(type_name: str) -> None:
    """Forget a type registered with :func:`register_connector`.

    Args:
        type_name: the type name; an unknown name is ignored.
    """
    remove_class(type_name)


def get_connector_class(type_name: str) -> type[DataSourceConnector]:
    """The class serving ``type_name``, imported on first use.

    Args:
        type_name: a built-in type name, one registered here, or an entry-point plugin's.

    Returns:
        The connector class (not an instance).

    Raises:
        ConfigurationError: unknown type (the message lists the known ones), or
            its optional dependency is not installed (the message says what to install).
    """
    return cast(type[DataSourceConnector], load_class(type_name))
