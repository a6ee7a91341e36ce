"""The two most called routes answered before FastAPI routes them: ``GET /v1/data-sources/{id}`` and the list.

Profiled under 50 clients, a source read spent about two thirds of its server time in FastAPI's per-request
machinery around an answer that is cached bytes: matching the path through the included routers, solving the
dependencies, the route wrapper, the middleware stack (docs/api.md, "Serving under load"). :class:`FastReadsApp`
is the standalone app (:func:`connectors.api.create_app`) with a short way in front for exactly these two
requests, when they are plain: ``GET`` with no query string, no body, no ``Origin`` (CORS answers stay the
middleware's), one ``Authorization: Bearer`` header, and no OpenTelemetry tracing or metrics configured
(FastAPI's own telemetry then sees every request).

It makes no decision of its own. It calls what the routes call: :meth:`KeyStore.authenticate`, then
:func:`~connectors.api.routing.valid_key` and :func:`~connectors.api.routing.no_thread_token` (what a
``ReadKey`` route takes), then :func:`~connectors.api.sources.source_answer` or
:func:`~connectors.api.sources.list_answer` (the id checked, the answer the response model serialized, cached
until the sources file changes), and asks the route itself whether a successful read is audited
(:meth:`~connectors.api.routing.ApiRoute.audited`: it is not; if that changes, the short way closes). Anything
else, any refusal (no key, a wrong or revoked key, an expired or thread token, a bad or unknown id) and any
error go to FastAPI, which answers, and audits, as it always did: the short way only ever answers 200.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from connectors.api import sources
from connectors.api.app_state import ApiState, own_state
from connectors.api.routing import ApiRoute, new_request_id, no_thread_token, valid_key

__all__ = ["FastReadsApp"]

LIST_PATH = "/v1/data-sources"
ONE_PREFIX = LIST_PATH + "/"
# a header the short way leaves to FastAPI: a body (GET has none), a browser's origin (CORS)
_UNUSUAL = frozenset((b"content-length", b"transfer-encoding", b"origin"))


class FastReadsApp(FastAPI):
    """FastAPI, with the two plain source reads answered without its routing (see the module docstring)."""

    fast_reads = True  # False: every request goes through FastAPI (the tests compare both ways)
    _routes_checked: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a plain source read from its cached bytes, else hand the request to FastAPI.

        Args:
            scope: the ASGI scope.
            receive: the ASGI receive channel.
            send: the ASGI send channel.
        """
        if scope["type"] == "http" and self.fast_reads and not self.root_path:
            answer = self._answer(scope)
            if answer is not None:
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", str(len(answer)).encode()), (b"content-type", b"application/json"),
                    (b"x-request-id", new_request_id().encode())]})
                await send({"type": "http.response.body", "body": answer})
                return
        await super().__call__(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        """The answer's bytes when the short way may give it, else None (FastAPI answers)."""
        if scope["method"] != "GET" or scope.get("root_path") or not self._routes_unaudited() or self._traced():
            return None
        path, query = scope["path"], scope["query_string"]
        if path != LIST_PATH and not (path.startswith(ONE_PREFIX) and not query):
            return None
        presented = _bearer(scope["headers"])
        state = own_state(self)
        if presented is None or state is None:
            return None
        try:  # no await from here to the answer: the sources read and the cached answer are one step
            no_thread_token(valid_key(state.keys.authenticate(presented)))
            return _read(state, path, query)
        except Exception:  # noqa: BLE001 - any refusal or error: FastAPI answers it, and audits it, as always
            return None

    def _traced(self) -> bool:
        """Whether FastAPI's OpenTelemetry tracing or metrics are on (then every request goes through FastAPI)."""
        telemetry = getattr(self, "_native_telemetry", None)
        return telemetry is not None and bool(telemetry.enabled())

    def _routes_unaudited(self) -> bool:
        """Whether both routes exist as :mod:`connectors.api.sources` declares them and audit no successful GET."""
        if self._routes_checked is None:
            wanted = {LIST_PATH: sources.list_sources, ONE_PREFIX + "{source_id}": sources.get_source}
            found = [r for r in sources.router.routes if isinstance(r, ApiRoute) and wanted.get(r.path) is r.endpoint
                     and "GET" in (r.methods or ())]
            self._routes_checked = len(found) == len(wanted) and not any(r.audited("GET", 200) for r in found)
        return self._routes_checked


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of the one ``Authorization: Bearer`` header, as the routes read it; None when unusual."""
    found: str | None = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                return None
            scheme, _, presented = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                return None
            found = presented.strip()
        elif name in _UNUSUAL:
            return None
    return found


def _read(state: ApiState, path: str, query: Any) -> bytes | None:
    if path == LIST_PATH:
        return None if query else sources.list_answer(state)
    source_id = path[len(ONE_PREFIX):]
    return None if "/" in source_id else sources.source_answer(state, source_id)
