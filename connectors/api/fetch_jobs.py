"""Background fetch jobs: start at once, report progress, land files with lineage, cancel cleanly.

Jobs live in this process (a restart forgets them; the landed files and their
records stay). A job runs the connector's ``fetch_many`` into its workspace;
cancelling it cancels that call, and the connectors remove their temporaries,
so no partial file is ever left under a final name. Jobs are capped per source
and overall; a start over a cap is refused (429), never queued half-done.

Jobs land like threads: ``settings.jobs_base`` (apart from the thread folders)
is declared the trusted root around the whole job, so every folder from it down,
the job's workspace included, is opened without following a link, at landing
time: a workspace swapped for a link mid-job fails the job, nothing lands outside.

Each job belongs to the key that started it: a key sees and cancels its own jobs;
a manage key sees every job (and still cancels only its own). Finished jobs are
remembered up to ``keep_jobs`` and ``keep_jobs_bytes`` (the size of their views),
oldest forgotten first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.api.api_settings import ApiSettings
from connectors.api.errors import ApiError
from connectors.api.policy import connector_for
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import ConfigurationError, DataSourceError
from connectors.landing.atomic import landing_byte_cap
from connectors.landing.lineage import read_provenance
from connectors.landing.progress import on_progress
from connectors.landing.root import workspace_root
from connectors.rows import RowOptions
from connectors.secrets.references import get_logger, redact

log = get_logger(__name__)
FETCH_CONCURRENCY = 4


@dataclass
class Job:
    """One fetch: what, where, how far, and what landed."""

    id: str
    source_id: str
    workspace: str
    workspace_dir: Path
    identifiers: list[str]
    bytes_total: int | None
    key_id: str = ""
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "queued"  # queued, running, succeeded, failed, cancelled
    finished_at: int | None = None
    items_done: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # the listed size per item (tables: on disk, an estimate)
    options: RowOptions | None = None  # tables cut into rows (fetch_table); None: whole items
    _bytes: dict[str, int] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    view_bytes: int = 0  # the size of the finished job's view, for the retention budget
    # running sums: a client polling a job of 10,000 items every 0.2 s made each poll sum every item
    _bytes_done: int = 0
    _counted: int | None = None  # counted_total(), kept up to date once first asked for
    _wanted: set[str] | None = None

    @property
    def running(self) -> bool:
        """Whether the job is queued or running (not finished)."""
        return self.status in ("queued", "running")

    def progress(self, identifier: str, done: int, total: int | None) -> None:
        """Count an item's bytes landed so far (the landing's progress callback).

        Args:
            identifier: the item.
            done: its bytes landed so far.
            total: its size when known (unused: the listed size counts until it finishes).
        """
        before = self._counted_of(identifier)
        self._bytes_done += done - self._bytes.get(identifier, 0)
        self._bytes[identifier] = done
        self._recount(identifier, before)

    def finish(self, identifier: str) -> None:
        """An item is done (landed or failed): its bytes counted now replace its listed size.

        Args:
            identifier: the item.
        """
        before = self._counted_of(identifier)
        self._finished.add(identifier)
        self._recount(identifier, before)

    def counted_total(self) -> int | None:
        """The total in the bytes that are counted: each finished item's bytes, the others' listed size.

        A table's listed size is its size on disk, not its CSV or Parquet bytes; once it has
        landed its real bytes count, so a finished job's total is its bytes done.

        Returns:
            The total in bytes, or None when a size was unknown when the job started.
        """
        if self.bytes_total is None or not self.sizes:
            return self.bytes_total
        if self._counted is None:  # once; then progress and finish keep it up to date
            self._wanted = set(self.identifiers)
            self._counted = sum(self._counted_of(i) for i in self._wanted)
        return self._counted

    def _counted_of(self, identifier: str) -> int:
        if identifier in self._finished:
            return self._bytes.get(identifier, 0)
        return max(self.sizes.get(identifier, 0), self._bytes.get(identifier, 0))

    def _recount(self, identifier: str, before: int) -> None:
        if self._counted is not None and self._wanted is not None and identifier in self._wanted:
            self._counted += self._counted_of(identifier) - before

    def view(self) -> dict[str, Any]:
        """The job object (see ``schemas.Job``): the landed files once it has finished.

        A running job's view has its progress (counts, bytes) but no files: each poll of a
        job of 10,000 items validated and sent every file landed so far with its lineage
        (megabytes): 10,000 files took 465 s polled every 0.2 s, 69 s polled every 5 s.

        Returns:
            The ``data_source.fetch_job`` object: status, progress, errors, and the files once finished.
        """
        return {
            "id": self.id, "object": "data_source.fetch_job", "created_at": self.created_at,
            "source_id": self.source_id, "workspace": self.workspace, "status": self.status,
            "finished_at": self.finished_at,
            "progress": {"items_total": len(self.identifiers), "items_done": self.items_done,
                         "bytes_done": self._bytes_done, "bytes_total": self.counted_total()},
            "files": [] if self.running else list(self.files), "errors": list(self.errors),
        }


class JobManager:
    """Starts, tracks and cancels jobs, within the caps of ``settings``.

    Args:
        settings: the API's settings (job caps, the jobs folder, how many finished jobs to keep).
    """

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._jobs: dict[str, Job] = {}

    def running(self, source_id: str | None = None) -> list[Job]:
        """The jobs not finished yet.

        Args:
            source_id: only this source's; None: every source's.

        Returns:
            The jobs, oldest first.
        """
        return [j for j in self._jobs.values() if j.running and source_id in (None, j.source_id)]

    def start(self, source: DataSourceConfig, identifiers: list[str], workspace: str,
              workspace_dir: Path, bytes_total: int | None, key_id: str = "",
              sizes: list[int | None] | None = None, options: RowOptions | None = None) -> Job:
        """Start a job in the background, with a connector of its own.

        Its own connector means that changing the source (which closes its pooled
        connector) never breaks a fetch under way.

        Args:
            source: the stored source.
            identifiers: the items to land, checked by the caller (existence, size).
            workspace: the workspace's name, as the caller gave it.
            workspace_dir: its folder, ``<jobs_base>/<workspace>``.
            bytes_total: the items' total size, or None when one is unknown.
            key_id: the key starting it: only that key cancels it.
            sizes: each item's listed size (None: unknown), in the order of ``identifiers``.
            options: rows to cut tables into (``fetch_table``); None or empty: whole items.

        Returns:
            The job, already running.

        Raises:
            ApiError: 429 (with ``Retry-After``) when ``max_jobs`` or ``max_jobs_per_source`` are running.
        """
        source_id = source.id
        if len(self.running()) >= self.settings.max_jobs:
            raise ApiError(429, f"{self.settings.max_jobs} fetch jobs are running (the limit); retry later",
                           {"Retry-After": "5"})
        if len(self.running(source_id)) >= self.settings.max_jobs_per_source:
            raise ApiError(429, f"{self.settings.max_jobs_per_source} fetch jobs of source {source_id!r} are "
                           "running (the limit per source); retry later", {"Retry-After": "5"})
        job = Job(f"job-{secrets.token_hex(12)}", source_id, workspace, workspace_dir, identifiers, bytes_total,
                  key_id)
        job.sizes = {i: s for i, s in zip(identifiers, sizes or [], strict=False) if s is not None}
        job.options = options if options is not None and not options.is_empty() else None
        self._jobs[job.id] = job
        connector = connector_for(source, self.settings)
        job.task = asyncio.create_task(self._run(job, connector), name=job.id)
        self._forget_old()
        return job

    def get(self, source_id: str, job_id: str, key_id: str | None = None) -> Job:
        """One job of a source.

        Args:
            source_id: the source it must belong to.
            job_id: the job's id.
            key_id: when given, the key that must have started it.

        Returns:
            The job.

        Raises:
            ApiError: 404 when there is no such job, or it is another source's or another key's.
        """
        job = self._jobs.get(job_id)
        if job is None or job.source_id != source_id or key_id not in (None, job.key_id):
            raise ApiError(404, f"no job {job_id!r} for source {source_id!r}")
        return job

    def of_source(self, source_id: str, key_id: str | None = None) -> list[Job]:
        """The jobs of a source still remembered, running or finished.

        Args:
            source_id: the source.
            key_id: when given, only the jobs that key started.

        Returns:
            The jobs, oldest first.
        """
        return [j for j in self._jobs.values() if j.source_id == source_id and key_id in (None, j.key_id)]

    async def cancel(self, job: Job) -> Job:
        """Cancel a job and wait until it has stopped and its temporaries are gone.

        Args:
            job: the job; a finished one is left as it is.

        Returns:
            The same job, now cancelled (or as it finished).
        """
        if job.task is not None and not job.task.done():
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task
        return job

    async def cancel_source(self, source_id: str) -> None:
        """Cancel every running job of a source (it is being deleted).

        Args:
            source_id: the source.
        """
        for job in self.running(source_id):
            await self.cancel(job)

    async def aclose(self) -> None:
        """Cancel every running job (at shutdown)."""
        for job in self.running():
            await self.cancel(job)

    async def _run(self, job: Job, connector: DataSourceConnector) -> None:
        job.status = "running"
        try:
            await connector.connect()
            cap = self.settings.item_limit(connector.config.metadata)
            with workspace_root(self.settings.jobs_base), landing_byte_cap(cap), on_progress(job.progress):
                await self._fetch(job, connector)
            job.status = "failed" if job.errors else "succeeded"
        except asyncio.CancelledError:
            job.status = "cancelled"
            raise
        except DataSourceError as exc:
            job.errors.append({"identifier": "", "detail": redact(str(exc))})
            job.status = "failed"
        except Exception as exc:  # a job never dies silently
            log.error("job %s failed: %s: %s", job.id, type(exc).__name__, exc)
            job.errors.append({"identifier": "", "detail": "internal error"})
            job.status = "failed"
        finally:
            job.finished_at = int(time.time())
            job.view_bytes = len(json.dumps(job.view(), default=str))
            self._forget_old()
            try:
                await connector.disconnect()
            except Exception as exc:  # the job's outcome stands; a failed close is only worth a line
                log.warning("job %s: disconnect failed: %s", job.id, exc)

    async def _fetch(self, job: Job, connector: DataSourceConnector) -> None:
        if job.options is not None:
            return await self._fetch_sized(job, connector, job.options)
        chunk = FETCH_CONCURRENCY * 4  # fetch_many a chunk at a time, so items_done moves
        for start in range(0, len(job.identifiers), chunk):
            batch = job.identifiers[start : start + chunk]
            results = await connector.fetch_many(batch, str(job.workspace_dir), concurrency=FETCH_CONCURRENCY)
            for result in results:
                job.items_done += 1
                job.finish(result.identifier)
                if result.ok and result.path is not None:
                    try:  # its record is read from the trusted root too: a folder swapped meanwhile fails it
                        job.files.append(self._landed(job, result.identifier, result.path))
                    except DataSourceError as exc:
                        job.errors.append({"identifier": result.identifier, "detail": redact(str(exc))})
                else:
                    job.errors.append({"identifier": result.identifier, "detail": redact(str(result.error))})

    async def _fetch_sized(self, job: Job, connector: DataSourceConnector, options: RowOptions) -> None:
        """Each table cut by ``options`` (``fetch_table``), one after the other."""
        fetch_table = getattr(connector, "fetch_table", None)
        if fetch_table is None:
            raise ConfigurationError(f"a {connector.type_name()} source cannot cut items into rows "
                                     "(options apply to tables of SQL sources)", source_id=connector.source_id)
        for identifier in job.identifiers:
            try:
                path = await fetch_table(identifier, str(job.workspace_dir), options)
            except DataSourceError as exc:
                job.errors.append({"identifier": identifier, "detail": redact(str(exc))})
            else:
                job.files.append(self._landed(job, identifier, path))
            job.items_done += 1

    def _landed(self, job: Job, identifier: str, path: str) -> dict[str, Any]:
        record = read_provenance(path, job.workspace_dir)
        relative = Path(path).relative_to(self.settings.jobs_base).as_posix()
        lineage = {k: v for k, v in record.items() if k != "local_path"}
        return {"identifier": identifier, "path": relative, "size": record.get("size"),
                "sha256": record.get("sha256"), "lineage": lineage}

    def _forget_old(self) -> None:
        """Forget the oldest finished jobs until at most ``keep_jobs`` of them, ``keep_jobs_bytes`` in all, remain."""
        finished = [j for j in self._jobs.values() if not j.running]
        count, total = len(finished), sum(j.view_bytes for j in finished)
        for job in finished:
            if count <= self.settings.keep_jobs and total <= self.settings.keep_jobs_bytes:
                return
            del self._jobs[job.id]
            count, total = count - 1, total - job.view_bytes
