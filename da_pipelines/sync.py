"""Deprecated: syncing a source lives in :mod:`connectors.syncing.source_sync` (no Dagster there).

Importing these names from here still works for one release, with a ``DeprecationWarning``.
"""

from connectors.deprecation import moved_names

_MOVED = ["CHUNK", "ItemRequest", "LineageIndex", "SyncOptions", "SyncReport", "fetch_one", "list_requests",
           "needs_fetch", "sync_options", "sync_source"]
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED, "connectors.syncing.source_sync"))
