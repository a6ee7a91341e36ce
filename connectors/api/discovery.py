"""Discovery: browse a source folder by folder, an item's metadata, table schemas and relationships,
previews and numeric statistics. Listings and metadata are cached per source (``cache_seconds``) and
dropped when the source changes; a listing is held on disk (:mod:`connectors.api.listing_file`)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query, Request, Response

from connectors.api import tables
from connectors.api.app_state import ApiState
from connectors.api.errors import ApiError
from connectors.api.listing_file import BATCH as LISTING_BATCH
from connectors.api.listing_file import ListingFile, sweep_orphans
from connectors.api.routing import ReadKey, State, new_router
from connectors.api.schemas import EntryList, ItemMetadata, Preview, Relationships, Stats, TableSchema
from connectors.api.sources import Limit, SourceId, load_source
from connectors.base import DataItem, DataSourceConfig, DataSourceConnector
from connectors.errors import ConfigurationError
from connectors.secrets.references import redact
from connectors.syncing.source_sync import listing_refusals

__all__ = ["router"]

router = new_router()
Item = Annotated[str, Query(min_length=1, max_length=1024, description="The item's identifier, as browse lists it.")]
TAGS: list[str | Any] = ["discovery"]
MAX_REFUSED_SHOWN = 100
LISTINGS_FOLDER = "listings"  # under the state folder: the spill files of listings being loaded
ORPHAN_MARGIN_SECONDS = 60  # a spill file idle this long past the listing deadline is a killed server's


async def shared_listing(state: ApiState, source: DataSourceConfig) -> ListingFile:
    """The source's items, cached for ``cache_seconds`` and loaded once for all concurrent callers.

    Args:
        state: the API's state (its cache and pooled connectors).
        source: the source to list.

    Returns:
        The listing, on disk (:class:`ListingFile`): read it a page or a glob at a time.

    Raises:
        DataSourceError: listing failed.
        TimeoutError: listing took longer than ``timeout_seconds``.
    """
    return await _listing(state, source)


async def _listing(state: ApiState, source: DataSourceConfig) -> ListingFile:
    async def load() -> ListingFile:
        connector = await state.connector(source)
        folder = state.settings.thread_state_dir / LISTINGS_FOLDER
        await asyncio.to_thread(sweep_orphans, folder, state.settings.timeout_seconds + ORPHAN_MARGIN_SECONDS)
        listing = ListingFile(folder)
        try:
            async with _deadline(state):
                await _spill(connector, listing)
            listing.loaded(listing_refusals(connector))
        except BaseException:
            await asyncio.to_thread(listing.close)
            raise
        finally:
            listing.unlink()  # loaded, failed or cancelled: the file's name never outlives the load
        return listing

    return await state.cache.get(source, "list", "", load)


async def _spill(connector: DataSourceConnector, listing: ListingFile) -> None:
    """Stream the connector's items into ``listing``, a batch at a time (written off the event loop)."""
    batch: list[DataItem] = []
    async for item in connector.iter_items():
        batch.append(item)
        if len(batch) >= LISTING_BATCH:
            await asyncio.to_thread(listing.add, batch)
            batch = []
    await asyncio.to_thread(listing.add, batch)


def _deadline(state: ApiState) -> asyncio.Timeout:
    return asyncio.timeout(state.settings.timeout_seconds)


def _cursor(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode("utf-8", "surrogatepass")).decode()


def _after(cursor: str) -> str:
    try:
        return base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        raise ApiError(400, "after: not a cursor this API returned") from None


@router.get("/v1/data-sources/{source_id}/browse", response_model=EntryList, tags=TAGS,
            summary="Browse items folder by folder")
async def browse(source_id: SourceId, state: State, key: ReadKey,
                 path: Annotated[str, Query(max_length=1024, description="Only items under this prefix")] = "",
                 delimiter: Annotated[str, Query(max_length=8, description="Folder separator; empty: flat")] = "/",
                 limit: Limit = 100,
                 after: Annotated[str | None, Query(max_length=2048, description="next_cursor of the last page")]
                 = None) -> Response:
    """One page of a source's items and folders under a prefix; the first page also names refused items."""
    source = load_source(state, source_id)
    listing = await _listing(state, source)
    page, more = await asyncio.to_thread(listing.page, path, delimiter, _after(after) if after else None, limit)
    cursor = _cursor(page[-1]["path"]) if more else None
    # entries are JSON-safe when spilled: sent as they are, not validated again per page
    body: dict[str, Any] = {"object": "list", "has_more": more, "next_cursor": cursor, "data": page}
    if not after:  # said once, on the first page: names under ``path`` the listing refused (never listed)
        refused = [{"path": name, "reason": redact(why)} for name, why in listing.refused if name.startswith(path)]
        body["refused"] = refused[:MAX_REFUSED_SHOWN]
        body["refused_count"] = len(refused)
    return Response(json.dumps(body, separators=(",", ":")).encode(), media_type="application/json")


async def _metadata(state: State, source: DataSourceConfig, item: str) -> tuple[DataSourceConnector, dict[str, Any]]:
    connector = await state.connector(source)

    async def load() -> dict[str, Any]:
        async with _deadline(state):
            return await connector.get_metadata(item)

    return connector, await state.cache.get(source, "metadata", item, load)


@router.get("/v1/data-sources/{source_id}/metadata", response_model=ItemMetadata, tags=TAGS,
            summary="An item's metadata")
async def item_metadata(source_id: SourceId, item: Item, state: State, key: ReadKey) -> dict[str, Any]:
    """What the connector knows of one item (size, version, columns...), cached for a while."""
    _, metadata = await _metadata(state, load_source(state, source_id), item)
    return {"object": "data_source.item_metadata", "source_id": source_id, "item": item,
            "metadata": tables.json_value(metadata)}


@router.get("/v1/data-sources/{source_id}/schema", response_model=TableSchema, tags=TAGS,
            summary="A table's columns, primary key and foreign keys")
async def table_schema(source_id: SourceId, item: Item, state: State, key: ReadKey) -> dict[str, Any]:
    """A table's columns, primary key and foreign keys (PostgreSQL sources only, else 400)."""
    source = load_source(state, source_id)
    connector, metadata = await _metadata(state, source, item)
    _require_table(connector)

    async def load() -> list[dict[str, Any]]:
        async with _deadline(state):
            return await tables.foreign_keys(connector, item)

    keys = await state.cache.get(source, "foreign_keys", item, load)
    return {"object": "data_source.table_schema", "source_id": source_id, "item": metadata.get("path", item),
            "kind": metadata.get("kind", "table"), "columns": metadata.get("columns", []),
            "primary_key": metadata.get("primary_key", []), "foreign_keys": keys}


@router.get("/v1/data-sources/{source_id}/relationships", response_model=Relationships, tags=TAGS,
            summary="Foreign keys between the tables of the source")
async def relationships(source_id: SourceId, state: State, key: ReadKey, limit: Limit = 100,
                        after: Annotated[str | None, Query(max_length=64, description="next_cursor of the last page")]
                        = None) -> dict[str, Any]:
    """One page of the foreign keys between the tables of the source's schemas (PostgreSQL only)."""
    source = load_source(state, source_id)
    connector = await state.connector(source)
    _require_table(connector)

    async def load() -> list[dict[str, Any]]:
        async with _deadline(state):
            return await tables.foreign_keys(connector, None)

    keys = await state.cache.get(source, "foreign_keys", "", load)
    start = _offset(after) if after else 0
    more = start + limit < len(keys)
    return {"object": "list", "data": keys[start : start + limit], "has_more": more,
            "next_cursor": _cursor(str(start + limit)) if more else None}


def _offset(cursor: str) -> int:
    text = _after(cursor)
    if not text.isdigit():
        raise ApiError(400, "after: not a cursor this API returned")
    return int(text)


def _require_table(connector: DataSourceConnector) -> None:
    if not tables.is_table_source(connector):
        raise ApiError(400, "schemas, relationships and statistics exist for tables (postgresql sources) only")


@router.get("/v1/data-sources/{source_id}/preview", response_model=Preview, tags=TAGS,
            summary="The first rows of a table or of a CSV/TSV/Parquet item")
async def preview(source_id: SourceId, item: Item, request: Request, state: State, key: ReadKey,
                  limit: Annotated[int | None, Query(ge=1, description=(
                      "Rows (by default the server's `preview_rows`, 10; capped by the server)"))] = None
                  ) -> dict[str, Any]:
    """The first rows of a table, or of a CSV, TSV or Parquet item; 413 over the row, byte or size caps."""
    if limit is None:  # the operator's default, never over the operator's cap
        limit = min(state.settings.preview_rows, state.settings.preview_max_rows)
    if limit > state.settings.preview_max_rows:
        raise ApiError(413, f"limit {limit} is over the preview cap of {state.settings.preview_max_rows} rows")
    source = load_source(state, source_id)
    connector, metadata = await _metadata(state, source, item)
    async with _deadline(state):
        if tables.is_table_source(connector):
            try:
                names, rows = await tables.preview_table(connector, item, limit, state.settings.preview_max_bytes)
            except tables.PreviewTooLargeError as exc:
                raise ApiError(413, exc.message) from None
            types = {c["name"]: c["type"] for c in metadata.get("columns", [])}
            columns = [{"name": n, "type": str(types.get(n, ""))} for n in names]
        else:
            _check_size(state, source, item, metadata)
            try:
                columns, rows = await tables.preview_file(connector, item, limit)
            except ConfigurationError as exc:
                raise ApiError(400, exc.message) from None
    _check_answer_size(state, item, rows)
    return {"object": "data_source.preview", "source_id": source_id, "item": item, "columns": columns,
            "rows": rows, "limit": limit}


def _check_answer_size(state: State, item: str, rows: list[list[Any]]) -> None:
    """A preview answer is capped in bytes as well as rows (``DA_API_PREVIEW_MAX_BYTES``)."""
    size = len(json.dumps(rows, default=str))
    if size > state.settings.preview_max_bytes:
        raise ApiError(413, f"the preview of {item!r} is {size} bytes, over the cap of "
                       f"{state.settings.preview_max_bytes} bytes; ask for fewer rows")


def _check_size(state: State, source: DataSourceConfig, item: str, metadata: dict[str, Any]) -> None:
    limit = state.settings.item_limit(source.metadata)
    size = metadata.get("size")
    if isinstance(size, int) and size > limit:
        raise ApiError(413, f"item {item!r} is {size} bytes, over the limit of {limit} bytes of source {source.id!r}")


@router.get("/v1/data-sources/{source_id}/stats", response_model=Stats, tags=TAGS,
            summary="Numeric column statistics of a table, computed by the database")
async def stats(source_id: SourceId, item: Item, state: State, key: ReadKey) -> dict[str, Any]:
    """Row count and per numeric column count, NaN count, min, max and mean, computed by the database."""
    source = load_source(state, source_id)
    connector, metadata = await _metadata(state, source, item)
    _require_table(connector)
    async with _deadline(state):
        row_count, columns = await tables.table_stats(connector, item, metadata.get("columns", []))
    return {"object": "data_source.stats", "source_id": source_id, "item": metadata.get("path", item),
            "row_count": row_count, "columns": columns}
