"""Fetching: ``POST /v1/data-sources/{id}/fetch`` starts a job; jobs are read and cancelled; lineage.

Everything that can refuse a fetch is checked before the job starts: the
workspace name, each item's existence and size (413 over the limit), the job
caps (429). A job that starts therefore never stops half-way on a limit.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import stat
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request

from connectors.api.errors import ApiError
from connectors.api.routing import ReadKey, State, new_router
from connectors.api.schemas import FetchRequest, Job, JobList, Lineage
from connectors.api.settings import ApiSettings, _check_id
from connectors.api.sources import SourceId, load_source
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import ConfigurationError, DataSourceError, NotFoundError
from connectors.landing.lineage import read_provenance

router = new_router()
TAGS: list[str | Any] = ["fetching"]
MAX_ITEMS_PER_JOB = 10_000


def workspace_dir(settings: ApiSettings, name: str) -> Path:
    """``<base>/<name>``, created; ``name`` is an id, never a path, and a symlink there is refused."""
    try:
        _check_id(name, "workspace")
    except ConfigurationError as exc:
        raise ApiError(400, exc.message) from None
    settings.workspace_base.mkdir(parents=True, exist_ok=True)
    folder = settings.workspace_base / name
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise ApiError(400, f"workspace {name!r} is not a plain folder (a link or a file is in the way)")
    return folder


async def _identifiers(connector: DataSourceConnector, body: FetchRequest, timeout: float) -> list[str]:
    if (body.items is None) == (body.glob is None):
        raise ApiError(422, "give exactly one of items or glob")
    if body.items is not None:
        if not body.items:
            raise ApiError(422, "items: give at least one identifier")
        return list(dict.fromkeys(body.items))
    async with asyncio.timeout(timeout):
        listed = await connector.list_items()
    matched = [i.path for i in listed if fnmatch.fnmatchcase(i.path, body.glob or "")]
    if not matched:
        raise ApiError(404, f"no item of source {connector.source_id!r} matches {body.glob!r}")
    return matched


async def _sizes(connector: DataSourceConnector, identifiers: list[str], timeout: float) -> list[int | None]:
    gate = asyncio.Semaphore(16)

    async def one(identifier: str) -> int | None:
        async with gate:
            size = (await connector.get_metadata(identifier)).get("size")
        return size if isinstance(size, int) else None

    async with asyncio.timeout(timeout):
        return list(await asyncio.gather(*(one(i) for i in identifiers)))


def _check_limits(source: DataSourceConfig, settings: ApiSettings, identifiers: list[str],
                  sizes: list[int | None]) -> None:
    if len(identifiers) > MAX_ITEMS_PER_JOB:
        raise ApiError(413, f"{len(identifiers)} items in one fetch; the limit is {MAX_ITEMS_PER_JOB}")
    limit = settings.item_limit(source.metadata)
    for identifier, size in zip(identifiers, sizes, strict=True):
        if size is not None and size > limit:
            raise ApiError(413, f"item {identifier!r} is {size} bytes, over the limit of {limit} bytes "
                           f"of source {source.id!r}; nothing was fetched")


@router.post("/v1/data-sources/{source_id}/fetch", status_code=202, response_model=Job, tags=TAGS,
             summary="Start a background fetch into a workspace")
async def start_fetch(source_id: SourceId, body: FetchRequest, request: Request, state: State,
                      key: ReadKey) -> dict[str, Any]:
    source = load_source(state, source_id)
    folder = workspace_dir(state.settings, body.workspace)
    connector = await state.connector(source)
    identifiers = await _identifiers(connector, body, state.settings.timeout_seconds)
    if len(identifiers) > MAX_ITEMS_PER_JOB:
        _check_limits(source, state.settings, identifiers, [None] * len(identifiers))
    sizes = await _sizes(connector, identifiers, state.settings.timeout_seconds)
    _check_limits(source, state.settings, identifiers, sizes)
    total = None if None in sizes else sum(s or 0 for s in sizes)
    job = state.jobs.start(source, identifiers, body.workspace, folder, total, options=body.options)
    request.state.job_id = job.id
    return job.view()


@router.get("/v1/data-sources/{source_id}/jobs", response_model=JobList, tags=TAGS, summary="The source's jobs")
async def list_jobs(source_id: SourceId, state: State, key: ReadKey) -> dict[str, Any]:
    load_source(state, source_id)
    return {"object": "list", "data": [job.view() for job in state.jobs.of_source(source_id)]}


@router.get("/v1/data-sources/{source_id}/jobs/{job_id}", response_model=Job, tags=TAGS,
            summary="A job: status, progress and, when done, each landed file with its lineage")
async def get_job(source_id: SourceId, job_id: str, state: State,
                  key: ReadKey) -> dict[str, Any]:
    return state.jobs.get(source_id, job_id).view()


@router.delete("/v1/data-sources/{source_id}/jobs/{job_id}", response_model=Job, tags=TAGS,
               summary="Cancel a job (no partial file is left)")
async def cancel_job(source_id: SourceId, job_id: str, request: Request, state: State,
                     key: ReadKey) -> dict[str, Any]:
    request.state.job_id = job_id[:64]
    job = state.jobs.get(source_id, job_id)
    return (await state.jobs.cancel(job)).view()


@router.get("/v1/lineage", response_model=Lineage, tags=TAGS,
            summary="The provenance record of a landed file (path relative to the workspace base)")
async def lineage(path: Annotated[str, Query(min_length=1, max_length=4096)], state: State,
                  key: ReadKey) -> dict[str, Any]:
    base = state.settings.workspace_base
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts or "\0" in path:
        raise ApiError(400, "path: give the landed file's path relative to the workspace base, e.g. t1/sales.csv")
    workspace = base / relative.parts[0]
    try:
        record = read_provenance(base / relative, workspace)
    except NotFoundError:
        raise ApiError(404, f"no lineage record for {path!r}") from None
    except (DataSourceError, OSError, ValueError):
        raise ApiError(404, f"no readable lineage record for {path!r}") from None
    return {"object": "data_source.lineage", "path": path,
            "record": {k: v for k, v in record.items() if k != "local_path"}}
