"""Data into a DeepAnalyze conversation: references fetched into a thread's folder, at its top level.

DeepAnalyze's agent sees only the files at the top level of ``<base>/<thread_id>/`` (listed into its
prompt before each turn), so :func:`attach_to_thread` lands every referenced item there, under a
readable name that never collides with a file already there or with another reference's. The
thread's folder holds only that data: the item's lineage record (which says which source and item a
name holds), the staging and the lock live in da-sources' state folder (:mod:`.records`,
``DA_STATE_DIR``). Re-attaching an item at the same version answers the file already there; a newer
version replaces only our own unmodified copy (:mod:`.placing`). The thread's folder must exist
(``create=True`` makes it).

All or nothing: the references are fetched in parallel into a staging folder in the state folder;
only when every one landed are they moved to the top level (each by a no-clobber link, or a copy
across file systems), and if anything fails, nothing of this call is left: the staging folder is
removed and what was already moved is taken back. Call it before the turn's workspace snapshot, so
the files are not mistaken for the agent's output.

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
