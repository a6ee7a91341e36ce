"""``POST /v1/threads/{thread_id}/tokens``: a thread token for the agent's code, minted by DeepAnalyze's side.

The token (see :mod:`connectors.api.api_keys`) is read-only, good for one thread and the listed sources,
and expires after ``ttl_seconds``: with it the agent's code may attach more data to its own thread
(``POST /v1/threads/{thread_id}/data``) and do nothing else (403 elsewhere, 401 once expired).
Minting needs a key made with ``--can-mint``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Path, Request
from pydantic import BaseModel, ConfigDict, Field

from connectors.api.api_keys import MAX_TOKEN_TTL_SECONDS
from connectors.api.routing import MintKey, State, new_router
from connectors.api.sources import load_source
from connectors.threads import MAX_THREAD_ID_LENGTH, check_thread_id

__all__ = ["router"]

router = new_router()
ThreadId = Annotated[str, Path(description="The thread the token is for.", max_length=MAX_THREAD_ID_LENGTH)]


class TokenRequest(BaseModel):
    """Which sources the token may attach from, and for how long."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sources": ["lake"],
                                                                               "ttl_seconds": 900}]})
    sources: list[str] = Field(min_length=1, max_length=50, description="Source ids the token may read.")
    ttl_seconds: int = Field(900, ge=1, le=MAX_TOKEN_TTL_SECONDS, description="Seconds until it expires.")


class ThreadToken(BaseModel):
    """A minted thread token: the token itself is in this answer only."""

    object: str = "thread.token"
    id: str
    token: str = Field(description="Shown once; stored only hashed.")
    thread_id: str
    sources: list[str]
    expires_at: int


@router.post("/v1/threads/{thread_id}/tokens", response_model=ThreadToken, tags=["threads"],
             summary="Mint a read-only token that attaches the listed sources' data to this thread only")
async def mint(thread_id: ThreadId, body: TokenRequest, request: Request, state: State, key: MintKey) -> dict[str, Any]:
    """Mint a thread token for this thread and the listed sources (404 for an unknown source)."""
    check_thread_id(thread_id)
    for source_id in body.sources:
        load_source(state, source_id)  # 404 for a source that does not exist
    record, token = await asyncio.to_thread(state.keys.mint_thread_token, key, thread_id, body.sources,
                                            body.ttl_seconds)
    return {"object": "thread.token", "id": record.id, "token": token, "thread_id": thread_id,
            "sources": record.sources, "expires_at": record.expires_at}
