"""Deprecated: a source's ``metadata.dagster`` settings live in :mod:`connectors.pipeline_settings`.

Importing these names from here still works for one release, with a ``DeprecationWarning``.
"""

from connectors.deprecation import moved_names

_MOVED = ["DEFAULT_SET", "MAX_PARTITIONS", "CheckSettings", "ItemSetSpec", "PipelineSettings", "TableScope",
           "pipeline_settings"]
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED, "connectors.pipeline_settings"))
