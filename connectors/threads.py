"""Data into a DeepAnalyze conversation: references fetched into a thread's folder, at its top level.

DeepAnalyze's agent sees only the files at the top level of ``<base>/<thread_id>/`` (listed into its
prompt before each turn), so :func:`attach_to_thread` lands every referenced item there, under a
readable name that never collides with a file already there or with another reference's, with the
item's lineage record at ``.lineage/<name>.json`` (which says which source and item a name holds).

All or nothing: the references are fetched in parallel into a hidden staging folder of the thread;
only when every one landed are they moved to the top level (each by a no-clobber link), and if
anything fails, nothing of this call is left: the staging folder is removed and what was already
moved is taken back. Call it before the turn's workspace snapshot, so the files are not mistaken
for the agent's output.

Example:
    >>> async with SourceRegistry("sources.yaml") as registry:
    ...     attachment = await attach_to_thread(registry, "workspace", "thread-1a2b", [
    ...         {"source_id": "lake", "glob": "exports/2026-*.csv"},
    ...         {"source_id": "warehouse", "table": "public.customers"},
    ...         {"source_id": "warehouse", "query": "select * from orders where total > 100", "name": "big_orders"},
    ...     ])
    >>> prompt += attachment.manifest()
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError, DataSourceError, NameCollisionError, NotFoundError, WorkspaceError
from connectors.landing.dirs import finish_in_thread, open_directory, open_regular_file, read_regular_file
from connectors.landing.lineage import read_provenance, utc_now_iso, write_provenance
from connectors.landing.names import LINEAGE_DIR, MAX_FILE_NAME_BYTES, safe_relative_path
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.registry import SourceRegistry
from connectors.secrets.references import get_logger

log = get_logger(__name__)

MAX_THREAD_ID_LENGTH = 128
THREAD_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_THREAD_ID_LENGTH - 1}}}")
RESULT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
STAGING_PREFIX = ".da-attach-"
MAX_REFERENCES = 100
MAX_GLOB_MATCHES = 1000
KINDS = ("path", "glob", "table", "query")
GENERATED_DIR = "generated"

ConnectorFor = Callable[[str], Awaitable[DataSourceConnector]]
"""How a source id becomes a connected connector (``SourceRegistry.connector``, or the API's pool)."""
ItemLimit = int | Callable[[DataSourceConnector], int | None] | None


class ItemTooLargeError(ConfigurationError):
    """An item is over the size limit given to :func:`attach_to_thread`."""


class Reference(BaseModel):
    """One thing to attach: an item by path, items by glob, a table, or a query's result (named)."""

    model_config = ConfigDict(extra="forbid")

    source_id: str = Field(min_length=1, max_length=128, description="The source to fetch from.")
    path: str | None = Field(None, min_length=1, description="An item's identifier, as `ls` shows it.")
    glob: str | None = Field(None, min_length=1, description="A glob over identifiers, e.g. 'exports/2026-*.csv'.")
    table: str | None = Field(None, min_length=1, description="A table or view, 'schema.table' (SQL sources).")
    query: str | None = Field(None, min_length=1, description="A read-only SQL query (SQL sources).")
    name: str | None = Field(None, description="The file name of a query's result, without extension.")

    @model_validator(mode="after")
    def _one_kind(self) -> Reference:
        if sum(getattr(self, k) is not None for k in KINDS) != 1:
            raise ValueError("give exactly one of path, glob, table, query")
        if (self.query is None) != (self.name is None):
            raise ValueError("a query needs a name for its file, and only a query takes one")
        if self.name is not None and not RESULT_NAME_PATTERN.fullmatch(self.name):
            raise ValueError("name: 1 to 100 letters, digits, '.', '-', '_', starting with a letter or digit")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def describe(self) -> str:
        """``glob 'exports/*.csv'``: what this reference asks for, short."""
        value = str(getattr(self, self.kind))
        return f"{self.kind} {value if len(value) <= 80 else value[:79] + '…'!r}"


@dataclass(frozen=True)
class AttachedFile:
    """A file now at the top level of the thread's folder, and where it came from."""

    name: str
    source_id: str
    item: str
    version: str | None
    size: int
    row_count: int | None

    def manifest_line(self) -> str:
        amount = f"{self.row_count} rows" if self.row_count is not None else f"{self.size} bytes"
        version = f", version {self.version}" if self.version else ""
        item = self.item if len(self.item) <= 120 else self.item[:119] + "…"  # a long query stays one line
        item = " ".join(item.split())
        return f"- {self.name}: {item} from source {self.source_id}{version}, {amount}"


@dataclass(frozen=True)
class Attachment:
    """What :func:`attach_to_thread` landed."""

    thread_id: str
    files: list[AttachedFile]

    def manifest(self) -> str:
        """A short text for the prompt: each file's name, source, item, version, size or row count."""
        return "\n".join(["Attached data:", *(f.manifest_line() for f in self.files)])


@dataclass
class _Staged:
    path: Path
    record: dict[str, Any]


def check_thread_id(thread_id: object) -> str:
    """``thread_id`` when it is a safe folder name (1-128 letters, digits, ``-``, ``_``; not leading ``-``/``_``).

    Raises:
        ConfigurationError: the id would not name one folder right under the base directory.
    """
    if isinstance(thread_id, str) and THREAD_ID_PATTERN.fullmatch(thread_id):
        return thread_id
    shown = repr(thread_id)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    raise ConfigurationError(
        f"invalid thread id {shown}: 1 to {MAX_THREAD_ID_LENGTH} ASCII letters, digits, '-' and '_', "
        "starting with a letter or digit"
    )


def thread_folder(base_dir: str | os.PathLike[str], thread_id: str) -> Path:
    """``<base_dir>/<thread_id>``, absolute (the id checked first)."""
    return Path(os.path.abspath(base_dir)) / check_thread_id(thread_id)


def parse_references(references: Sequence[Reference | dict[str, Any]]) -> list[Reference]:
    """Validated references (at least one, at most :data:`MAX_REFERENCES`).

    Raises:
        ConfigurationError: naming the reference and what is wrong with it.
    """
    if not references:
        raise ConfigurationError("no references to attach")
    if len(references) > MAX_REFERENCES:
        raise ConfigurationError(f"{len(references)} references; at most {MAX_REFERENCES} at once")
    parsed = []
    for index, reference in enumerate(references):
        try:
            parsed.append(reference if isinstance(reference, Reference) else Reference.model_validate(reference))
        except ValidationError as exc:
            reason = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ConfigurationError(f"reference {index}: {reason}") from None
    return parsed


async def attach_to_thread(
    sources: SourceRegistry | ConnectorFor,
    base_dir: str | os.PathLike[str],
    thread_id: str,
    references: Sequence[Reference | dict[str, Any]],
    max_item_bytes: ItemLimit = None,
) -> Attachment:
    """Fetch ``references`` in parallel to the top level of ``<base_dir>/<thread_id>/``, all or nothing.

    ``sources`` is a :class:`SourceRegistry` (its pooled connectors are used) or a function from a
    source id to a connected connector. ``max_item_bytes`` (a number, or a function of the
    connector) refuses larger items: blobs and files before they are fetched, tables and query
    results once landed.

    Raises:
        ConfigurationError: a bad thread id or reference, or a source that cannot serve it.
        ItemTooLargeError: an item over ``max_item_bytes``.
        DataSourceError: the first reference that failed, with its cause; nothing of this call is left.
    """
    connector_for = sources.connector if isinstance(sources, SourceRegistry) else sources
    limit_of = max_item_bytes if callable(max_item_bytes) else lambda _: max_item_bytes
    parsed = parse_references(references)
    folder = thread_folder(base_dir, thread_id)
    with workspace_root(folder.parent):
        # a task of its own: ending the thread cancels the work, and the caller is told why
        work = asyncio.create_task(_attach(connector_for, folder, parsed, limit_of))
    with _running(folder, work):
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if work.cancelled() and task is not None and not task.cancelling():
                raise WorkspaceError(f"thread {thread_id!r} ended while its data was being attached; "
                                     "nothing was attached") from None
            raise


async def _attach(connector_for: ConnectorFor, folder: Path, references: list[Reference],
                  limit_of: Callable[[DataSourceConnector], int | None]) -> Attachment:
    staging = folder / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
    dir_fd = open_directory(folder.parent, [folder.name], create=True)  # no link followed
    _identities[folder] = _identity(os.fstat(dir_fd))
    os.close(dir_fd)
    try:
        staged = await _stage_all(connector_for, references, staging, limit_of)
        await _publish_or_undo(folder, staged)
    finally:
        await asyncio.shield(asyncio.to_thread(_remove_staging, staging))
    return Attachment(folder.name, [_attached(item.record) for item in staged])


async def _publish_or_undo(folder: Path, staged: list[_Staged]) -> None:
    try:
        await finish_in_thread(partial(publish, folder, staged))
    except asyncio.CancelledError:  # the thread finished the publishing meanwhile: take it back
        for name in [str(i.record["attached_as"]) for i in staged if "attached_as" in i.record]:
            _unpublish(folder, name)
        raise


async def _stage_all(connector_for: ConnectorFor, references: list[Reference], staging: Path,
                     limit_of: Callable[[DataSourceConnector], int | None]) -> list[_Staged]:
    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the others
            tasks = [group.create_task(_stage(connector_for, r, staging / str(i), limit_of))
                     for i, r in enumerate(references)]
    except BaseExceptionGroup as errors:  # the cause, not a group: a typed error first
        raise _first_cause(errors) from None
    return [item for task in tasks for item in task.result()]


def _first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    flat: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending[:0] = list(error.exceptions)
        else:
            flat.append(error)
    return next((e for e in flat if isinstance(e, DataSourceError)), flat[0])


async def _stage(connector_for: ConnectorFor, reference: Reference, workspace: Path,
                 limit_of: Callable[[DataSourceConnector], int | None]) -> list[_Staged]:
    try:
        connector = await connector_for(reference.source_id)
        limit = limit_of(connector)
        paths = await _fetch(connector, reference, str(workspace), limit)
        staged = [_Staged(Path(p), read_provenance(p, workspace)) for p in paths]
        for item in staged:
            shown = None if len(staged) == 1 else str(item.record.get("identifier"))
            _check_size(shown, int(item.record["size"]), limit)
    except DataSourceError as exc:
        raise type(exc)(f"{reference.describe()}: {exc.message}", source_id=reference.source_id,
                        retryable=exc.retryable) from exc
    return staged


def _check_size(item: str | None, size: int | None, limit: int | None) -> None:
    """Refuse ``item`` (None: the one the reference names) when it is over ``limit`` bytes."""
    if limit is not None and size is not None and size > limit:
        raise ItemTooLargeError(f"{'it' if item is None else repr(item)} is {size} bytes, over the limit of {limit}")


async def _fetch(connector: DataSourceConnector, reference: Reference, workspace: str, limit: int | None) -> list[str]:
    if reference.query is not None or reference.table is not None:
        fetch_query = getattr(connector, "fetch_query", None)
        if fetch_query is None:
            raise ConfigurationError(f"a {connector.type_name()} source has no tables and runs no queries")
        if reference.query is not None:
            return [await fetch_query(reference.query, workspace, str(reference.name))]
    if reference.glob is not None:
        identifiers = await _matching(connector, reference.glob, limit)
    else:
        identifiers = [str(reference.path or reference.table)]
        if limit is not None and reference.path is not None:
            size = (await connector.get_metadata(identifiers[0])).get("size")
            _check_size(None, size if isinstance(size, int) else None, limit)
    results = await connector.fetch_many(identifiers, workspace)
    failed = next((r.error for r in results if r.error is not None), None)
    if failed is not None:
        raise failed
    return [str(r.path) for r in results]


async def _matching(connector: DataSourceConnector, pattern: str, limit: int | None) -> list[str]:
    items = [i for i in await connector.list_items() if fnmatch.fnmatchcase(i.path, pattern)]
    for item in items:
        _check_size(item.path, item.size, limit)
    identifiers = [i.path for i in items]
    if not identifiers:
        raise NotFoundError("no item matches")
    if len(identifiers) > MAX_GLOB_MATCHES:
        raise ConfigurationError(f"{len(identifiers)} items match; at most {MAX_GLOB_MATCHES} at once")
    return identifiers


def _remove_staging(staging: Path) -> None:
    # rmtree works by descriptors and never follows a link out of the folder it removes
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staging)


def _attached(record: dict[str, Any]) -> AttachedFile:
    version = record.get("source_version")
    return AttachedFile(
        name=str(record["attached_as"]),
        source_id=str(record["source_id"]),
        item=str(record.get("query") or record["identifier"]),
        version=None if version is None else str(version),
        size=int(record["size"]),
        row_count=record.get("row_count"),
    )


RESERVED_NAMES = (GENERATED_DIR, LINEAGE_DIR)  # DeepAnalyze's output folder, our records
MAX_CANDIDATES = 1000


def folded(name: str) -> str:
    """The key under which a case- or normalization-insensitive file system would store ``name``."""
    return unicodedata.normalize("NFC", name).casefold()


def name_candidates(name: str, source_id: str) -> Iterator[str]:
    """Top-level names for a staged file, best first: its own name, with the source id, then numbered.

    Each fits in :data:`~connectors.landing.names.MAX_FILE_NAME_BYTES` (a long stem is shortened).
    """
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, dot + suffix) if stem else (name, "")
    yield name
    for n in range(1, MAX_CANDIDATES):
        tail = f"-{source_id}{suffix}" if n == 1 else f"-{source_id}-{n}{suffix}"
        yield _shortened(stem, MAX_FILE_NAME_BYTES - len(tail.encode())) + tail


def _shortened(text: str, limit: int) -> str:
    while len(text.encode()) > limit:
        text = text[:-1]
    return text


def publish(folder: Path, staged: list[_Staged]) -> None:
    """Move staged files to the top level of ``folder`` with their records; undo all on any failure."""
    dir_fd = open_directory(folder.parent, [folder.name], create=False)
    taken = {folded(entry) for entry in [*os.listdir(dir_fd), *RESERVED_NAMES]}
    published: list[str] = []
    try:
        for item in staged:
            name = _link_free_name(folder, dir_fd, item, taken)
            published.append(name)
            item.record.update(local_path=str(folder / name), attached_as=name)
            write_provenance(folder, name, item.record)
        os.fsync(dir_fd)
    except BaseException:
        for name in published:
            _unpublish(folder, name)
        raise
    finally:
        os.close(dir_fd)


def _link_free_name(folder: Path, dir_fd: int, item: _Staged, taken: set[str]) -> str:
    relative = item.path.relative_to(folder)
    source_fd = open_directory(folder, list(relative.parts[:-1]), create=False)
    try:
        for name in name_candidates(item.path.name, str(item.record["source_id"])):
            if folded(name) in taken:
                continue
            taken.add(folded(name))
            try:  # a link fails if the name exists: a file that appeared meanwhile is never replaced
                os.link(relative.name, name, src_dir_fd=source_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                continue
            return name
    finally:
        os.close(source_fd)
    raise NameCollisionError(f"no free name for {item.path.name!r} in the thread's folder")


def _unpublish(folder: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        dir_fd = open_directory(folder.parent, [folder.name], create=False)
        try:
            os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    with contextlib.suppress(OSError):
        records = open_directory(folder, [LINEAGE_DIR], create=False)
        try:
            os.unlink(f"{name}.json", dir_fd=records)
        finally:
            os.close(records)


# --- results back to storage ----------------------------------------------------------

PUBLISHED_LOG = "published.jsonl"
MAX_INPUTS_METADATA = 6 * 1024  # of the service's 8 KiB of metadata, what the inputs may take


class UploadNotSupportedError(ConfigurationError):
    """The source's connector cannot upload (only blob storage can)."""


async def publish_generated(
    sources: SourceRegistry | ConnectorFor,
    base_dir: str | os.PathLike[str],
    thread_id: str,
    source_id: str,
    file_name: str,
    blob_name: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Upload ``<base_dir>/<thread_id>/generated/<file_name>`` to source ``source_id``; the record of it.

    The blob (default name ``<thread_id>/<file_name>``) carries metadata naming the thread, the file
    and the lineage of the thread's attached inputs; the record (also appended to
    ``<thread>/.lineage/published.jsonl``) says what was published where.

    Raises:
        UploadNotSupportedError: the source cannot upload.
        NotFoundError: no such generated file. Others as the connector's ``upload`` raises.
    """
    connector_for = sources.connector if isinstance(sources, SourceRegistry) else sources
    folder = thread_folder(base_dir, thread_id)
    relative = safe_relative_path(file_name)
    upload = uploader_of(await connector_for(source_id))
    target = blob_name or f"{thread_id}/{relative}"
    with workspace_root(folder.parent):
        fd = await asyncio.to_thread(_open_generated, folder, relative)
        try:
            metadata = {"da_thread": thread_id, "da_file": quote(relative),
                        **_inputs_metadata(await asyncio.to_thread(_attached_records, folder))}
            uploaded = await upload(fd, target, overwrite=overwrite, metadata=metadata)
        finally:
            os.close(fd)
        record = {"published_at": utc_now_iso(), "thread_id": thread_id, "file": f"{GENERATED_DIR}/{relative}",
                  "source_id": source_id, "overwrite": overwrite, **_facts(uploaded), "metadata": metadata}
        await asyncio.to_thread(_append_record, folder, record)
    return record


def uploader_of(connector: DataSourceConnector) -> Callable[..., Awaitable[Any]]:
    """The connector's ``upload(local_path, blob_name, overwrite=False, metadata=None)``.

    Raises:
        UploadNotSupportedError: the connector has none.
    """
    upload = getattr(connector, "upload", None)
    if upload is None:
        raise UploadNotSupportedError(f"a {connector.type_name()} source does not support upload",
                                      source_id=connector.source_id)
    return upload  # type: ignore[no-any-return]


def _facts(uploaded: Any) -> dict[str, Any]:
    if is_dataclass(uploaded) and not isinstance(uploaded, type):
        return asdict(uploaded)
    return dict(uploaded)


def _open_generated(folder: Path, relative: str) -> int:
    parts = relative.split("/")
    try:
        dir_fd = open_directory(folder.parent, [folder.name, GENERATED_DIR, *parts[:-1]], create=False)
    except FileNotFoundError:
        raise NotFoundError(f"no generated file {relative!r} in thread {folder.name!r}") from None
    try:
        fd = open_regular_file(dir_fd, parts[-1])
    finally:
        os.close(dir_fd)
    if fd is None:
        raise NotFoundError(f"no generated file {relative!r} in thread {folder.name!r} (or not a regular file)")
    return fd


def _attached_records(folder: Path) -> list[dict[str, Any]]:
    """The lineage records of the files attached at the thread's top level (not the agent's files)."""
    try:
        dir_fd = open_directory(folder.parent, [folder.name, LINEAGE_DIR], create=False)
    except FileNotFoundError:
        return []
    try:
        names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".json"))
        records = [_parsed_record(read_regular_file(dir_fd, name)) for name in names]
    finally:
        os.close(dir_fd)
    return [r for r in records if r is not None and r.get("attached_as")]


def _parsed_record(data: bytes | None) -> dict[str, Any] | None:
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _inputs_metadata(records: list[dict[str, Any]]) -> dict[str, str]:
    """``da_inputs``: compact JSON of each input's name, source, item, version and sha256, bounded."""
    inputs = [{"name": r.get("attached_as"), "source_id": r.get("source_id"), "item": r.get("identifier"),
               "version": r.get("source_version"), "sha256": r.get("sha256")} for r in records]
    while inputs:
        text = json.dumps(inputs, separators=(",", ":"), ensure_ascii=True, default=str)
        if len(text) <= MAX_INPUTS_METADATA:
            extra = {"da_inputs_total": str(len(records))} if len(inputs) < len(records) else {}
            return {"da_inputs": text, **extra}
        inputs.pop()
    return {"da_inputs_total": str(len(records))} if records else {}


def _append_record(folder: Path, record: dict[str, Any]) -> None:
    dir_fd = open_directory(folder.parent, [folder.name, LINEAGE_DIR], create=True)
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(PUBLISHED_LOG, flags, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:  # one write of one line: appends of two uploads at once never interleave
        os.write(fd, (json.dumps(record, sort_keys=True, default=str) + "\n").encode())
    finally:
        os.close(fd)


def published_records(base_dir: str | os.PathLike[str], thread_id: str) -> list[dict[str, Any]]:
    """What was published from the thread, oldest first."""
    folder = thread_folder(base_dir, thread_id)
    with workspace_root(folder.parent):
        try:
            dir_fd = open_directory(folder.parent, [folder.name, LINEAGE_DIR], create=False)
        except FileNotFoundError:
            return []
        try:
            data = read_regular_file(dir_fd, PUBLISHED_LOG) or b""
        finally:
            os.close(dir_fd)
    return [json.loads(line) for line in data.splitlines() if line.strip()]


# --- threads that end ----------------------------------------------------------------

_running_attaches: dict[Path, set[asyncio.Task[Any]]] = {}
_identities: dict[Path, tuple[int, int]] = {}  # a running thread's folder as it was: gone or replaced = ended
_last_activity = [time.monotonic()]  # when an attach last ran: the janitor's idle clock


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


@contextlib.contextmanager
def _running(folder: Path, task: asyncio.Task[Any]) -> Iterator[None]:
    tasks = _running_attaches.setdefault(folder, set())
    tasks.add(task)
    try:
        yield
    finally:
        _last_activity[0] = time.monotonic()
        tasks.discard(task)
        if not tasks:
            _running_attaches.pop(folder, None)
            _identities.pop(folder, None)


async def end_thread(base_dir: str | os.PathLike[str], thread_id: str) -> int:
    """The thread ended (its folder removed or expired): cancel its running attaches, sweep what they left.

    Call it from the route that cleans threads up (or let :class:`ThreadJanitor` notice). Each
    cancelled attach removes its own staging folder; then the folder's staging folders and stale
    temporaries are swept, and the folder itself is removed again if a fetch re-created it empty.
    Returns how many attaches were cancelled.
    """
    folder = thread_folder(base_dir, thread_id)
    tasks = list(_running_attaches.get(folder, set()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(_sweep_thread, folder)
    return len(tasks)


def _sweep_thread(folder: Path) -> None:
    with workspace_root(folder.parent):
        try:
            dir_fd = open_directory(folder.parent, [folder.name], create=False)
        except (FileNotFoundError, DataSourceError):
            return  # gone, or not a folder of ours (a link): nothing to sweep
        try:
            stale = [n for n in os.listdir(dir_fd) if n.startswith(STAGING_PREFIX)]
        finally:
            os.close(dir_fd)
        for name in stale:
            _remove_staging(folder / name)
        sweep_workspace(folder)
    with contextlib.suppress(OSError):  # only when empty: a thread folder with files is not ours to remove
        os.rmdir(folder)


def _ended(folder: Path) -> bool:
    """The folder is gone, or another one took its place (removed, then re-created by a late write)."""
    known = _identities.get(folder)
    try:
        return known is not None and _identity(os.lstat(folder)) != known
    except FileNotFoundError:
        return True


class ThreadJanitor:
    """Ends the threads whose folder disappeared, and closes pooled connections after ``idle_seconds``.

    Example:
        >>> async with SourceRegistry("sources.yaml") as registry, ThreadJanitor(registry, "workspace"):
        ...     ...   # serve chat requests; attach_to_thread(registry, "workspace", ...)
    """

    def __init__(self, sources: SourceRegistry | Callable[[], Awaitable[None]], base_dir: str | os.PathLike[str],
                 idle_seconds: float = 300.0, interval: float = 5.0) -> None:
        self._close = sources.aclose if isinstance(sources, SourceRegistry) else sources
        self.base = Path(os.path.abspath(base_dir))
        self.idle_seconds = idle_seconds
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._closed_at = -1.0

    async def tick(self) -> None:
        """One round: end the vanished threads, close idle connections."""
        running = [f for f in list(_running_attaches) if f.parent == self.base]
        ended = await asyncio.to_thread(lambda: [f for f in running if _ended(f)])
        for folder in ended:
            await end_thread(self.base, folder.name)
        idle = time.monotonic() - _last_activity[0]
        if not _running_attaches and idle >= self.idle_seconds and self._closed_at < _last_activity[0]:
            self._closed_at = time.monotonic()
            await self._close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception as exc:  # the janitor keeps going; the next round tries again
                log.warning("thread janitor: %s", exc)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
