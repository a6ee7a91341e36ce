"""The Azure Blob Storage connector.

One package per concern of the connector: :mod:`.connector` (the connector
itself), :mod:`.auth` (credentials and SAS), :mod:`.listing` (paged listing),
:mod:`.transfer` (parallel ranged downloads onto the landing) and
:mod:`.errors` (the one place SDK and HTTP errors become ``DataSourceError``).
"""

from connectors.azure_blob.connector import AzureBlobConnector

__all__ = ["AzureBlobConnector"]
