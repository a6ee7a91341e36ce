"""Around every route: request id, authentication, errors as ``{"detail": ...}``, and the audit log.

This lives in the routes themselves (a route class and dependencies), not in
app middleware, so it holds when DeepAnalyze includes the router in its own app.

Bounded before authentication: a route that needs a key checks the
``Authorization`` header before its body is read (a malformed unauthenticated
body gets 401, not 422), and every body is capped at ``max_body_bytes``,
counted while it is read: a ``Content-Length`` over it, or a stream passing
it, is a 413 before anything is parsed, and nothing past the cap is buffered.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from connectors.api.api_keys import ApiKey
from connectors.api.app_state import ApiState, get_state
from connectors.api.audit import AuditWriteError
from connectors.api.errors import ApiError, detail_of, status_of
from connectors.api.schemas import ErrorBody
from connectors.errors import DataSourceError
from connectors.secrets.references import get_logger, redact

log = get_logger(__name__)
_bearer = HTTPBearer(auto_error=False, description="An API key made with 'da-sources api-keys create'.")
# routes that move data without changing anything: audited like changes
DATA_ROUTES = ("/preview", "/stats")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in {
        400: "Bad input", 401: "No valid API key", 403: "The key may not do this", 404: "No such source or item",
        409: "A conflict: the id or blob name is taken, the file changed, the thread ended",
        413: "Over a limit", 422: "Invalid body or parameters", 429: "Too many jobs running",
        502: "The source failed (with its cause)", 504: "The source did not answer in time"}.items()
}


def _error_response(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer: ``{"detail": ...}`` with the status."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # FastAPI's default echoes the input, which may be a secret: location, message and type only
    # pydantic's validator wrappers (function-after[_one_kind(), Reference]) are no field a caller wrote
    return [{"loc": [p for p in e.get("loc", ()) if not _INTERNAL.match(str(p))],
             "msg": redact(str(e.get("msg", ""))).removeprefix("Value error, "), "type": e.get("type", "")}
            for e in exc.errors()]


_INTERNAL = re.compile(r"^[a-z][a-z-]*\[.*\]$")


async def _respond(handler: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc.status, exc.detail if exc.literal else redact(exc.detail), exc.headers)
    except HTTPException as exc:
        return _error_response(exc.status_code, exc.detail, dict(exc.headers or {}))
    except RequestValidationError as exc:
        return _error_response(422, _validation_detail(exc))
    except (DataSourceError, TimeoutError) as exc:
        return _error_response(status_of(exc), detail_of(exc))
    except Exception as exc:  # never a stack trace to the caller
        log.error("request %s: %s: %s", request.state.request_id, type(exc).__name__, redact(str(exc)))
        return _error_response(500, f"internal error (request {request.state.request_id})")


class ApiRoute(APIRoute):
    """A route that answers errors as ``{"detail"}``, tags a request id and writes the audit log."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, wrapped: request id, early refusals, errors as ``{"detail"}``, the audit line.

        Returns:
            The wrapped handler.
        """
        handler = super().get_route_handler()
        route = self
        needs_key = _needs_key(self.dependant)

        async def handle(request: Request) -> Response:
            request.state.request_id = new_request_id()
            changes = request.method not in SAFE_METHODS
            response = _refuse_early(request, needs_key)
            unauditable = response is None and changes and (response := _unaudited_refusal(request)) is not None
            if response is None:
                with _holding_connectors(request):
                    response = await _respond(handler, request)
            if not unauditable and route.audited(request.method, response.status_code):
                response = _audited(request, route.path, response, changes)
            response.headers["X-Request-ID"] = request.state.request_id
            return response

        return handle

    def audited(self, method: str, status: int) -> bool:
        """Whether a call gets an audit line: every change, every data read, and every refusal of a key.

        Args:
            method: the HTTP method.
            status: the answer's status.

        Returns:
            True for a non-GET, a preview or statistics read, or a 401 or 403.
        """
        return method != "GET" or self.path.endswith(DATA_ROUTES) or status in (401, 403)


def new_request_id() -> str:
    """A request's id, in its ``X-Request-ID`` header and its audit line.

    Returns:
        ``req-`` and 24 random hex digits.
    """
    return f"req-{secrets.token_hex(12)}"


def _needs_key(dependant: Dependant) -> bool:
    return any(d.call in (_key, _manage_key, _mint_key) or _needs_key(d) for d in dependant.dependencies)


class BodyTooLargeError(HTTPException):
    """The request body passed the cap while it was read (an HTTPException: FastAPI lets it through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes")


def _refuse_early(request: Request, needs_key: bool) -> Response | None:
    """A 401 (no valid key) or 413 (body over the cap) before the body is read; else None, the body capped."""
    try:
        state = get_state(request)
    except DataSourceError:
        return None  # no state: the route's own dependency answers why
    request.state.api = state
    if needs_key:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        key = state.keys.authenticate(presented.strip()) if scheme.lower() == "bearer" else None
        request.state.presented_key = (presented.strip(), key)  # checked once: _authenticated reuses it
        if key is None:
            return _error_response(401, "an API key is required: Authorization: Bearer <key>"
                                  if not presented else "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    limit = state.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        return _error_response(413, str(BodyTooLargeError(limit).detail), {"Connection": "close"})
    request._receive = _capped(request.receive, limit)
    return None


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` raising :class:`BodyTooLargeError` as soon as the body passes ``limit`` bytes."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError(limit)
        return message

    return capped


def _holding_connectors(request: Request) -> contextlib.AbstractContextManager[None]:
    """The pooled connectors the request takes stay open until it ends (the idle janitor leaves them)."""
    try:
        return get_state(request).pool.in_use()
    except DataSourceError:  # no state (a bad environment): the route's own dependency answers why
        return contextlib.nullcontext()


def _unaudited_refusal(request: Request) -> Response | None:
    """A 503 when the audit log cannot be opened for appending: a change is never made unaudited."""
    try:
        get_state(request).audit.check_writable()
    except AuditWriteError:
        return _error_response(503, "the audit log cannot be written; nothing was done")
    except DataSourceError:  # no state (a bad environment): the route's own dependency answers why
        pass
    return None


def _audited(request: Request, route: str, response: Response, changes: bool) -> Response:
    """``response`` once its audit line is written; a 500 for a change whose line could not be."""
    try:
        _audit(request, route, response.status_code)
    except AuditWriteError:
        if changes:
            return _error_response(500, "the call was made but its audit line could not be written "
                                       f"(request {request.state.request_id}); see the server's log")
    return response


def _audit(request: Request, route: str, status: int) -> None:
    state = getattr(request.state, "api", None)
    if not isinstance(state, ApiState):
        state = get_state(request)
    outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
    resolved = {"thread_id": request.path_params.get("thread_id"), "item": request.query_params.get("item"),
                **getattr(request.state, "audit", {})}
    state.audit.record(
        request_id=request.state.request_id, key_id=getattr(request.state, "key_id", None), method=request.method,
        route=route, source_id=getattr(request.state, "source_id", None) or request.path_params.get("source_id"),
        status=status, outcome=outcome, job_id=getattr(request.state, "job_id", None), **resolved)


def note_audit(request: Request, **fields: Any) -> None:
    """Add what a call resolved to (items, prefix, config...) to its audit line (see :mod:`connectors.api.audit`).

    Args:
        request: the call.
        **fields: audit fields (:data:`connectors.api.audit.FIELDS`); a later value replaces an earlier one.
    """
    if not hasattr(request.state, "audit"):
        request.state.audit = {}
    request.state.audit.update(fields)


def new_router() -> APIRouter:
    """A router whose routes go through :class:`ApiRoute` and document the error answers.

    Returns:
        An empty router for one module's routes.
    """
    return APIRouter(route_class=ApiRoute, responses=ERRORS)


async def _state(request: Request) -> ApiState:
    # dependencies are async: FastAPI runs a sync one in the thread pool, a hop costing more than its work
    return get_state(request)


State = Annotated[ApiState, Depends(_state)]


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# each key dependency takes the header itself rather than another dependency: FastAPI's cost per request
# grows with the dependencies it solves


def _authenticated(request: Request, credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    state = getattr(request.state, "api", None)
    if not isinstance(state, ApiState):
        state = request.state.api = get_state(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "an API key is required: Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"},
                       literal=True)  # the help text, not a credential: redaction would mask '<key>'
    key = _checked_key(request, state, credentials.credentials)
    if key is not None:
        request.state.key_id = key.id
    return valid_key(key)


def valid_key(key: ApiKey | None) -> ApiKey:
    """The key a caller presented, if it is valid now: a known key, or a thread token within its time.

    Args:
        key: what :meth:`KeyStore.authenticate` found for the presented key (None: nothing).

    Returns:
        ``key``.

    Raises:
        ApiError: 401 when there is no key or it is an expired thread token.
    """
    if key is None:
        raise ApiError(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    if key.expired():
        raise ApiError(401, f"thread token {key.id} has expired", {"WWW-Authenticate": "Bearer"})
    return key


def _checked_key(request: Request, state: ApiState, presented: str) -> ApiKey | None:
    """The key ``presented`` is, as :func:`_refuse_early` found it for this very request, else checked now."""
    early = getattr(request.state, "presented_key", None)
    if early is not None and early[0] == presented:
        return early[1]  # type: ignore[no-any-return]
    return state.keys.authenticate(presented)


def _api_key(request: Request, credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    return no_thread_token(_authenticated(request, credentials))


def no_thread_token(key: ApiKey) -> ApiKey:
    """``key`` when it is an API key (what a ``ReadKey`` route takes): a thread token is refused.

    Args:
        key: a valid key (:func:`valid_key`).

    Returns:
        ``key``.

    Raises:
        ApiError: 403 for a thread token (it may only attach data to its own thread).
    """
    if key.thread_id is not None:
        raise ApiError(403, f"{key.id} is a thread token: it may only attach data to its own thread")
    return key


async def _key(request: Request, credentials: Bearer) -> ApiKey:
    return _api_key(request, credentials)


async def _thread_key(thread_id: str, request: Request, credentials: Bearer) -> ApiKey:
    """An API key, or a thread token of this very thread (which sources it may use: :func:`check_sources`)."""
    key = _authenticated(request, credentials)
    if key.thread_id is not None and key.thread_id != thread_id:
        raise ApiError(403, f"thread token {key.id} is for another thread")
    return key


def check_sources(key: ApiKey, source_ids: set[str]) -> None:
    """Refuse a thread token's use of a source it does not list (API keys may use every source).

    Args:
        key: the caller's key or thread token.
        source_ids: the sources the call reads.

    Raises:
        ApiError: 403 naming the sources the token does not list.
    """
    if key.sources is not None and not source_ids <= set(key.sources):
        raise ApiError(403, f"thread token {key.id} may not read {sorted(source_ids - set(key.sources))}")


async def _mint_key(request: Request, credentials: Bearer) -> ApiKey:
    key = _api_key(request, credentials)
    if not key.can_mint:
        raise ApiError(403, f"API key {key.id} may not mint thread tokens; make one with --can-mint")
    return key


async def _manage_key(request: Request, credentials: Bearer) -> ApiKey:
    key = _api_key(request, credentials)
    if key.read_only:
        route = getattr(request.scope.get("route"), "path", None) or "this route"
        raise ApiError(403, f"API key {key.id} is read-only: it can browse, preview and fetch, but "
                            f"{request.method} {route} changes data; use a key made without --read-only")
    return key


ReadKey = Annotated[ApiKey, Depends(_key)]
ManageKey = Annotated[ApiKey, Depends(_manage_key)]
ThreadKey = Annotated[ApiKey, Depends(_thread_key)]
MintKey = Annotated[ApiKey, Depends(_mint_key)]
