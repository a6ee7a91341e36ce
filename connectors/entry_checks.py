"""The checks every source entry passes before it is stored, served or connected.

One function, :func:`check_entry`, run by the sources file's reader (so ``da-sources
list``/``test`` and the Dagster code location), by every write (``da-sources add``,
the API's create and update) and by the Dagster Component: an entry one of them
refuses, all of them refuse, and always before any connection is made.

Beyond what ``DataSourceConfig`` itself checks (the id rule, the type, ``config``):

* secret fields only as references (``{env: NAME}`` / ``{secret: NAME}``): a literal
  would end up in Dagster's run config and UI;
* ``metadata.sync`` (:mod:`connectors.syncing.source_sync`) and ``metadata.dagster``
  (:mod:`connectors.pipeline_settings`) valid.
"""

from __future__ import annotations

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.pipeline_settings import pipeline_settings
from connectors.settings import literal_secrets
from connectors.type_table import settings_model_for

__all__ = ["check_entry"]

_HINT = "give it as {env: NAME} or {secret: NAME} (store the value with 'da-sources secrets set NAME')"


def check_entry(source: DataSourceConfig) -> DataSourceConfig:
    """Refuse ``source`` unless every part of it can be served; returns it unchanged.

    Args:
        source: A sources-file entry, already validated as a config.

    Returns:
        ``source``, unchanged.

    Raises:
        ConfigurationError: a literal secret, or a bad ``metadata.sync`` / ``metadata.dagster``
            (naming the source and the field, never a value).
    """
    literal = literal_secrets(settings_model_for(source.type_name), source.config)
    if literal:
        raise ConfigurationError(f"{next(iter(literal.values()))}: a literal secret cannot be handed to Dagster "
                                 "nor kept in the sources file; "
                                 f"{_HINT}", source_id=source.id)
    from connectors.syncing.source_sync import (
        sync_options,  # connectors.syncing.source_sync imports the registry's neighbours
    )

    sync_options(source)
    pipeline_settings(source)
    return source
