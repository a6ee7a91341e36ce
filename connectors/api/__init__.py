"""The HTTP API: DeepAnalyze's ``/v1/data-sources`` routes over the connector library (extra ``api``).

``connectors.api.router`` is a FastAPI ``APIRouter`` for an existing app; :func:`create_app` builds a
standalone app (``da-sources serve``). FastAPI is imported only when one of them is first used, so
the CLI works without the extra. The modules and their parts: ``docs/design/api.md``.

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
