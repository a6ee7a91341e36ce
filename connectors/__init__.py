"""Data-source connectors for DeepAnalyze: land remote data in a workspace, with lineage.

The public API. Connectors themselves are imported from their modules
(``connectors.local_file``, ``connectors.azure_blob``, ``connectors.postgresql``)
or looked up by type name with :func:`get_connector_class`, so importing this
package never imports a cloud SDK. Nothing here imports dagster.
"""

from connectors.base import (
    DataItem,
    DataSourceConfig,
    DataSourceConnector,
    DataSourceType,
    FetchResult,
)
from connectors.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    DataSourceError,
    IntegrityError,
    NameCollisionError,
    NotFoundError,
    UnsafeNameError,
    WorkspaceError,
    is_retryable,
)
from connectors.landing.lineage import find_provenance, read_provenance, run_context
from connectors.landing.progress import on_progress
from connectors.plugins import get_connector_class, register_connector
from connectors.secrets.references import Secret

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionError",
    "DataFetchError",
    "DataItem",
    "DataSourceConfig",
    "DataSourceConnector",
    "DataSourceError",
    "DataSourceType",
    "FetchResult",
    "IntegrityError",
    "NameCollisionError",
    "NotFoundError",
    "Secret",
    "UnsafeNameError",
    "WorkspaceError",
    "find_provenance",
    "get_connector_class",
    "is_retryable",
    "on_progress",
    "read_provenance",
    "register_connector",
    "run_context",
]
