"""Data into a DeepAnalyze conversation: references fetched into a thread's folder, at its top level.

:func:`attach_to_thread` lands every referenced item at the top level of ``<base>/<thread_id>/``
(the only files the agent sees) under names that never collide, all or nothing; its records,
staging and lock live in the state folder, not the thread's. Why: ``docs/design/threads.md``.

Example:
    >>> async with SourceRegistry("sources.yaml") as registry:
    ...     attachment = await attach_to_thread(registry, "workspace", "thread-1a2b", [
    ...         {"source_id": "lake", "glob": "exports/2026-*.csv"},
    ...         {"source_id": "warehouse", "table": "public.customers"},
    ...         {"source_id": "warehouse", "query": "select * from orders where total > 100", "name": "big_orders"},
    ...     ])
    >>> prompt += attachment.manifest()
"""

from connectors.publishing import UploadNotSupportedError, uploader_of
from connectors.threads.attach import (
    MAX_REFERENCES,
    AttachedFile,
    Attachment,
    ItemTooLargeError,
    Reference,
    attach_to_thread,
    attached_files,
    folded,
    name_candidates,
    parse_references,
)
from connectors.threads.ending import ThreadEndedError, ThreadJanitor, end_thread
from connectors.threads.folders import (
    GENERATED_DIR,
    MAX_THREAD_ID_LENGTH,
    STAGING_PREFIX,
    ConnectorFor,
    UnknownThreadError,
    check_thread_id,
    thread_folder,
)
from connectors.threads.records import STATE_DIR_ENV, ThreadRecords, default_state_dir, sweep_ended_threads
from connectors.threads.results import publish_generated, published_records

__all__ = [
    "GENERATED_DIR", "MAX_REFERENCES", "MAX_THREAD_ID_LENGTH", "STAGING_PREFIX", "AttachedFile", "Attachment",
    "STATE_DIR_ENV", "ConnectorFor", "ItemTooLargeError", "Reference", "ThreadEndedError", "ThreadJanitor",
    "ThreadRecords", "UnknownThreadError", "UploadNotSupportedError", "attach_to_thread", "attached_files",
    "check_thread_id", "default_state_dir", "end_thread", "folded", "name_candidates", "parse_references",
    "publish_generated", "published_records", "sweep_ended_threads", "thread_folder", "uploader_of",
]
