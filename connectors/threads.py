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
import os
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError, DataSourceError, NameCollisionError, NotFoundError
from connectors.landing.dirs import open_directory
from connectors.landing.lineage import read_provenance, write_provenance
from connectors.landing.names import LINEAGE_DIR
from connectors.landing.root import workspace_root
from connectors.registry import SourceRegistry

MAX_THREAD_ID_LENGTH = 128
THREAD_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_THREAD_ID_LENGTH - 1}}}")
RESULT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
STAGING_PREFIX = ".da-attach-"
MAX_REFERENCES = 100
MAX_GLOB_MATCHES = 1000
KINDS = ("path", "glob", "table", "query")

ConnectorFor = Callable[[str], Awaitable[DataSourceConnector]]
"""How a source id becomes a connected connector (``SourceRegistry.connector``, or the API's pool)."""


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
) -> Attachment:
    """Fetch ``references`` in parallel to the top level of ``<base_dir>/<thread_id>/``, all or nothing.

    ``sources`` is a :class:`SourceRegistry` (its pooled connectors are used) or a function from a
    source id to a connected connector.

    Raises:
        ConfigurationError: a bad thread id or reference, or a source that cannot serve it.
        DataSourceError: the first reference that failed, with its cause; nothing of this call is left.
    """
    connector_for = sources.connector if isinstance(sources, SourceRegistry) else sources
    parsed = parse_references(references)
    folder = thread_folder(base_dir, thread_id)
    staging = folder / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
    with workspace_root(folder.parent), _running(folder):
        os.close(open_directory(folder.parent, [folder.name], create=True))  # no link followed
        try:
            staged = await _stage_all(connector_for, parsed, staging)
            await asyncio.to_thread(publish, folder, staged)
        finally:
            await asyncio.shield(asyncio.to_thread(_remove_staging, staging))
    return Attachment(folder.name, [_attached(item.record) for item in staged])


async def _stage_all(connector_for: ConnectorFor, references: list[Reference], staging: Path) -> list[_Staged]:
    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the others
            tasks = [group.create_task(_stage(connector_for, r, staging / str(i))) for i, r in enumerate(references)]
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


async def _stage(connector_for: ConnectorFor, reference: Reference, workspace: Path) -> list[_Staged]:
    try:
        connector = await connector_for(reference.source_id)
        paths = await _fetch(connector, reference, str(workspace))
    except DataSourceError as exc:
        raise type(exc)(f"{reference.describe()}: {exc.message}", source_id=reference.source_id) from exc
    return [_Staged(Path(p), read_provenance(p, workspace)) for p in paths]


async def _fetch(connector: DataSourceConnector, reference: Reference, workspace: str) -> list[str]:
    if reference.query is not None or reference.table is not None:
        fetch_query = getattr(connector, "fetch_query", None)
        if fetch_query is None:
            raise ConfigurationError(f"a {connector.type_name()} source has no tables and runs no queries")
        if reference.query is not None:
            return [await fetch_query(reference.query, workspace, str(reference.name))]
    if reference.glob is not None:
        identifiers = await _matching(connector, reference.glob)
    else:
        identifiers = [str(reference.path or reference.table)]
    results = await connector.fetch_many(identifiers, workspace)
    failed = next((r.error for r in results if r.error is not None), None)
    if failed is not None:
        raise failed
    return [str(r.path) for r in results]


async def _matching(connector: DataSourceConnector, pattern: str) -> list[str]:
    identifiers = [i.path for i in await connector.list_items() if fnmatch.fnmatchcase(i.path, pattern)]
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


def readable_name(name: str, source_id: str, taken: set[str]) -> str:
    """The top-level name for a staged file: its own name, else with the source id, else numbered.

    ``taken`` holds the case-folded names already in use (a case-insensitive file system folds them).
    """
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, dot + suffix) if stem else (name, "")
    candidates = [name, f"{stem}-{source_id}{suffix}"]
    candidates += [f"{stem}-{source_id}-{n}{suffix}" for n in range(2, 1000)]
    for candidate in candidates:
        if candidate.casefold() not in taken and len(candidate.encode()) <= 250:
            return candidate
    raise NameCollisionError(f"no free name for {name!r} in the thread's folder")


def publish(folder: Path, staged: list[_Staged]) -> None:
    """Move staged files to the top level of ``folder`` with their records; undo all on any failure."""
    dir_fd = open_directory(folder.parent, [folder.name], create=False)
    taken = {entry.casefold() for entry in os.listdir(dir_fd)}
    published: list[str] = []
    try:
        for item in staged:
            name = readable_name(item.path.name, str(item.record["source_id"]), taken)
            taken.add(name.casefold())
            _link_into(folder, dir_fd, item.path, name)
            published.append(name)
            item.record.update(local_path=str(folder / name), attached_as=name)
            write_provenance(folder, name, item.record)
        os.fsync(dir_fd)
    except BaseException:
        for name in published:
            _unpublish(folder, dir_fd, name)
        raise
    finally:
        os.close(dir_fd)


def _link_into(folder: Path, dir_fd: int, staged: Path, name: str) -> None:
    relative = staged.relative_to(folder)
    source_fd = open_directory(folder, list(relative.parts[:-1]), create=False)
    try:  # a link fails if the name exists: an agent's file of the same name is never replaced
        os.link(relative.name, name, src_dir_fd=source_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise NameCollisionError(f"{name!r} appeared in the thread's folder meanwhile; nothing attached") from None
    finally:
        os.close(source_fd)


def _unpublish(folder: Path, dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
    with contextlib.suppress(OSError):
        records = open_directory(folder, [LINEAGE_DIR], create=False)
        try:
            os.unlink(f"{name}.json", dir_fd=records)
        finally:
            os.close(records)


# --- threads that end ----------------------------------------------------------------

_running_attaches: dict[Path, set[asyncio.Task[Any]]] = {}


@contextlib.contextmanager
def _running(folder: Path) -> Any:
    task = asyncio.current_task()
    tasks = _running_attaches.setdefault(folder, set())
    if task is not None:
        tasks.add(task)
    try:
        yield
    finally:
        tasks.discard(task)  # type: ignore[arg-type]
        if not tasks:
            _running_attaches.pop(folder, None)
