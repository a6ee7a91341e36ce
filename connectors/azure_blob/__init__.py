"""The Azure Blob Storage connector.

One package per concern of the connector: :mod:`.connector` (the connector
itself), :mod:`.auth` (credentials and SAS), :mod:`.listing` (paged listing),
:mod:`.transfer` (parallel ranged downloads onto the landing) and
:mod:`.errors` (the one place SDK and HTTP errors become ``DataSourceError``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.azure_blob.connector import AzureBlobConnector

__all__ = ["AzureBlobConnector"]


def __getattr__(name: str) -> Any:
    # imported on first use: the s3 connector shares this package's download engine and would
    # otherwise pay for importing the Azure SDK it never calls (~0.2 CPU-s on every CLI run)
    if name == "AzureBlobConnector":
        from connectors.azure_blob.connector import AzureBlobConnector

        return AzureBlobConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
