"""The HTTP API: DeepAnalyze's ``/v1/data-sources`` routes over the connector library (extra ``api``).

``connectors.api.router`` is a FastAPI ``APIRouter`` for an existing app
(``app.include_router(router)``); :func:`create_app` builds a standalone app,
which ``da-sources serve`` runs with uvicorn. FastAPI is imported only when one
of those two names is first used, so :mod:`.keys`, :mod:`.settings` and
:mod:`.audit` (which the CLI uses) work without the extra installed.

Modules: :mod:`.settings` (limits and paths), :mod:`.keys` (API keys),
:mod:`.audit` (the audit log), :mod:`.state` (what the routes share: pooled
connectors, the metadata cache, jobs), :mod:`.routing` (authentication, errors
and audit around every route), :mod:`.schemas` (request and response models),
:mod:`.sources` (management), :mod:`.discovery` and :mod:`.tables` (browsing,
schemas, previews, statistics), :mod:`.jobs` and :mod:`.fetching` (background
fetches, lineage), :mod:`.app` (the router and the app), :mod:`.server` (uvicorn).

Example:
    >>> from fastapi import FastAPI
    >>> from connectors.api import router
    >>> app = FastAPI()
    >>> app.include_router(router)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

    from connectors.api.app import create_app

    router: APIRouter

__all__ = ["create_app", "router"]


def __getattr__(name: str) -> Any:
    # lazy: `import connectors.api.api_keys` must not need FastAPI
    if name in __all__:
        from connectors.api import app

        return getattr(app, name)
    raise AttributeError(f"module 'connectors.api' has no attribute {name!r}")
