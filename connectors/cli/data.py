"""``da-sources ls | fetch | lineage``: items of a source, landing them, where a file came from."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConnector, FetchResult
from connectors.cli.common import (
    EXIT_FAILURE,
    PROG,
    WORKSPACE_ENV,
    UsageError,
    human_size,
    iso_time,
    print_json,
    print_table,
)
from connectors.cli.progress_bar import ProgressBar
from connectors.landing.lineage import read_provenance
from connectors.landing.progress import on_progress
from connectors.landing.root import sweep_workspace, workspace_root
from connectors.registry import SourceRegistry
from connectors.secrets.references import redact


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``ls``, ``fetch`` and ``lineage`` to the parser's subcommands."""
    command = commands.add_parser("ls", parents=[as_json], help="list the items of a source")
    command.add_argument("id")
    command.add_argument("path", nargs="?", help="only items under this folder / prefix")
    command.set_defaults(handler=cmd_ls)
    _add_fetch_command(commands, as_json)
    command = commands.add_parser("lineage", parents=[as_json], help="where a landed file came from")
    command.add_argument("path")
    command.set_defaults(handler=cmd_lineage)


def _add_fetch_command(commands: Any, as_json: argparse.ArgumentParser) -> None:
    command = commands.add_parser("fetch", parents=[as_json], help="land items in the workspace")
    command.add_argument("id")
    command.add_argument("identifiers", nargs="*", metavar="IDENTIFIER", help="items to fetch (see 'ls')")
    command.add_argument("--all", action="store_true", help="fetch every item the source lists")
    command.add_argument(
        "--workspace", metavar="DIR", help=f"workspace root (default: ${WORKSPACE_ENV} or ./workspace)"
    )
    command.add_argument("--concurrency", type=int, default=4, help="items fetched at once (default 4)")
    command.set_defaults(handler=cmd_fetch)


def cmd_ls(args: argparse.Namespace) -> int:
    """``ls ID [PATH]``: size, modification time and identifier of each item."""

    async def run(connector: DataSourceConnector) -> int:
        items = await connector.list_items(args.path)
        if args.json:
            print_json([{"name": i.name, "path": i.path, "size": i.size, "modified_at": i.modified_at,
                          "metadata": i.metadata} for i in items])
            return 0
        rows = [(human_size(i.size), iso_time(i.modified_at), i.path) for i in items]
        print_table(("SIZE", "MODIFIED", "PATH"), rows, align_right=(0,))
        return 0

    return asyncio.run(_with_connector(args, run))


async def _with_connector(args: argparse.Namespace, run: Callable[[DataSourceConnector], Any]) -> int:
    async with SourceRegistry(args.sources) as registry:
        result: int = await run(await registry.connector(args.id))
        return result


def cmd_fetch(args: argparse.Namespace) -> int:
    """``fetch ID IDENTIFIER... | --all``: land items under ``<workspace>/<ID>/``."""
    if not args.identifiers and not args.all:
        raise UsageError("give at least one IDENTIFIER, or --all")
    root = Path(args.workspace or os.environ.get(WORKSPACE_ENV) or "workspace").absolute()
    workspace = root / args.id

    async def run(connector: DataSourceConnector) -> int:
        identifiers = list(args.identifiers)
        if args.all:
            identifiers += [item.path for item in await connector.list_items()]
        bar = ProgressBar(sys.stderr, len(identifiers)) if sys.stderr.isatty() else None
        with on_progress(bar):
            results = await _fetch_all(connector, identifiers, str(workspace), args.concurrency, bar)
        return _report_fetch(results, args.json)

    with workspace_root(root):  # trusted: no link below it is followed (the agent writes there)
        sweep_workspace(workspace)  # temporaries of a killed fetch
        return asyncio.run(_with_connector(args, run))


async def _fetch_all(
    connector: DataSourceConnector, identifiers: list[str], workspace: str, concurrency: int,
    bar: ProgressBar | None,
) -> list[FetchResult]:
    # the connector's own fetch_many (batched where it can), a chunk at a time so the bar counts items
    chunk = max(1, concurrency) * 4
    results: list[FetchResult] = []
    try:
        for start in range(0, len(identifiers), chunk):
            batch = await connector.fetch_many(identifiers[start : start + chunk], workspace, concurrency=concurrency)
            for result in batch:
                if bar is not None:
                    bar.item_done(result.identifier)
            results.extend(batch)
        return results
    finally:
        if bar is not None:
            bar.close()


def _report_fetch(results: list[FetchResult], as_json: bool) -> int:
    if as_json:
        print_json([{"identifier": r.identifier, "path": r.path,
                      "error": None if r.ok else redact(str(r.error))} for r in results])
    for result in results:
        if result.ok and not as_json:
            print(result.path)
        elif not result.ok:
            print(f"{PROG}: error: {redact(str(result.error))}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else EXIT_FAILURE


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
