"""Results back to storage: a thread's generated file uploaded with its thread and inputs' lineage, and recorded."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from connectors.errors import NotFoundError
from connectors.landing.dirs import open_directory, open_regular_file
from connectors.landing.lineage import utc_now_iso
from connectors.landing.names import safe_relative_path
from connectors.landing.root import workspace_root
from connectors.publishing import upload_facts, uploader_of
from connectors.registry import SourceRegistry
from connectors.threads.folders import GENERATED_DIR, ConnectorFor, thread_folder
from connectors.threads.records import ThreadRecords, default_state_dir

MAX_INPUTS_METADATA = 6 * 1024  # of the service's 8 KiB of metadata, what the inputs may take


async def publish_generated(
    sources: SourceRegistry | ConnectorFor,
    base_dir: str | os.PathLike[str],
    thread_id: str,
    source_id: str,
    file_name: str,
    blob_name: str | None = None,
    overwrite: bool = False,
    *,
    state_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Upload ``<base_dir>/<thread_id>/generated/<file_name>`` to source ``source_id``; the record of it.

    The blob (default name ``<thread_id>/<file_name>``) carries metadata naming the thread, the file
    and the lineage of the thread's attached inputs; the record (also appended to the thread's
    ``published.jsonl`` in the state folder, ``state_dir``: see :mod:`connectors.threads.records`)
    says what was published where.

    Args:
        sources: A registry, or a function from source id to a connected connector (the API's pool).
        base_dir: DeepAnalyze's workspace folder.
        thread_id: The thread (hostile input: checked).
        source_id: The source to upload to.
        file_name: The file's path under the thread's ``generated/`` folder (hostile input: checked).
        blob_name: The name at the source; None for ``<thread_id>/<file_name>``.
        overwrite: Replace an existing blob of that name rather than fail.
        state_dir: The state folder; None for the registry's default.

    Returns:
        The record of the upload: when, what, where, the source's version of it and the metadata sent.

    Raises:
        UploadNotSupportedError: the source cannot upload.
        NotFoundError: no such generated file. Others as the connector's ``upload`` raises.
    """
    connector_for = sources.connector if isinstance(sources, SourceRegistry) else sources
    folder = thread_folder(base_dir, thread_id)
    if state_dir is None and isinstance(sources, SourceRegistry):
        state_dir = default_state_dir(sources.path)  # beside the registry's own sources file
    records = ThreadRecords.of(base_dir, thread_id, state_dir)
    relative = safe_relative_path(file_name)
    # the blob name as a whole: no separator, backslash or '..' segment (a prefix 'data/..\\x\\' is refused)
    target = safe_relative_path(blob_name or f"{thread_id}/{relative}")
    upload = uploader_of(await connector_for(source_id))
    with workspace_root(folder.parent):
        fd = await asyncio.to_thread(_open_generated, folder, relative)
        try:
            metadata = {"da_thread": thread_id, "da_file": quote(relative),
                        **_inputs_metadata(await asyncio.to_thread(records.attached))}
            uploaded = await upload(fd, target, overwrite=overwrite, metadata=metadata)
        finally:
            os.close(fd)
        record = {"published_at": utc_now_iso(), "thread_id": thread_id, "file": f"{GENERATED_DIR}/{relative}",
                  "local_path": str(folder / GENERATED_DIR / relative), "source_id": source_id,
                  "overwrite": overwrite, **upload_facts(uploaded), "metadata": metadata}
        await asyncio.to_thread(records.append_published, record)
    return record


def _open_generated(folder: Path, relative: str) -> int:
    parts = relative.split("/")
    try:
        dir_fd = open_directory(folder.parent, [folder.name, GENERATED_DIR, *parts[:-1]], create=False)
    except FileNotFoundError:
        raise NotFoundError(f"no generated file {relative!r} in thread {folder.name!r} "
                            f"(searched {str(folder / GENERATED_DIR)!r})") from None
    try:
        fd = open_regular_file(dir_fd, parts[-1])
    finally:
        os.close(dir_fd)
    if fd is None:
        raise NotFoundError(f"no generated file {relative!r} in thread {folder.name!r} (searched "
                            f"{str(folder / GENERATED_DIR)!r}; it is not a regular file: a link or a folder "
                            "is never uploaded)")
    return fd


def _inputs_metadata(records: list[dict[str, Any]]) -> dict[str, str]:
    """``da_inputs``: compact JSON of each input's name, source, item, version and sha256, bounded."""
    inputs = [{"name": r.get("attached_as"), "source_id": r.get("source_id"), "item": r.get("identifier"),
               "version": r.get("source_version"), "sha256": r.get("sha256")} for r in records]
    while inputs:
        text = json.dumps(inputs, separators=(",", ":"), ensure_ascii=True, default=str)
        if len(text) <= MAX_INPUTS_METADATA:
            extra = {"da_inputs_total": str(len(records))} if len(inputs) < len(records) else {}
            return {"da_inputs": text, **extra}
        inputs.pop()
    return {"da_inputs_total": str(len(records))} if records else {}


def published_records(base_dir: str | os.PathLike[str], thread_id: str,
                      state_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """What was published from the thread, oldest first.

    Args:
        base_dir: DeepAnalyze's workspace folder.
        thread_id: The thread (hostile input: checked).
        state_dir: The state folder; None for :func:`~connectors.threads.records.default_state_dir`.

    Returns:
        The records :func:`publish_generated` wrote, oldest first.
    """
    return ThreadRecords.of(base_dir, thread_id, state_dir).published()
