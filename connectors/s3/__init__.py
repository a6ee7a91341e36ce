"""The S3 connector: one bucket of Amazon S3 or of an S3-compatible store (MinIO, R2, Ceph, GCS interop).

One module per concern: :mod:`.connector` (the connector), :mod:`.auth` (credentials and
SigV4 signing), :mod:`.data` (the requests, on the same ranged-download engine as
``azure_blob``), :mod:`.listing` (ListObjectsV2 pages) and :mod:`.upload`.
"""

from connectors.s3.connector import S3Connector

__all__ = ["S3Connector"]
