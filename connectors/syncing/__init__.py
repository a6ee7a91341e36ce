"""Deciding what to land, without Dagster: the planning under the CLI sync and the Dagster layer.

* :mod:`~connectors.syncing.source_sync`: which items of a source to land, repair, skip or prune;
* :mod:`~connectors.syncing.cursor`: the sensor's decision (which items are new since a cursor);
* :mod:`~connectors.syncing.dataset_manifest`: what a landed dataset holds;
* :mod:`~connectors.syncing.dataset_store`: a dataset sync's prior and new entries, on disk (memory flat);
* :mod:`~connectors.syncing.table_listing`: the kept listing of a table source;
* :mod:`~connectors.syncing.progress_log`: progress lines of long fetches;
* :mod:`~connectors.syncing.aio`: running a coroutine from synchronous code.

Nothing here imports Dagster.
"""
