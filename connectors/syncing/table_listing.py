"""The listing state of a table source: which tables exist, kept so that assets exist before any sync.

The code location needs the tables of a PostgreSQL source to define one asset
per table. Listing on every load would make every run process connect to the
database first, so the listing is kept as *state*: a small JSON file (for the
sources file: ``<workspace>/.da_sources/state/<source id>.json``; for the
component: Dagster's defs state, refreshed by ``dg utils refresh-defs-state``).

A refresh that fails keeps the last good state and records why, so a database
that is down for a moment never makes assets disappear; the caller logs the
reason and shows it on the source's ``remote`` asset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import DataItem, DataSourceConfig
from connectors.errors import DataSourceError
from connectors.landing.dirs import open_directory
from connectors.landing.lineage import utc_now_iso
from connectors.plugins import get_connector_class
from connectors.secrets.references import redact
from connectors.syncing.aio import run_coroutine

log = logging.getLogger("da_pipelines")
STATE_VERSION = 1
LIST_TIMEOUT_SECONDS = 30.0


@dataclass
class ListingState:
    """The tables of a source as last listed, and the last refresh's error (None when it worked)."""

    tables: list[dict[str, Any]] | None = None
    listed_at: str | None = None
    error: str | None = None
    version: int = STATE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The state as JSON text.

        Returns:
            What :meth:`from_json` reads back.
        """
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ListingState:
        """A state from :meth:`to_json`.

        Args:
            text: The state file's text.

        Returns:
            The state; unreadable text gives an empty state saying so.
        """
        try:
            raw = json.loads(text)
            return cls(tables=raw.get("tables"), listed_at=raw.get("listed_at"), error=raw.get("error"))
        except (ValueError, AttributeError):
            return cls(error="the stored listing state is unreadable")


def table_entry(item: DataItem) -> dict[str, Any]:
    """What the state keeps of one listed table: enough for its asset (no data, no secret).

    Args:
        item: A listed table.

    Returns:
        Its identifier, schema, table, kind, columns and comment, as plain JSON values.
    """
    meta = item.metadata
    return {"identifier": item.path, "schema": meta.get("schema"), "table": meta.get("table", item.name),
            "kind": meta.get("kind", "table"), "columns": meta.get("columns") or [],
            "comment": meta.get("comment")}


async def list_tables(source: DataSourceConfig) -> list[dict[str, Any]]:
    """The tables and views of ``source``, as state entries.

    Args:
        source: A table source's entry.

    Returns:
        One :func:`table_entry` per table or view, in listing order.
    """
    async with get_connector_class(source.type_name)(source) as connector:
        items = await asyncio.wait_for(connector.list_items(), LIST_TIMEOUT_SECONDS)
    return [table_entry(item) for item in items]


def refreshed(source: DataSourceConfig, previous: ListingState | None) -> ListingState:
    """A new state from listing ``source`` now.

    Args:
        source: A table source's entry.
        previous: The state before, kept when the listing fails; None when there is none.

    Returns:
        The new state; on failure the previous tables with the error.
    """
    try:
        tables = run_coroutine(list_tables(source))
    except (DataSourceError, OSError, TimeoutError) as exc:
        why = f"listing the tables failed at {utc_now_iso()}: {redact(str(exc)) or type(exc).__name__}"
        log.warning("source %r: %s; keeping the last good listing", source.id, why)
        kept = previous.tables if previous else None
        return ListingState(tables=kept, listed_at=previous.listed_at if previous else None, error=why)
    return ListingState(tables=tables, listed_at=utc_now_iso())


def state_file(root: Path, source_id: str) -> Path:
    """Where the sources-file code location keeps ``source_id``'s listing state.

    Args:
        root: The workspace root.
        source_id: The source's id.

    Returns:
        ``<root>/.da_sources/state/<source_id>.json``.
    """
    return root / ".da_sources" / "state" / f"{source_id}.json"


def cached_state(source: DataSourceConfig, path: Path, ttl_seconds: int) -> ListingState:
    """The state at ``path``, refreshed first when missing or older than ``ttl_seconds``.

    Args:
        source: A table source's entry.
        path: Its state file (:func:`state_file`).
        ttl_seconds: How long a listing is used before the source is listed again (a failed one too).

    Returns:
        The state: its tables, and the error of its last listing if that failed.
    """
    previous = ListingState.from_json(path.read_text()) if path.is_file() else None
    if previous is not None and time.time() - path.stat().st_mtime < ttl_seconds:
        return previous  # a failed listing is retried after the TTL too: loads never wait on a dead server
    state = refreshed(source, previous)
    write_atomically(path, state.to_json(), root=path.parent.parent.parent)
    return state


def write_atomically(path: Path, text: str | Iterable[str], root: Path | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary and a rename (readers never see half a file).

    Args:
        path: The file to write.
        text: A string, or strings written one after another.
        root: A workspace folder above ``path``: every folder below it is then opened without
            following links, as the landing does.
    """
    base = root if root is not None else path.parent
    parts = list(path.parent.relative_to(base).parts)
    dir_fd = open_directory(base, parts, create=True)
    temp = f".tmp-{uuid.uuid4().hex}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
        with os.fdopen(fd, "w") as handle:
            handle.writelines([text] if isinstance(text, str) else text)
        os.rename(temp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    finally:
        os.close(dir_fd)
