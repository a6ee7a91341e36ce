"""Listing a bucket page by page (ListObjectsV2, 1,000 keys per page: the service's maximum).

Keys come URL-encoded (``encoding-type=url``) so any byte a key holds survives the
XML; each page is parsed, yielded and dropped before the next is asked for, and
the next is requested as soon as its continuation token is read. Folder
placeholders (zero-byte keys ending in '/') are never items.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncGenerator
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import partial
from operator import itemgetter
from typing import Any
from urllib.parse import unquote_plus

from connectors.azure_blob.listing import is_folder_placeholder, quoted_etag
from connectors.azure_blob.retries import with_retries
from connectors.base import DataItem
from connectors.errors import DataFetchError
from connectors.object_store import prefetched_pages
from connectors.s3.data_path import S3DataPath

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

PAGE = 1000


def list_pages(
    path: S3DataPath, prefix: str, *, retries: int, page_size: int = PAGE, what: str = "listing the bucket"
) -> AsyncGenerator[list[DataItem], None]:
    """The objects under ``prefix``, one page (a list) at a time, in key order."""
    base = {"list-type": "2", "max-keys": str(page_size), "encoding-type": "url", "prefix": prefix}

    async def request(token: str) -> tuple[list[DataItem], str]:
        params = {**base, "continuation-token": token} if token else base
        return parse_page(await with_retries(partial(path.get_bucket, params), what, path.source_id, retries))

    return prefetched_pages(request, itemgetter(1), itemgetter(0))


async def probe(path: S3DataPath, prefix: str, *, retries: int, what: str) -> None:
    """A one-key listing: proves the bucket answers and these credentials may list it."""
    params = {"list-type": "2", "max-keys": "1", "prefix": prefix}
    await with_retries(partial(path.get_bucket, params), what, path.source_id, retries)


def parse_page(body: bytes) -> tuple[list[DataItem], str]:
    """The items of one ListObjectsV2 answer and the continuation token of the next ('' when last)."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - the storage service's own answer
    except ElementTree.ParseError as exc:
        raise DataFetchError("listing: the service sent a listing that is not valid XML") from exc
    encoded = (root.findtext("{*}EncodingType") or "").lower() == "url"
    items = [_item(element, encoded) for element in root.iterfind("{*}Contents")]
    truncated = (root.findtext("{*}IsTruncated") or "").lower() == "true"
    token = root.findtext("{*}NextContinuationToken") or "" if truncated else ""
    return [item for item in items if not is_folder_placeholder(item)], token


def _item(element: ElementTree.Element, encoded: bool) -> DataItem:
    key = element.findtext("{*}Key") or ""
    name = unquote_plus(key) if encoded else key
    etag = quoted_etag(element.findtext("{*}ETag") or "")
    modified = _parse_date(element.findtext("{*}LastModified"))
    return DataItem(
        name=name.rstrip("/").rsplit("/", 1)[-1] or name,
        path=name,
        size=int(element.findtext("{*}Size") or 0),
        modified_at=int(modified.timestamp()) if modified else 0,
        metadata={
            "etag": etag,
            "version": etag,
            "storage_class": element.findtext("{*}StorageClass") or None,
            "last_modified": modified.isoformat().replace("+00:00", "Z") if modified else None,
            "checksum_algorithm": element.findtext("{*}ChecksumAlgorithm") or None,
            "metadata": {},
        },
    )


def _parse_date(value: str | None) -> Any:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
