"""``POST /v1/threads/{thread_id}/data``: attach data to a DeepAnalyze conversation, all or nothing.

The references are fetched in parallel to the top level of ``<workspace base>/<thread_id>/`` (where
DeepAnalyze's prompt builder looks) by :func:`connectors.threads.attach_to_thread`; the answer
holds each file with its lineage facts and a short manifest for the prompt. When the thread's folder
is removed meanwhile (the thread expired), the fetches are cancelled and the answer is a 409. A
thread whose folder does not exist is refused with 404 unless the request says ``"create": true``.
Our records of the thread live in the state folder (:mod:`connectors.threads.records`), never in
the thread's folder; ``GET`` answers what is attached now, from them.
A table or query may be cut (``columns``, ``where``, ``limit``, ``sample``); one over the operator's
thread budget (``DA_API_THREAD_MAX_ROWS`` / ``DA_API_THREAD_MAX_BYTES``) is a 413 naming the budget and
those options. Each file comes with its profile.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Path, Request
from pydantic import BaseModel, ConfigDict, Field

from connectors.api.audit import items_fields
from connectors.api.discovery import shared_listing
from connectors.api.errors import ApiError
from connectors.api.routing import ReadKey, State, ThreadKey, check_sources, new_router, note_audit
from connectors.api.sources import load_source
from connectors.base import DataSourceConnector
from connectors.errors import SizeLimitError
from connectors.rows import BudgetExceededError
from connectors.threads import (
    MAX_REFERENCES,
    MAX_THREAD_ID_LENGTH,
    Attachment,
    ItemTooLargeError,
    Reference,
    ThreadEndedError,
    attach_to_thread,
    attached_files,
)
from connectors.threads.attach import listings_from

__all__ = ["router"]

router = new_router()
TAGS: list[Any] = ["threads"]
ThreadId = Annotated[str, Path(description="DeepAnalyze's thread id: its folder under the workspace base.",
                               max_length=MAX_THREAD_ID_LENGTH)]


References = Annotated[list[Reference], Field(min_length=1, max_length=MAX_REFERENCES)]


class AttachRequest(BaseModel):
    """The references to attach (also accepted as a bare list): by path, glob, table, or a named query."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"references": [
        {"source_id": "lake", "glob": "exports/2026-*.csv"},
        {"source_id": "warehouse", "table": "public.customers"},
        {"source_id": "warehouse", "table": "public.orders", "columns": ["id", "total"], "where": "status = %s",
         "params": ["paid"], "sample": 0.1, "seed": 7, "limit": 100000},
        {"source_id": "warehouse", "query": "select * from orders where total > 100", "name": "big_orders"}]}]})
    references: References = Field(description="What to attach.")
    create: bool = Field(False, description="Create the thread's folder when it does not exist (else 404).")


class AttachedFileView(BaseModel):
    """A file attached to the thread: where it came from, its version, size and profile."""

    name: str = Field(description="The file's name at the top level of the thread's folder.")
    source_id: str
    item: str = Field(description="The item, table or query it holds.")
    version: str | None
    size: int
    row_count: int | None
    profile: dict[str, Any] | None = Field(None, description="Rows and, per column, types, nulls, min/max, "
                                           "distinct count, examples (none from sensitive columns).")
    options: dict[str, Any] | None = Field(None, description="How it was cut: columns, where, limit, sample, seed.")
    status: str = Field("attached", description="'attached' (a new file), 'unchanged' (already there at this "
                        "version: not copied again), 'replaced' (our unmodified earlier copy, newer version).")
    wanted: str | None = Field(None, description="The file's own name, when another file has it (then `name` is "
                               "the unique name it got instead).")
    parts: int | None = Field(None, description="A folder of this many Parquet parts read as one table (a large "
                              "table or result); null for one file.")


class AttachResponse(BaseModel):
    """What is attached to the thread, with the manifest for the prompt."""

    object: str = "thread.data"
    thread_id: str
    data: list[AttachedFileView]
    manifest: str = Field(description="A short text for the prompt: each file, where it came from, how big.")


def _named(reference: Reference) -> str:
    """A reference in an audit line: ``source:path``, ``source:glob``, ``source:table`` or a query's digest."""
    if reference.query is not None:
        digest = hashlib.sha256(reference.query.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"{reference.source_id}:query:{reference.name or ''}:sha256={digest}"
    what = reference.path or reference.glob or reference.table or ""
    return f"{reference.source_id}:{what}"


@router.post("/v1/threads/{thread_id}/data", response_model=AttachResponse, tags=TAGS,
             summary="Fetch data into a thread's folder (top level), all or nothing, before the turn starts")
async def attach(thread_id: ThreadId, body: AttachRequest | References, request: Request, state: State,
                 key: ThreadKey) -> dict[str, Any]:
    """Land the references at the top level of the thread's folder, all or nothing; each file with its lineage."""
    references = body.references if isinstance(body, AttachRequest) else body
    request.state.source_id = ",".join(sorted({r.source_id for r in references}))[:200]
    check_sources(key, {r.source_id for r in references})
    note_audit(request, **items_fields([_named(r) for r in references]))

    async def connector_for(source_id: str) -> DataSourceConnector:
        return await state.connector(load_source(state, source_id))

    def limit(connector: DataSourceConnector) -> int:
        return state.settings.item_limit(connector.config.metadata)

    create = body.create if isinstance(body, AttachRequest) else False
    if create and key.thread_id is not None:  # a token outlives its thread's folder: it never brings one back
        raise ApiError(403, f"thread token {key.id} may not create a thread's folder")

    async def listing(connector: DataSourceConnector, pattern: str) -> AsyncIterator[tuple[str, int | None]]:
        shared = await shared_listing(state, connector.config)  # one load for every glob waiting on it
        batches = shared.matching(pattern)
        while batch := await asyncio.to_thread(next, batches, None):
            for found in batch:
                yield found

    try:
        with listings_from(listing):
            attachment = await attach_to_thread(connector_for, state.settings.workspace_base, thread_id,
                                                references, max_item_bytes=limit, create=create,
                                                state_dir=state.settings.thread_state_dir,
                                                budget=state.settings.thread_budget())
    except (ItemTooLargeError, SizeLimitError, BudgetExceededError) as exc:
        raise ApiError(413, f"{exc}; nothing was attached") from None
    except ThreadEndedError as exc:  # DeepAnalyze removed the thread meanwhile: not a fault of this server
        raise ApiError(409, str(exc)) from None
    return _answer(attachment)


@router.get("/v1/threads/{thread_id}/data", response_model=AttachResponse, tags=TAGS,
            summary="What is attached to the thread now, from our records, with its manifest")
async def attached(thread_id: ThreadId, state: State, key: ReadKey) -> dict[str, Any]:
    """What is attached to the thread now, from our records, with the manifest for the prompt."""
    settings = state.settings
    return _answer(await asyncio.to_thread(attached_files, settings.workspace_base, thread_id,
                                           settings.thread_state_dir))


def _answer(attachment: Attachment) -> dict[str, Any]:
    return {"object": "thread.data", "thread_id": attachment.thread_id, "manifest": attachment.manifest(),
            "data": [file.__dict__ for file in attachment.files]}
