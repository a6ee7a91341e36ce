"""Deprecated: the Component is ``da_pipelines.components.DataSourceComponent``.

A ``defs.yaml`` with ``type: da_pipelines.component.DataSourceComponent`` still loads for one
release, with a ``DeprecationWarning``; ``dg list components`` lists only the new type.
"""

from connectors.deprecation import moved_names

__getattr__ = moved_names(__name__, {"DataSourceComponent": "da_pipelines.components",
                                     "DataSourceScaffolder": "da_pipelines.components.data_sources"})
