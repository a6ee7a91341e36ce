"""``da-sources ls | fetch | lineage``: items of a source, landing them, where a file came from."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConnector, FetchResult
from connectors.checked_fetch import CheckedResult, fetch_many_checked
from connectors.cli.common import (
    EXIT_FAILURE,
    PROG,
    WORKSPACE_ENV,
    UsageError,
    bounded,
    human_size,
    iso_time,
    open_registry,
    print_json,
    print_table,
    source_id_arg,
)
from connectors.cli.progress_bar import ProgressBar
from connectors.cli.selection import expand_selection, is_selection
from connectors.cli.sizing import add_sizing_arguments, add_sync_table_command, fetch_sized, row_options
from connectors.environment import read
from connectors.landing.lineage import read_provenance
from connectors.landing.progress import on_progress
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.plugins import get_connector_class
from connectors.rows import RowOptions
from connectors.secrets.references import redact
from connectors.syncing.source_sync import SyncReport, excluded_by, sync_options, sync_source

__all__ = ["add_commands"]


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``ls``, ``fetch``, ``sync-table`` and ``lineage`` to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    command = commands.add_parser("ls", parents=[as_json], help="list the items of a source")
    command.add_argument("id", type=source_id_arg)
    command.add_argument("path", nargs="?", help="only items under this folder / prefix")
    command.set_defaults(handler=cmd_ls)
    _add_fetch_command(commands, as_json)
    add_sync_table_command(commands, as_json)
    command = commands.add_parser("lineage", parents=[as_json], help="where a landed file came from")
    command.add_argument("path")
    command.set_defaults(handler=cmd_lineage)


def _add_fetch_command(commands: Any, as_json: argparse.ArgumentParser) -> None:
    command = commands.add_parser("fetch", parents=[as_json], help="land items in the workspace")
    command.add_argument("id", type=source_id_arg)
    command.add_argument("identifiers", nargs="*", metavar="IDENTIFIER",
                         help="items to fetch (see 'ls'); 'folder/' fetches everything under it, "
                              "a glob ('raw/2024/*.csv', '**' for any depth) the matching items")
    command.add_argument("--all", action="store_true",
                         help="sync the source: land new or changed items, repair damaged ones, skip the rest")
    command.add_argument("--force", action="store_true", help="with --all: land every item, even unchanged")
    command.add_argument("--glob", action="store_true",
                         help="match IDENTIFIERs with * ? [ as globs even where an item has exactly that name "
                              "(by default the exact name wins)")
    command.add_argument(
        "--workspace", metavar="DIR", help=f"workspace root (default: ${WORKSPACE_ENV} or ./workspace)"
    )
    command.add_argument("--concurrency", type=int, default=4, help="items fetched at once (default 4)")
    add_sizing_arguments(command)
    command.set_defaults(handler=cmd_fetch)


def cmd_ls(args: argparse.Namespace) -> int:
    """``ls ID [PATH]``: size, modification time and identifier of each item."""

    async def run(connector: DataSourceConnector) -> int:
        exclude = sync_options(connector.config).exclude
        items = [i for i in await connector.list_items(args.path) if excluded_by(i.path, exclude) is None]
        if args.json:
            # null, not 0, for a time the source does not know (a table): 0 would read as 1970
            print_json([{"name": i.name, "path": i.path, "size": i.size,
                         "modified_at": i.modified_at if i.modified_at > 0 else None,
                         "metadata": i.metadata} for i in items])
            return 0
        rows = [(human_size(i.size), iso_time(i.modified_at), i.path) for i in items]
        print_table(("SIZE", "MODIFIED", "PATH"), rows, align_right=(0,))
        return 0

    return asyncio.run(_with_connector(args, run))


async def _with_connector(args: argparse.Namespace, run: Callable[[DataSourceConnector], Any]) -> int:
    async with open_registry(args) as registry:
        result: int = await run(await registry.connector(args.id))
        return result


def cmd_fetch(args: argparse.Namespace) -> int:
    """``fetch ID IDENTIFIER... | --all [--force]``: land items under ``<workspace>/<ID>/``."""
    if not args.identifiers and not args.all:
        raise UsageError("give at least one IDENTIFIER, or --all")
    if args.force and not args.all:
        raise UsageError("--force goes with --all (named items are always fetched)")
    root = Path(args.workspace or read(WORKSPACE_ENV) or "workspace").absolute()
    workspace = root / args.id
    bar = ProgressBar(sys.stderr, len(args.identifiers)) if sys.stderr.isatty() else None
    with workspace_root(root):  # trusted: no link below it is followed (the agent writes there)
        sweep_workspace(workspace)  # temporaries of a killed fetch
        return _fetch(args, workspace, bar)


def _fetch(args: argparse.Namespace, workspace: Path, bar: ProgressBar | None) -> int:
    # the bar is cleared before anything is reported: on a terminal the first path would be glued to it
    options = None if args.all else row_options(args)
    results: Sequence[FetchResult] = []
    try:
        if args.all:
            report = asyncio.run(_sync_all(args, workspace, bar))
        elif options is not None:
            results = asyncio.run(_fetch_sized(args, workspace, options))
        else:
            results = asyncio.run(_fetch_listed(args, workspace, bar))
    finally:
        if bar is not None:
            bar.close()
    return _report_sync(report, args.json) if args.all else _report_fetch(results, args.json)


async def _fetch_sized(args: argparse.Namespace, workspace: Path, options: RowOptions) -> list[FetchResult]:
    async with open_registry(args) as registry:
        return await fetch_sized(await registry.connector(args.id), args.identifiers, str(workspace), options)


async def _fetch_listed(args: argparse.Namespace, workspace: Path, bar: ProgressBar | None) -> list[CheckedResult]:
    async with open_registry(args) as registry:
        return await _fetch_named(await registry.connector(args.id), args, workspace, bar)


async def _sync_all(args: argparse.Namespace, workspace: Path, bar: ProgressBar | None) -> SyncReport:
    """The same sync as Dagster's ``N_sync``: unchanged items are skipped, damaged ones repaired."""
    async with open_registry(args) as registry:
        config = registry.get(args.id)
    connector = get_connector_class(config.type_name)(config)
    # without --json each landed path is printed as it lands and its record dropped: memory stays flat
    report = SyncReport(keep_items=args.json)
    planned = (lambda count: setattr(bar, "items", count)) if bar is not None else (lambda count: None)
    done = (lambda: bar.item_done("")) if bar is not None else (lambda: None)
    landed = sync_source(connector, workspace, report=report, on_bytes=bar, on_item_done=done,
                         on_planned=planned, concurrency=args.concurrency, force=args.force)
    async for record in landed:
        if not args.json:
            if bar is not None:
                bar.close()  # clears the bar's line (it is drawn again on the next): the path prints on a clean line
            sys.stdout.write(f"{record['local_path']}\n")  # one write even unbuffered (PYTHONUNBUFFERED)
            if bar is not None:
                sys.stdout.flush()
    return report


async def _fetch_named(
    connector: DataSourceConnector, args: argparse.Namespace, workspace: Path, bar: ProgressBar | None
) -> list[CheckedResult]:
    # the connector's own fetch_many (batched where it can), a chunk at a time so the bar counts items
    identifiers = await _identifiers(connector, args.identifiers, glob=args.glob)
    if bar is not None:
        bar.items = len(identifiers)
    chunk = max(1, args.concurrency) * 4
    results: list[CheckedResult] = []
    with on_progress(bar):
        for start in range(0, len(identifiers), chunk):
            batch = await fetch_many_checked(connector, identifiers[start : start + chunk], workspace,
                                             concurrency=args.concurrency)
            for result in batch:
                if bar is not None:
                    bar.item_done(result.identifier)
            results.extend(batch)
    return results


async def _identifiers(connector: DataSourceConnector, given: list[str], *, glob: bool = False) -> list[str]:
    """The items to fetch: those named, folders and globs expanded (one listing each)."""
    identifiers: list[str] = []
    for identifier in given:
        if not is_selection(identifier):
            identifiers.append(identifier)
            continue
        matched = await expand_selection(connector, identifier, glob=glob)
        print(f"{PROG}: {bounded(identifier)}: {len(matched)} item(s)", file=sys.stderr)
        identifiers.extend(matched)
    return list(dict.fromkeys(identifiers))  # a folder and a glob may name one item twice


def _report_fetch(results: Sequence[FetchResult], as_json: bool) -> int:
    if as_json:
        print_json([{"identifier": r.identifier, "path": r.path, "status": "landed" if r.ok else "failed",
                      "error": None if r.ok else bounded(redact(str(r.error)))} for r in results])
    for result in results:
        if result.ok and not as_json:
            print(result.path)
        elif not result.ok:
            print(f"{PROG}: error: {bounded(redact(str(result.error)))}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else EXIT_FAILURE


def _report_sync(report: SyncReport, as_json: bool) -> int:
    """Landed paths on stdout; skipped, removed and failed items and a summary line on stderr."""
    repaired, pruned = set(report.repaired), set(report.pruned)  # sets: one lookup per item, not a list scan
    rows: list[dict[str, Any]] = [
        {"identifier": r["identifier"], "path": r["local_path"], "error": None,
         "status": "repaired" if r["identifier"] in repaired else "landed"} for r in report.landed]
    rows += [{"identifier": i, "path": None, "error": None, "status": "unchanged"} for i in report.unchanged]
    rows += [{"identifier": i, "path": None, "error": None, "status": "skipped", "reason": redact(reason)}
             for i, reason in report.skipped]
    rows += [{"identifier": i, "path": None, "error": None,
              "status": "pruned" if i in pruned else "removed"} for i in report.removed]
    rows += [{"identifier": None, "path": None, "error": bounded(redact(str(e))), "status": "failed"}
             for e in report.failed]
    if as_json:
        print_json(rows)
    else:
        for record in report.landed:
            print(record["local_path"])
    for identifier, reason in report.skipped:
        print(f"{PROG}: skipped {identifier!r}: {redact(reason)}", file=sys.stderr)
    for identifier in report.removed:
        state = "pruned" if identifier in pruned else "its landed file is kept"
        print(f"{PROG}: {identifier!r} is no longer at the source; {state}", file=sys.stderr)
    for error in report.failed:
        print(f"{PROG}: error: {bounded(redact(str(error)))}", file=sys.stderr)
    print(f"{PROG}: {report.summary()}", file=sys.stderr)
    return EXIT_FAILURE if report.failed else 0


def cmd_lineage(args: argparse.Namespace) -> int:
    """``lineage PATH``: the provenance record of a landed file."""
    record = read_provenance(args.path)
    if args.json:
        print_json(record)
        return 0
    width = max((len(key) for key in record), default=0)
    for key, value in record.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        print(f"{key:<{width}}  {redact(shown)}")
    return 0
