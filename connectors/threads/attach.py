"""Attaching references to a thread: staged in parallel, published at the top level under free names, all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fnmatch
import hashlib
import inspect
import os
import re
import stat
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError, DataSourceError, NotFoundError, SizeLimitError
from connectors.landing.atomic import landing_byte_cap
from connectors.landing.dirs import finish_in_thread, open_directory
from connectors.landing.lineage import read_provenance
from connectors.landing.names import unsafe_text_reason
from connectors.landing.root import workspace_root
from connectors.registry import SourceRegistry
from connectors.rows import RowBudget, RowOptions
from connectors.threads.ending import (
    ThreadEndedError,
    cancel_when_ended,
    remember_folder,
    sweep_thread,
    thread_ended,
    tracked,
)
from connectors.threads.folders import ConnectorFor, UnknownThreadError, remove_staging, thread_folder
from connectors.threads.manifest import columns_text, sized_text
from connectors.threads.placing import NEW, REPLACED, UNCHANGED, Staged, folded, name_candidates, place_all, undo
from connectors.threads.records import ThreadRecords, default_state_dir

__all__ = [
    "MAX_REFERENCES", "AttachedFile", "Attachment", "ItemTooLargeError", "Reference", "attach_to_thread",
    "attached_files", "folded", "listings_from", "name_candidates", "parse_references",
]  # folded and name_candidates are re-exported: they lived here

RESULT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_REFERENCES = 100
MAX_GLOB_MATCHES = 1000
# (connector, glob) -> the (identifier, listed size) of the items that may match it (a superset is fine)
Lister = Callable[[DataSourceConnector, str], AsyncIterator[tuple[str, int | None]]]
_lister: contextvars.ContextVar[Lister | None] = contextvars.ContextVar("da_attach_lister", default=None)


@contextlib.contextmanager
def listings_from(lister: Lister) -> Iterator[None]:
    """Globs of the attaches made inside this block match over ``lister(connector, glob)`` (e.g. a shared cache).

    Args:
        lister: Gives the (identifier, listed size) of a connector's items that may match a glob (the
            HTTP API's cached listing, read a batch at a time).

    Returns:
        A context manager; the lister is used inside its block.
    """
    token = _lister.set(lister)
    try:
        yield
    finally:
        _lister.reset(token)
KINDS = ("path", "glob", "table", "query")

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
    columns: list[str] | None = Field(None, min_length=1, max_length=1600,
                                      description="Tables and queries: only these columns, in this order.")
    where: str | None = Field(None, min_length=1, max_length=10000,
                              description="Tables and queries: a SQL condition over the columns ('status = %s'), "
                              "guarded like a query; it may not read other tables.")
    params: list[Any] | dict[str, Any] | None = Field(None, description="Values bound to the where's placeholders.")
    limit: int | None = Field(None, ge=0, description="At most this many rows (tables: by primary key; "
                              "CSV/Parquet files: the first ones).")
    sample: float | None = Field(None, gt=0, description="A fraction (0 < x < 1) or a number of rows, "
                                 "chosen reproducibly by seed.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="The sample's seed: same seed and data, same rows.")

    @model_validator(mode="after")
    def _one_kind(self) -> Reference:
        if sum(getattr(self, k) is not None for k in KINDS) != 1:
            raise ValueError("give exactly one of path, glob, table, query")
        if self.kind in ("path", "glob") and (self.columns is not None or self.where is not None):
            raise ValueError("columns and where apply to tables and queries; a file takes limit and sample")
        for field in ("path", "glob", "table"):  # a query's SQL may span lines; its file name has a rule below
            reason = unsafe_text_reason(getattr(self, field) or "")
            if reason:
                raise ValueError(f"{field} {reason}")
        if (self.query is None) != (self.name is None):
            raise ValueError("a query needs a name for its file, and only a query takes one")
        if self.name is not None and not RESULT_NAME_PATTERN.fullmatch(self.name):
            raise ValueError("name: 1 to 100 letters, digits, '.', '-', '_', starting with a letter or digit")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def row_options(self) -> RowOptions:
        """The sizing options of a table or query.

        Returns:
            Its columns, where, params, limit, sample and seed, as a fetch takes them.
        """
        return RowOptions(columns=self.columns, where=self.where, params=self.params, limit=self.limit,
                          sample=self.sample, seed=self.seed)

    def describe(self) -> str:
        """What this reference asks for, short, for a message.

        Returns:
            The kind and its value, at most 80 characters of it: ``glob 'exports/*.csv'``.
        """
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
    profile: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    status: str = NEW  # "attached" (a new file), "unchanged" (already there), "replaced" (our older copy)
    wanted: str | None = None  # the file's own name, when another file has it (``name`` is then unique)
    parts: int | None = None  # a dataset folder of Parquet parts: how many (None: one file)

    def manifest_line(self) -> str:
        """The file's entry in the manifest.

        Returns:
            ``- name: item from source s, version v, N rows``, then a line of its columns when profiled.
        """
        amount = f"{self.row_count} rows" if self.row_count is not None else f"{self.size} bytes"
        if self.row_count is not None and self.profile is not None:
            amount += f", {self.size} bytes"
        version = f", version {self.version.strip(chr(34))}" if self.version else ""  # an etag without its quotes
        item = self.item if len(self.item) <= 120 else self.item[:119] + "…"  # a long query stays one line
        item = " ".join(item.split())
        sized = f" ({sized_text(self.options)})" if self.options else ""
        folder = f", a folder of {self.parts} Parquet parts read as one table" if self.parts is not None else ""
        line = f"- {self.name}: {item}{sized} from source {self.source_id}{version}, {amount}{folder}{self._note()}"
        columns = columns_text(self.profile)
        return f"{line}\n  {columns}" if columns else line

    def _note(self) -> str:
        if self.status == UNCHANGED:
            return " (already attached, unchanged)"
        if self.status == REPLACED:
            return " (replaces the earlier version of this file)"
        return f" (named so: {self.wanted} is another file)" if self.wanted else ""


@dataclass(frozen=True)
class Attachment:
    """What :func:`attach_to_thread` landed."""

    thread_id: str
    files: list[AttachedFile]

    def manifest(self) -> str:
        """A short text for the prompt: each file's name, source, item, version, size or row count.

        Returns:
            ``Attached data:`` and one entry per file (see :meth:`AttachedFile.manifest_line`).
        """
        return "\n".join(["Attached data:", *(f.manifest_line() for f in self.files)])


def parse_references(references: Sequence[Reference | dict[str, Any]]) -> list[Reference]:
    """Validated references (at least one, at most :data:`MAX_REFERENCES`).

    Args:
        references: References, or their JSON objects (hostile input).

    Returns:
        The references, validated, in order.

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
            reason = "; ".join(_problem(e) for e in exc.errors())
            raise ConfigurationError(f"reference {index}: {reason}") from None
    return parsed


def _problem(error: Any) -> str:
    # the field and what is wrong with it; never the value, which may be a long query
    field = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


async def attach_to_thread(
    sources: SourceRegistry | ConnectorFor,
    base_dir: str | os.PathLike[str],
    thread_id: str,
    references: Sequence[Reference | dict[str, Any]],
    max_item_bytes: ItemLimit = None,
    *,
    create: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    budget: RowBudget | None = None,
) -> Attachment:
    """Fetch ``references`` in parallel to the top level of ``<base_dir>/<thread_id>/``, all or nothing.

    ``sources`` is a :class:`SourceRegistry` (its pooled connectors are used) or a function from a
    source id to a connected connector. ``max_item_bytes`` (a number, or a function of the
    connector) refuses larger items: blobs and files before they are fetched, tables and query
    results once landed. The thread's folder must exist unless ``create`` is set. Its records
    (lineage, staging, lock) go to ``state_dir`` (default: ``$DA_STATE_DIR``, else
    ``da-sources-state`` beside the registry's sources file, or ``$DA_SOURCES_FILE``), never into
    the thread's folder. An item already
    attached at the same version answers the file already there; a newer version replaces our own
    unmodified copy only (see :mod:`connectors.threads.placing`).

    Args:
        sources: A registry, or a function from source id to a connected connector.
        base_dir: DeepAnalyze's workspace folder.
        thread_id: The thread (hostile input: checked).
        references: What to attach (see :class:`Reference`).
        max_item_bytes: The largest item in bytes, or a function of the connector giving it; None: no limit.
        create: Create the thread's folder when it is missing.
        state_dir: Where the thread's records go; None for the default.
        budget: A shared budget of rows for the tables and queries, or None.

    Returns:
        The files now at the top of the thread's folder; ``manifest()`` is the text for the prompt.

    Raises:
        UnknownThreadError: the thread's folder does not exist (and ``create`` is not set).
        ConfigurationError: a bad thread id or reference, a source that cannot serve it, or a state
            folder under ``base_dir``.
        ItemTooLargeError: an item over ``max_item_bytes``.
        DataSourceError: the first reference that failed, with its cause; nothing of this call is left.
    """
    connector_for = sources.connector if isinstance(sources, SourceRegistry) else sources
    limit_of = max_item_bytes if callable(max_item_bytes) else lambda _: max_item_bytes
    parsed = parse_references(references)
    folder = thread_folder(base_dir, thread_id)
    if state_dir is None and isinstance(sources, SourceRegistry):
        state_dir = default_state_dir(sources.path)  # beside the registry's own sources file
    records = ThreadRecords.of(base_dir, thread_id, state_dir)
    with workspace_root(records.state_dir):  # the fetches land in our staging folder, in the state folder
        # a task of its own: ending the thread cancels the work, and the caller is told why
        work = asyncio.create_task(_attach(connector_for, folder, records, parsed, limit_of, create, budget))
    with tracked(folder, work):
        watcher = asyncio.create_task(cancel_when_ended(folder, work))
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if work.cancelled() and task is not None and not task.cancelling():
                raise await _swept_after_end(folder, records) from None
            raise
        except DataSourceError:
            # a fetch may meet the removed folder before the watcher does: the thread's end is the cause
            if await asyncio.to_thread(thread_ended, folder):
                raise await _swept_after_end(folder, records) from None
            raise
        finally:
            watcher.cancel()


async def _swept_after_end(folder: Path, records: ThreadRecords) -> ThreadEndedError:
    """Sweep what an ended thread's attach left; the error that says why it stopped."""
    await asyncio.to_thread(sweep_thread, folder, records)
    return ThreadEndedError(f"thread {folder.name!r} ended while its data was being attached; nothing was attached")


def _open_thread_folder(folder: Path, create: bool) -> os.stat_result:
    """The thread folder's identity (created first when ``create``); no link followed."""
    try:
        dir_fd = open_directory(folder.parent, [folder.name], create=create)
    except FileNotFoundError:
        raise UnknownThreadError(f"unknown or ended thread {folder.name!r}: no such thread folder") from None
    try:
        return os.fstat(dir_fd)
    finally:
        os.close(dir_fd)


async def _attach(connector_for: ConnectorFor, folder: Path, records: ThreadRecords, references: list[Reference],
                  limit_of: Callable[[DataSourceConnector], int | None], create: bool,
                  budget: RowBudget | None) -> Attachment:
    remember_folder(folder, await asyncio.to_thread(_open_thread_folder, folder, create))
    staging = await asyncio.to_thread(records.new_staging)
    try:
        staged = await _stage_all(connector_for, references, staging, limit_of, budget)
        await _publish_or_undo(folder, records, staged)
    finally:
        await asyncio.shield(asyncio.to_thread(remove_staging, staging))
    return Attachment(folder.name, [_attached(item) for item in staged])


async def _publish_or_undo(folder: Path, records: ThreadRecords, staged: list[Staged]) -> None:
    try:
        await finish_in_thread(partial(place_all, folder, records, staged))
    except asyncio.CancelledError:  # the thread finished the placing meanwhile: take it back
        await asyncio.to_thread(undo, folder, records, staged)
        raise


async def _stage_all(connector_for: ConnectorFor, references: list[Reference], staging: Path,
                     limit_of: Callable[[DataSourceConnector], int | None],
                     budget: RowBudget | None) -> list[Staged]:
    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the others
            tasks = [group.create_task(_stage(connector_for, r, staging / str(i), limit_of, budget))
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
                 limit_of: Callable[[DataSourceConnector], int | None],
                 budget: RowBudget | None) -> list[Staged]:
    try:
        connector = await connector_for(reference.source_id)
        limit = limit_of(connector)
        try:
            with landing_byte_cap(limit):  # a query's or table's size is known only while it streams
                paths = await _fetch(connector, reference, str(workspace), limit, budget)
        except SizeLimitError:
            raise ItemTooLargeError(f"it is over the limit of {limit} bytes (stopped while streaming)") from None
        staged = [Staged(Path(p), read_provenance(p, workspace)) for p in paths]
        if reference.kind in ("path", "glob"):
            await asyncio.to_thread(_size_files, staged, reference)
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


def _takes(function: Any, keyword: str) -> bool:
    """Whether ``function`` (a plugin's fetch_query, say) accepts ``keyword``: older ones do not."""
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _size_files(staged: list[Staged], reference: Reference) -> None:
    """Cut fetched CSV/Parquet files to ``limit``/``sample`` and profile them, updating their records."""
    # imported here: they load pyarrow (~0.5 s of CPU), which a CLI command that attaches nothing never needs
    from connectors.file_rows import check_cuttable, cut_rows
    from connectors.profiling import profile_file

    for item in staged:
        if reference.limit is not None or reference.sample is not None:
            check_cuttable(item.path.name)
            rows = cut_rows(item.path, reference.limit, reference.sample, reference.seed)
            info = item.path.stat()
            item.record.update(row_count=rows, size=info.st_size, sha256=_sha256(item.path),
                               source_size=item.record.get("size"),
                               options=reference.row_options().model_dump(include={"limit", "sample", "seed"},
                                                                           exclude_none=True))
        profile = profile_file(item.path)
        if profile is not None:
            item.record["profile"] = profile
            item.record.setdefault("row_count", profile.get("rows"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _fetch(connector: DataSourceConnector, reference: Reference, workspace: str, limit: int | None,
                 budget: RowBudget | None = None) -> list[str]:
    if reference.query is not None or reference.table is not None:
        fetch_query = getattr(connector, "fetch_query", None)
        if fetch_query is None:
            raise ConfigurationError(f"a {connector.type_name()} source has no tables and runs no queries")
        options = reference.row_options()
        sized = not options.is_empty() or budget is not None
        if not options.is_empty() and not _takes(fetch_query, "options"):
            raise ConfigurationError(f"a {connector.type_name()} source cannot cut a table or query into rows")
        if reference.query is not None:
            if sized and _takes(fetch_query, "budget"):
                return [await fetch_query(reference.query, workspace, str(reference.name), options=options,
                                          budget=budget)]
            return [await fetch_query(reference.query, workspace, str(reference.name))]
        fetch_table = getattr(connector, "fetch_table", None)
        if sized and fetch_table is not None and _takes(fetch_table, "budget"):
            return [await fetch_table(str(reference.table), workspace, options, budget=budget)]
        if not options.is_empty():
            raise ConfigurationError(f"a {connector.type_name()} source cannot cut a table into rows")
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
    """The identifiers ``pattern`` matches: only matches are held, and the listing stops at the first match
    past the cap (streamed from the connector, or read from the shared listing ``listings_from`` gives)."""
    identifiers: list[str] = []
    async for path, size in _listing(connector, pattern):
        if not fnmatch.fnmatchcase(path, pattern):
            continue
        _check_size(path, size, limit)
        identifiers.append(path)
        if len(identifiers) > MAX_GLOB_MATCHES:
            raise ConfigurationError(f"more than {MAX_GLOB_MATCHES} items match; at most {MAX_GLOB_MATCHES} at once")
    if not identifiers:
        raise NotFoundError("no item matches")
    return identifiers


async def _listing(connector: DataSourceConnector, pattern: str) -> AsyncIterator[tuple[str, int | None]]:
    """The shared listing when one is set (read a batch at a time), else the connector's, streamed."""
    lister = _lister.get()
    if lister is None:
        async for item in connector.iter_items():
            yield item.path, item.size
        return
    async for found in lister(connector, pattern):
        yield found


def _attached(item: Staged) -> AttachedFile:
    return _attached_file(item.record, item.status, item.wanted)


def _present(path: Path, record: dict[str, Any]) -> bool:
    """A regular file, or a folder for a dataset's record (placed whole), not reached through a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(mode) if isinstance(record.get("parts"), list) else stat.S_ISREG(mode)


def _attached_file(record: dict[str, Any], status: str = NEW, wanted: str | None = None) -> AttachedFile:
    """The :class:`AttachedFile` a thread's lineage record describes."""
    version = record.get("source_version")
    profile, options = record.get("profile"), record.get("options")
    return AttachedFile(
        name=str(record["attached_as"]),
        source_id=str(record["source_id"]),
        item=str(record.get("query") or record["identifier"]),
        version=None if version is None else str(version),
        size=int(record["size"]),
        row_count=record.get("row_count"),
        profile=profile if isinstance(profile, dict) else None,
        options=options if isinstance(options, dict) else None,
        status=status,
        wanted=wanted,
        parts=len(record["parts"]) if isinstance(record.get("parts"), list) else None,
    )


def attached_files(base_dir: str | os.PathLike[str], thread_id: str,
                   state_dir: str | os.PathLike[str] | None = None) -> Attachment:
    """What is attached to the thread now (from our records), with its manifest; files since removed are left out.

    Args:
        base_dir: DeepAnalyze's workspace folder.
        thread_id: The thread (hostile input: checked).
        state_dir: Where the thread's records are; None for the default.

    Returns:
        The attached files still in the thread's folder.

    Raises:
        ConfigurationError: ``thread_id`` is not a valid thread id.
        UnknownThreadError: the thread's folder does not exist.
    """
    folder = thread_folder(base_dir, thread_id)
    if not folder.is_dir():
        raise UnknownThreadError(f"unknown or ended thread {thread_id!r}: no such thread folder")
    records = ThreadRecords.of(base_dir, thread_id, state_dir)
    present = [r for r in records.attached() if _present(folder / str(r["attached_as"]), r)]
    return Attachment(thread_id, [_attached_file(r) for r in present])
