"""Fetching: ``POST /v1/data-sources/{id}/fetch`` starts a job; jobs are read and cancelled; lineage.

Everything that can refuse a fetch is checked before the job starts: the
workspace name, each item's existence and size (413 over the limit), the job
caps (429). A job that starts therefore never stops half-way on a limit.

Fetch jobs serve bulk landing into named workspaces under ``settings.jobs_base``
(``$DA_API_JOBS_DIR``, default ``<DA_WORKSPACE>/.fetch-jobs``), apart from
DeepAnalyze's thread folders: data for a conversation goes through
``POST /v1/threads/{thread_id}/data`` instead, and a job never writes into a
thread's folder.
"""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request

from connectors.api.api_keys import ApiKey
from connectors.api.api_settings import ApiSettings, _check_id
from connectors.api.app_state import ApiState
from connectors.api.audit import items_fields
from connectors.api.discovery import shared_listing
from connectors.api.errors import ApiError
from connectors.api.listing_file import ListingFile
from connectors.api.routing import ReadKey, State, new_router, note_audit
from connectors.api.schemas import FetchRequest, Job, JobList, Lineage
from connectors.api.sources import Limit, SourceId, load_source
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import ConfigurationError, DataSourceError, NotFoundError
from connectors.landing.dirs import open_directory
from connectors.landing.lineage import read_provenance
from connectors.threads.folders import THREAD_ID_PATTERN
from connectors.threads.records import ThreadRecords

__all__ = ["router"]

router = new_router()
TAGS: list[str | Any] = ["fetching"]
MAX_ITEMS_PER_JOB = 10_000


def workspace_dir(settings: ApiSettings, name: str) -> Path:
    """A fetch job's workspace folder, ``<jobs base>/<name>``, created if missing.

    This is an early answer only: the job opens the folder again from its trusted
    root, without following links, each time it lands a file.

    Args:
        settings: the API's settings (``jobs_base``).
        name: the workspace's name, untrusted: an id, never a path.

    Returns:
        The folder's path.

    Raises:
        ApiError: 400 when the name breaks the id rule, or a link or a file is in the way.
    """
    try:
        _check_id(name, "workspace")
        os.close(open_directory(settings.jobs_base, [name], create=True))
    except ConfigurationError as exc:
        raise ApiError(400, exc.message) from None
    except DataSourceError:
        raise ApiError(400, f"workspace {name!r} is not a plain folder (a link or a file is in the way)") from None
    return settings.jobs_base / name


async def _identifiers(state: ApiState, source: DataSourceConfig, body: FetchRequest
                       ) -> tuple[list[str], list[int | None] | None]:
    """The identifiers to fetch, and their sizes when the listing gave them (a glob)."""
    if (body.items is None) == (body.glob is None):
        raise ApiError(422, "give exactly one of items or glob")
    if body.items is not None:
        if not body.items:
            raise ApiError(422, "items: give at least one identifier")
        return list(dict.fromkeys(body.items)), None
    # the source's listing is shared and cached (one load at a time, however many globs wait for it):
    # eight concurrent globs over a big source list it once, not eight times over the worker threads
    listing = await shared_listing(state, source)
    matched, count = await asyncio.to_thread(_glob, listing, body.glob or "")
    if not count:
        raise ApiError(404, f"no item of source {source.id!r} matches {body.glob!r}")
    if count > MAX_ITEMS_PER_JOB:
        raise ApiError(413, f"{count} items in one fetch; the limit is {MAX_ITEMS_PER_JOB}")
    return [path for path, _ in matched], [size for _, size in matched]


def _glob(listing: ListingFile, pattern: str) -> tuple[list[tuple[str, int | None]], int]:
    """The first ``MAX_ITEMS_PER_JOB`` matches (identifier, listed size) and how many match in all:
    past the cap, matches are counted, not kept."""
    kept: list[tuple[str, int | None]] = []
    count = 0
    for batch in listing.matching(pattern):
        count += len(batch)
        kept.extend(batch[: max(MAX_ITEMS_PER_JOB - len(kept), 0)])
    return kept, count


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
    """Check every item and cap first (404, 413, 429), then land them in the background: 202 with the job."""
    source = load_source(state, source_id)
    folder = workspace_dir(state.settings, body.workspace)
    identifiers, listed_sizes = await _identifiers(state, source, body)
    if len(identifiers) > MAX_ITEMS_PER_JOB:
        _check_limits(source, state.settings, identifiers, [None] * len(identifiers))
    connector = await state.connector(source)
    sizes = listed_sizes or await _sizes(connector, identifiers, state.settings.timeout_seconds)
    _check_limits(source, state.settings, identifiers, sizes)
    total = None if None in sizes else sum(s or 0 for s in sizes)
    job = state.jobs.start(source, identifiers, body.workspace, folder, total, key.id, sizes, options=body.options)
    request.state.job_id = job.id
    note_audit(request, workspace=body.workspace, **items_fields(identifiers))
    return job.view()


def _owner_filter(key: ApiKey) -> str | None:
    """The key id whose jobs ``key`` may see: its own, or None (all) for a manage key."""
    return key.id if key.read_only else None


def _job_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode()


@router.get("/v1/data-sources/{source_id}/jobs", response_model=JobList, tags=TAGS,
            summary="The source's jobs, oldest first: a read-only key sees its own, a manage key all")
async def list_jobs(source_id: SourceId, state: State, key: ReadKey, limit: Limit = 20,
                    after: Annotated[str | None, Query(max_length=200, description="next_cursor of the last page")]
                    = None) -> dict[str, Any]:
    """One page of the source's remembered jobs, oldest first (a read-only key sees its own)."""
    load_source(state, source_id)
    jobs = state.jobs.of_source(source_id, _owner_filter(key))
    cursors = [_job_cursor(job.id) for job in jobs]
    start = cursors.index(after) + 1 if after in cursors else 0
    if after is not None and after not in cursors:
        raise ApiError(400, "after: not a cursor of this list (the job may have been forgotten); start again")
    page = jobs[start : start + limit]
    more = start + limit < len(jobs)
    return {"object": "list", "data": [job.view() for job in page], "has_more": more,
            "next_cursor": cursors[start + len(page) - 1] if more else None}


@router.get("/v1/data-sources/{source_id}/jobs/{job_id}", response_model=Job, tags=TAGS,
            summary="A job: status, progress and, when done, each landed file with its lineage")
async def get_job(source_id: SourceId, job_id: str, state: State,
                  key: ReadKey) -> dict[str, Any]:
    """A job as it stands; a read-only key sees only the jobs it started (else 404)."""
    return state.jobs.get(source_id, job_id, _owner_filter(key)).view()


@router.delete("/v1/data-sources/{source_id}/jobs/{job_id}", response_model=Job, tags=TAGS,
               summary="Cancel a job (no partial file is left)")
async def cancel_job(source_id: SourceId, job_id: str, request: Request, state: State,
                     key: ReadKey) -> dict[str, Any]:
    """Cancel a job the key started and wait until its temporaries are gone; the job as it ended."""
    request.state.job_id = job_id[:64]
    job = state.jobs.get(source_id, job_id, _owner_filter(key))
    if job.key_id != key.id:  # a manage key sees others' jobs but cancels only its own
        raise ApiError(403, f"job {job_id!r} was started by another key; only that key cancels it "
                       "(deleting the source cancels all its jobs)")
    return (await state.jobs.cancel(job)).view()


def _is_valid_thread_id(value: str) -> bool:
    """Whether ``value`` is a thread id (a folder of the workspace base), not a fetch job's workspace."""
    return THREAD_ID_PATTERN.fullmatch(value) is not None


def _thread_record(settings: ApiSettings, relative: Path) -> dict[str, Any] | None:
    """The record of a file attached to a thread (``<thread_id>/<name>``), kept in the state folder."""
    if len(relative.parts) != 2 or not _is_valid_thread_id(relative.parts[0]):
        return None
    try:
        if not stat.S_ISREG(os.lstat(settings.workspace_base / relative).st_mode):
            return None  # a link or a folder in its place: not the file we attached
    except FileNotFoundError:
        return None  # removed since: a record without its file answers nothing
    return ThreadRecords.of(settings.workspace_base, relative.parts[0], settings.thread_state_dir).read(relative.name)


@router.get("/v1/lineage", response_model=Lineage, tags=TAGS,
            summary="The provenance record of a landed file: <thread_id>/<name> for a file attached to a "
                    "thread, else <workspace>/<name> of a fetch job (relative to the jobs base)")
async def lineage(path: Annotated[str, Query(min_length=1, max_length=4096)], state: State,
                  key: ReadKey) -> dict[str, Any]:
    """The provenance record of a file attached to a thread or landed by a fetch job (404 if none)."""
    base = state.settings.jobs_base
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts or "\0" in path:
        raise ApiError(400, "path: give <thread_id>/<name> of an attached file, or <workspace>/<name> of a "
                            "fetch job's file, e.g. t1/sales.csv")
    workspace = base / relative.parts[0]
    try:
        record = _thread_record(state.settings, relative) or read_provenance(base / relative, workspace)
    except NotFoundError:
        raise ApiError(404, f"no lineage record for {path!r}") from None
    except (DataSourceError, OSError, ValueError):
        raise ApiError(404, f"no readable lineage record for {path!r}") from None
    return {"object": "data_source.lineage", "path": path,
            "record": {k: v for k, v in record.items() if k != "local_path"}}
