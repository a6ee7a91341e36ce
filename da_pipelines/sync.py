"""Syncing a source into its workspace folder, for the Dagster layer.

The logic is Dagster-free and lives in :mod:`connectors.syncing.source_sync`, so that
``da-sources fetch --all`` and the ``N_sync`` job decide alike which items to
land, repair, skip, report as removed and prune; this module names it for
``da_pipelines``.
"""

from connectors.syncing.source_sync import (
    CHUNK,
    ItemRequest,
    LineageIndex,
    SyncOptions,
    SyncReport,
    fetch_one,
    list_requests,
    needs_fetch,
    sync_options,
    sync_source,
)

__all__ = [
    "CHUNK",
    "ItemRequest",
    "LineageIndex",
    "SyncOptions",
    "SyncReport",
    "fetch_one",
    "list_requests",
    "needs_fetch",
    "sync_options",
    "sync_source",
]
