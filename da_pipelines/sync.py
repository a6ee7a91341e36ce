"""Syncing a source into its workspace folder: plain async functions, no Dagster.

``sync_source`` lists (or takes a requested list of items), skips each item
whose landed lineage record already has the listed version, fetches the rest
a chunk at a time, and yields every landed record as soon as it lands (the
Dagster layer turns it into a materialization at once, so a failure later in
the run loses no record of what landed). One item failing
does not stop the others; the failures come back in the report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConnector
from connectors.errors import DataSourceError, UnsafeNameError
from connectors.landing.lineage import find_provenance, read_provenance, read_record, run_context
from connectors.landing.names import safe_relative_path
from connectors.landing.progress import ProgressCallback, on_progress
from da_pipelines.cursor import item_version

# Types whose items land at <workspace>/<identifier>: their record is found without a scan.
_LANDS_AT_IDENTIFIER = frozenset({"local_file", "azure_blob"})
CHUNK = 64  # items fetched per fetch_many call: materializations stream, memory stays bounded


@dataclass(frozen=True)
class ItemRequest:
    """One item to sync: its identifier and the version the listing showed."""

    identifier: str
    version: str


@dataclass
class SyncReport:
    """What a sync did."""

    landed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[DataSourceError] = field(default_factory=list)


class LineageIndex:
    """The lineage records of one source's landed items, looked up by identifier."""

    def __init__(self, folder: Path, source_id: str, type_name: str) -> None:
        self.folder = folder
        self.source_id = source_id
        self._direct = type_name in _LANDS_AT_IDENTIFIER
        self._scanned: dict[str, dict[str, Any]] | None = None

    def get(self, identifier: str) -> dict[str, Any] | None:
        """The record of ``identifier``, or None when it never landed."""
        if self._direct:
            return self._direct_record(identifier)
        if self._scanned is None:  # names like "schema.table.csv": one scan per sync
            self._scanned = {
                str(r["identifier"]): r for r in find_provenance(self.folder, source_id=self.source_id)
            }
        return self._scanned.get(identifier)

    def _direct_record(self, identifier: str) -> dict[str, Any] | None:
        try:
            record = read_record(self.folder, safe_relative_path(identifier))
        except UnsafeNameError:
            return None  # the fetch will refuse it with the proper error
        if record and (record.get("source_id"), record.get("identifier")) == (self.source_id, identifier):
            return record
        return None


def needs_fetch(version: str, record: dict[str, Any] | None) -> bool:
    """Whether an item of ``version`` must be fetched, given its landed record (if any)."""
    return record is None or str(record.get("source_version")) != version


async def list_requests(connector: DataSourceConnector) -> list[ItemRequest]:
    """Every item of a connected source, as requests at its current version."""
    return [ItemRequest(item.path, item_version(item)) for item in await connector.list_items()]


async def sync_source(
    connector: DataSourceConnector,
    folder: Path,
    requested: Sequence[ItemRequest] | None = None,
    *,
    report: SyncReport,
    run_id: str | None = None,
    on_bytes: ProgressCallback | None = None,
    on_item_done: Callable[[], None] = lambda: None,
    on_planned: Callable[[int], None] = lambda count: None,
    concurrency: int = 8,
) -> AsyncIterator[dict[str, Any]]:
    """Fetch the new or changed items of a source into ``folder``; yield each landed item's record.

    Args:
        connector: a connector of the source, not yet connected.
        folder: the source's workspace folder (``<root>/<source id>``).
        requested: the items to sync; None lists the source and syncs everything.
        report: filled with what was landed, skipped and what failed (failures do not stop the rest).
        run_id: recorded in the lineage records (the Dagster run).
        on_bytes: progress listener for the bytes landed.
        on_item_done: called once per item (landed, skipped or failed), for progress.
        on_planned: called with the number of items once they are known.
        concurrency: fetches at once.
    """
    async with connector:
        wanted = list(requested) if requested is not None else await list_requests(connector)
        on_planned(len(wanted))
        todo = _to_fetch(wanted, LineageIndex(folder, connector.source_id, connector.config.type_name), report)
        for _ in report.skipped:
            on_item_done()
        for chunk in _chunks(todo, CHUNK):
            # context variables are set around each await: a caller may resume this generator
            # from a different task (Dagster does), which would not see values set across a yield
            with run_context(run_id), on_progress(on_bytes):
                results = await connector.fetch_many(chunk, str(folder), concurrency=concurrency)
            for result in results:
                on_item_done()
                if result.error is not None:
                    report.failed.append(result.error)
                    continue
                assert result.path is not None
                record = read_provenance(result.path, folder)
                report.landed.append(record)
                yield record


def _to_fetch(wanted: Sequence[ItemRequest], index: LineageIndex, report: SyncReport) -> list[str]:
    """The identifiers whose landed version differs from the wanted one; the rest go to ``skipped``."""
    todo = []
    for request in wanted:
        if needs_fetch(request.version, index.get(request.identifier)):
            todo.append(request.identifier)
        else:
            report.skipped.append(request.identifier)
    return todo


async def fetch_one(connector: DataSourceConnector, folder: Path, identifier: str) -> dict[str, Any]:
    """Fetch one item unconditionally (an explicit request) and return its lineage record."""
    async with connector:
        path = await connector.fetch_data(identifier, str(folder))
    return read_provenance(path, folder)


def _chunks(values: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])
