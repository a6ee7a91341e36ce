"""Management: create, list, get, update, delete and test sources, in the CLI's sources file.

A literal value in a secret field is write-only: it goes to the credential
store as ``<id>.<field>`` and the source keeps ``{"secret": "<id>.<field>"}``.
No response ever holds a secret value: configs are shown as stored, and the
file only ever stores references.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from pydantic import TypeAdapter

from connectors.api.api_settings import _check_id
from connectors.api.app_state import ApiState
from connectors.api.errors import ApiError, detail_of
from connectors.api.policy import (
    PolicyError,
    check_changeable,
    check_reach,
    check_request,
    connector_for,
    mark_made_through_api,
)
from connectors.api.routing import ManageKey, ReadKey, State, new_router, note_audit
from connectors.api.schemas import DataSource, Deleted, SourceCreate, SourceList, SourceUpdate, TestResult
from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError, DataSourceError
from connectors.secrets.references import MASK, Secret, is_reference
from connectors.secrets.store import default_store
from connectors.type_table import settings_model_for

__all__ = ["router"]

router = new_router()
SourceId = Annotated[str, Path(description="The source's id.", max_length=63)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Most entries per page.")]
PAGE = 100  # sources per page by default: the route's default and the short way's (connectors/api/fast_reads.py)


def _source_view(source: DataSourceConfig) -> dict[str, Any]:
    """The ``data_source`` object: references as they are, any literal secret masked."""
    config = {k: MASK if isinstance(v, Secret) else v for k, v in source.config.items()}
    return {"id": source.id, "object": "data_source", "created_at": source.created_at, "type": source.type_name,
            "name": source.name, "config": config, "metadata": source.metadata}


def load_source(state: State, source_id: str) -> DataSourceConfig:
    """The stored source of an id from a request.

    Args:
        state: the API's state.
        source_id: the id as the caller gave it (checked first, so a bad id never reaches the file).

    Returns:
        The source, references unresolved.

    Raises:
        ApiError: 404 when the id is invalid or no source has it.
    """
    try:
        _check_id(source_id, "source id")
    except ConfigurationError:
        raise ApiError(404, f"no source {source_id!r}") from None
    for source in state.sources():
        if source.id == source_id:
            return source
    raise ApiError(404, f"no source {source_id!r}")


def _write_only(source_id: str, type_name: str, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``config`` with literal secrets replaced by store references, and the values to store (name -> value)."""
    secret_fields = settings_model_for(type_name).secret_fields()
    stored: dict[str, str] = {}
    result = dict(config)
    for key, value in config.items():
        if key in secret_fields and isinstance(value, str):
            name = f"{source_id}.{key}"
            stored[name], result[key] = value, {"secret": name}
    return result, stored


def _store(values: dict[str, str]) -> None:
    if values:
        store = default_store()
        for name, value in values.items():
            store.set(name, value)


def _validated(body: SourceCreate) -> DataSourceConfig:
    try:
        _check_id(body.id, "id")
        source = DataSourceConfig(id=body.id, type=body.type, name=body.name or body.id, config=body.config,
                                  metadata=body.metadata)
        source.check_complete()  # before any secret of it is stored
        return source
    except ConfigurationError as exc:
        raise ApiError(422, detail_of(exc)) from None


@router.post("/v1/data-sources", status_code=201, response_model=DataSource, tags=["data sources"],
             summary="Create a source")
async def create_source(body: SourceCreate, request: Request, state: State, key: ManageKey) -> dict[str, Any]:
    """Create a source within the operator's policy; a literal secret is stored write-only."""
    request.state.source_id = body.id if isinstance(body.id, str) and len(body.id) < 64 else None
    source = _validated(body)
    existing = state.sources()
    if any(s.id == source.id for s in existing):
        raise ApiError(409, f"source id {source.id!r} is taken")
    _allowed_new(source, body, len(existing), state)
    config, secrets = _write_only(source.id, source.type_name, body.config)
    final = DataSourceConfig(id=source.id, type=source.type_name, name=source.name, config=config,
                             metadata=mark_made_through_api(source.metadata))
    _store(secrets)
    try:
        state.registry.add(final)
    except ConfigurationError as exc:
        raise ApiError(409 if "is taken" in exc.message else 422, detail_of(exc)) from None
    state.sources_changed()
    note_audit(request, config=_source_view(final)["config"])
    return _source_view(final)


def _allowed_new(source: DataSourceConfig, body: SourceCreate, count: int, state: ApiState) -> None:
    """The operator's policy: the type, the number of sources, the fields set and where they reach (403)."""
    policy = state.settings.policy
    if source.type_name not in policy.connector_types:
        raise ApiError(403, "type: the operator's policy does not let the API create sources of this type")
    if count >= policy.max_sources:
        raise ApiError(403, f"the operator's policy allows at most {policy.max_sources} sources")
    _policy_checked(check_request, source.type_name, body.config, body.metadata, None, source.id)
    _policy_checked(check_reach, source.type_name, body.config, state.settings)


def _policy_checked(check: Callable[..., None], *args: Any) -> None:
    try:
        check(*args)
    except PolicyError as exc:
        raise ApiError(403, detail_of(exc)) from None


@router.get("/v1/data-sources", response_model=SourceList, tags=["data sources"], summary="List sources")
async def list_sources(state: State, key: ReadKey, limit: Limit = PAGE,
                       after: Annotated[str | None, Query(max_length=200, description="Cursor")] = None
                       ) -> Response:
    """One page of the sources, configs as stored: references as names, no secret value."""
    return JsonBytes(list_answer(state, limit, after))


def list_answer(state: ApiState, limit: int = PAGE, after: str | None = None) -> bytes:
    """The answer of ``GET /v1/data-sources`` (its route, and :mod:`connectors.api.fast_reads`).

    Args:
        state: the API's state.
        limit: most entries (validated by the route).
        after: the cursor, a source id (validated by the route).

    Returns:
        The page as the response model serializes it, cached until the sources file changes.
    """
    sources = state.sources()
    start = next((i + 1 for i, s in enumerate(sources) if s.id == after), 0) if after else 0

    def page() -> bytes:
        shown = sources[start : start + limit]
        more = start + limit < len(sources)
        return _serialized(_LIST, {"object": "list", "data": [_source_view(s) for s in shown], "has_more": more,
                                "next_cursor": shown[-1].id if more and shown else None})

    return state.rendered(("list", start, limit), page)


@router.get("/v1/data-sources/{source_id}", response_model=DataSource, tags=["data sources"], summary="Get a source")
async def get_source(source_id: SourceId, state: State, key: ReadKey) -> Response:
    """One source, its config as stored: references as names, no secret value."""
    return JsonBytes(source_answer(state, source_id))


def source_answer(state: ApiState, source_id: str) -> bytes:
    """The answer of ``GET /v1/data-sources/{id}`` (its route, and :mod:`connectors.api.fast_reads`).

    Args:
        state: the API's state.
        source_id: the id as the caller gave it (hostile: :func:`load_source` checks it).

    Returns:
        The source as the response model serializes it, cached until the sources file changes.

    Raises:
        ApiError: 404 when the id is invalid or no source has it.
    """
    source = load_source(state, source_id)
    return state.rendered(("one", source.id), lambda: _serialized(_ONE, _source_view(source)))


class JsonBytes(Response):
    """An answer already serialized (by the route's model, as FastAPI would): only sent."""

    media_type = "application/json"


# the answers of the two most called routes are built once per change of the sources file, through their
# response models (validated and serialized as FastAPI does): FastAPI's per-request validation and
# serialization was a sixth of such a request's time
_ONE, _LIST = TypeAdapter(DataSource), TypeAdapter(SourceList)


def _serialized(model: TypeAdapter[Any], view: dict[str, Any]) -> bytes:
    return model.dump_json(model.validate_python(view))


@router.patch("/v1/data-sources/{source_id}", response_model=DataSource, tags=["data sources"],
              summary="Update a source")
async def update_source(source_id: SourceId, body: SourceUpdate, request: Request, state: State,
                        key: ManageKey) -> dict[str, Any]:
    """Change a source's name, config or labels; changed connections reopen at the next use."""
    source = load_source(state, source_id)
    if body.config:  # a name or labels move no reference; a config change could
        _policy_checked(check_changeable, source)
    _policy_checked(check_request, source.type_name, body.config or {}, body.metadata, source, source_id)
    changes, secrets = _write_only(source_id, source.type_name, body.config or {})
    merged = {k: v for k, v in {**source.config, **changes}.items() if v is not None}
    try:  # validated before any secret is stored
        DataSourceConfig(id=source.id, type=source.type_name, name=body.name or source.name, config=merged,
                         metadata=source.metadata)
        _policy_checked(check_reach, source.type_name, {**merged, **(body.config or {})}, state.settings)
        _store(secrets)
        updated = state.registry.update(source_id, name=body.name, config=changes or None, metadata=body.metadata)
    except ConfigurationError as exc:
        raise ApiError(422, detail_of(exc)) from None
    _delete_owned_secrets(source, [k for k, v in changes.items() if v is None])
    await state.forget(source_id)
    note_audit(request, config={k: _source_view(updated)["config"].get(k) for k in changes})
    return _source_view(updated)


@router.delete("/v1/data-sources/{source_id}", response_model=Deleted, tags=["data sources"],
               summary="Delete a source: cancels its jobs and closes its connections")
async def delete_source(source_id: SourceId, state: State, key: ManageKey) -> dict[str, Any]:
    """Delete a source: its jobs are cancelled, its connections closed, its own secrets removed."""
    source = load_source(state, source_id)
    await state.jobs.cancel_source(source_id)
    await state.forget(source_id)
    state.registry.remove(source_id)
    _delete_owned_secrets(source, list(source.config))
    return {"id": source_id, "object": "data_source", "deleted": True}


def _delete_owned_secrets(source: DataSourceConfig, keys: list[str]) -> None:
    """Remove the write-only secrets the API stored for these fields (``<id>.<field>``), not shared ones."""
    owned = [v["secret"] for k, v in source.config.items()
             if k in keys and is_reference(v) and v.get("secret") == f"{source.id}.{k}"]
    if owned:
        try:
            store = default_store()
            for name in owned:
                store.delete(name)
        except DataSourceError:
            pass  # the source is gone; a leftover entry is harmless and visible in 'secrets list'


@router.post("/v1/data-sources/{source_id}/test", response_model=TestResult, tags=["data sources"],
             summary="Test a source: connects with a fresh connection and says why it failed")
async def test_source(source_id: SourceId, state: State, key: ReadKey) -> dict[str, Any]:
    """Connect with a fresh connection, within the timeout: ok, latency, or why it failed."""
    source = load_source(state, source_id)
    started = time.monotonic()
    error: str | None = None
    try:
        connector = connector_for(source, state.settings)
    except PolicyError as exc:
        return {"id": source_id, "object": "data_source.test", "ok": False, "error": detail_of(exc), "latency_ms": 0}
    try:
        async with asyncio.timeout(state.settings.timeout_seconds):
            await connector.connect()
            if not await connector.test_connection():
                error = f"source '{source_id}': the source does not answer with these settings"
    except (DataSourceError, TimeoutError) as exc:
        error = detail_of(exc)
    finally:
        await connector.disconnect()
    return {"id": source_id, "object": "data_source.test", "ok": error is None, "error": error,
            "latency_ms": int((time.monotonic() - started) * 1000)}
