"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served from the installed package: no CDN, no internet.

FastAPI's own pages load their scripts from a CDN, so they are blank on a machine
without internet. Swagger UI's files come from the ``swagger-ui-bundle`` package
(the ``api`` extra), ReDoc's from ``connectors/api/static/redoc/`` (vendored).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["add_docs"]

REDOC_DIR = Path(__file__).resolve().parent / "static" / "redoc"
_SWAGGER = "/docs/static"
_REDOC = "/redoc/static"


def add_docs(app: FastAPI) -> None:
    """Add ``/docs`` and ``/redoc`` to ``app``, their scripts and styles served from the installed package.

    Args:
        app: an app made with ``docs_url=None, redoc_url=None`` (FastAPI's own pages would load a CDN).
    """
    import swagger_ui_bundle  # type: ignore[import-untyped]

    app.mount(_SWAGGER, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")
    app.mount(_REDOC, StaticFiles(directory=REDOC_DIR), name="redoc")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi, title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
                                   swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{_REDOC}/redoc.standalone.js",
                              redoc_favicon_url=f"{_SWAGGER}/favicon-32x32.png", with_google_fonts=False)
