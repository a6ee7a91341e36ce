"""``POST /v1/data-sources/{id}/upload``: files of a thread's ``generated/`` folder back to blob storage.

Each file goes through :func:`connectors.threads.publish_generated`: staged blocks, one commit, no
overwrite unless asked (409 when the name is taken, or when the file changed while it uploaded:
nothing is committed then), metadata naming the thread and the inputs'
lineage, a local record of what was published where. A source that cannot upload answers 400.
Uploading changes the company's storage, so it needs a key made without ``--read-only``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from connectors.api.audit import items_fields
from connectors.api.errors import ApiError
from connectors.api.routing import ManageKey, State, new_router, note_audit
from connectors.api.sources import SourceId, load_source
from connectors.azure_blob.upload import BlobExistsError, FileChangedError
from connectors.base import DataSourceConnector
from connectors.threads import MAX_THREAD_ID_LENGTH, publish_generated

__all__ = ["router"]

router = new_router()
TAGS: list[Any] = ["threads"]


class UploadRequest(BaseModel):
    """Which generated files of which thread, and where they go."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"thread_id": "thread-3f9d2a1e", "files": ["chart.png", "summary.csv"], "prefix": "results/"}]})
    thread_id: str = Field(min_length=1, max_length=MAX_THREAD_ID_LENGTH, description="The thread whose files go.")
    files: list[str] = Field(min_length=1, max_length=100, description="Names under the thread's generated/ folder.")
    prefix: str | None = Field(None, max_length=900,
                               description="Blob names are <prefix><file>; default '<thread_id>/'.")
    overwrite: bool = Field(False, description="Replace blobs of the same name (refused with 409 otherwise).")


class UploadList(BaseModel):
    """The blobs written, one per file."""

    object: str = "list"
    data: list[dict[str, Any]] = Field(description="Per file: blob name, uri, etag, size, md5, sha256, metadata.")


@router.post("/v1/data-sources/{source_id}/upload", response_model=UploadList, tags=TAGS,
             summary="Upload files of a thread's generated/ folder to the source (blob storage)")
async def upload(source_id: SourceId, body: UploadRequest, request: Request, state: State,
                 key: ManageKey) -> dict[str, Any]:
    """Upload files of a thread's generated/ folder as blobs; 409 when a name is taken or a file changed."""
    source = load_source(state, source_id)
    base = state.settings.workspace_base
    prefix = body.prefix if body.prefix is not None else f"{body.thread_id}/"

    async def connector_for(_: str) -> DataSourceConnector:
        return await state.connector(source)

    names = list(dict.fromkeys(body.files))
    note_audit(request, thread_id=body.thread_id, prefix=prefix, overwrite=body.overwrite, **items_fields(names))
    results = await asyncio.gather(
        *(publish_generated(connector_for, base, body.thread_id, source_id, name, prefix + name, body.overwrite,
                            state_dir=state.settings.thread_state_dir) for name in names),
        return_exceptions=True)  # each file is complete or absent: no half is undone
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if isinstance(failed, BlobExistsError | FileChangedError):  # a conflict with another writer
        raise ApiError(409, str(failed))
    if failed is not None:
        raise failed
    return {"object": "list", "data": results}
