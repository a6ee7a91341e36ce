"""The Azure Blob Storage connector.

One module per concern: :mod:`.connector` (what differs from S3; the rest is
:mod:`connectors.object_store`), :mod:`.auth` (credentials and SAS),
:mod:`.data_path` (the plain HTTP requests), :mod:`.listing` (paged listing),
:mod:`.ranged_download` (parallel ranged downloads onto the landing, S3's too),
:mod:`.hashing`, :mod:`.retries`, :mod:`.scope`, :mod:`.reach`, :mod:`.upload`
and :mod:`.errors` (the one place SDK and HTTP errors become ``DataSourceError``).
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
