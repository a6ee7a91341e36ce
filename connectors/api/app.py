"""``router`` (for an existing FastAPI app) and :func:`create_app` (standalone, what ``da-sources serve`` runs).

Example:
    >>> app = FastAPI()               # DeepAnalyze's create_app()
    >>> app.include_router(router)    # every /v1/data-sources route, behind API keys
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from connectors.api import discovery, fetching, sources, threads, tokens, upload
from connectors.api.api_settings import ApiSettings
from connectors.api.app_state import ApiState, close_default_state, own_state, start_default_state
from connectors.api.docs import add_docs
from connectors.api.fast_reads import FastReadsApp
from connectors.api.schemas import Health

__all__ = ["create_app", "router"]

DESCRIPTION = """Data sources for DeepAnalyze: manage Azure Blob, PostgreSQL and local-file sources, browse and
preview their items, and fetch them into a workspace with lineage. Every route but `/health` needs
`Authorization: Bearer <key>` (make one with `da-sources api-keys create NAME`); read-only keys browse,
preview and fetch, other keys also create, update and delete sources. Errors are `{"detail": ...}`."""


@asynccontextmanager
async def _router_lifespan(app: Any) -> AsyncIterator[None]:
    # an app that includes the router (DeepAnalyze's) gets the environment's state, janitor running,
    # from its startup to its shutdown; create_app's own lifespan runs the state it made
    if own_state(app) is None:
        start_default_state()
    try:
        yield
    finally:
        await close_default_state()


def _build_router() -> APIRouter:
    router = APIRouter(lifespan=_router_lifespan)
    for part in (sources.router, discovery.router, fetching.router):
        router.include_router(part)
    router.include_router(threads.router)
    router.include_router(upload.router)
    router.include_router(tokens.router)
    return router


router = _build_router()


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """A standalone app: ``/health`` (no key), ``/docs`` and ``/redoc``, and the router, with its own state.

    Args:
        settings: paths and limits; None reads them from the environment (:meth:`ApiSettings.from_env`).

    Returns:
        The FastAPI app, CORS enabled only for ``settings.cors_origins``.
    """
    state = ApiState(settings or ApiSettings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await state.aclose()

    # FastAPI with the two plain source reads answered before its routing, by the routes' own functions
    app = FastReadsApp(title="da-sources", version="1", description=DESCRIPTION, lifespan=lifespan,
                       docs_url=None, redoc_url=None)
    add_docs(app)  # the same pages, their scripts from the installed package rather than a CDN
    app.state.da_sources = state

    @app.get("/health", response_model=Health, tags=["health"], summary="Liveness; needs no key")
    async def health() -> dict[str, Any]:
        return {"status": "healthy", "timestamp": int(time.time())}

    app.include_router(router)
    if state.settings.cors_origins:  # none by default: a browser page on another origin gets no answer
        app.add_middleware(CORSMiddleware, allow_origins=list(state.settings.cors_origins),
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["X-Request-ID"])
    return app
