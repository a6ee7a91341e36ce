"""The S3 connector: one bucket of Amazon S3 or of an S3-compatible store (MinIO, R2, Ceph, GCS interop).

One module per concern: :mod:`.connector` (what differs from Azure; the rest is
:mod:`connectors.object_store`), :mod:`.auth` (credentials and SigV4 signing),
:mod:`.data_path` (the requests, on the same ranged-download engine as ``azure_blob``),
:mod:`.checksums` (``x-amz-checksum-*``), :mod:`.listing` (ListObjectsV2 pages),
:mod:`.upload` and :mod:`.multipart`.
"""

from connectors.s3.connector import S3Connector

__all__ = ["S3Connector"]
