"""``fetch ... --columns --where --param --limit --sample --seed`` (part of a table) and ``sync-table``.

Example:
    $ da-sources fetch warehouse public.orders --where "status = %s" --param paid --limit 1000
    $ da-sources fetch warehouse public.orders --sample 0.01 --seed 7 --columns id,total
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connectors.base import DataSourceConnector, FetchResult
from connectors.cli.common import PROG, WORKSPACE_ENV, UsageError, open_registry, print_json, source_id_arg
from connectors.environment import read
from connectors.errors import DataSourceError
from connectors.landing.lineage import read_provenance
from connectors.landing.root import workspace_root
from connectors.rows import RowOptions

__all__ = ["add_sizing_arguments", "add_sync_table_command", "fetch_sized", "row_options"]

OPTION_FLAGS = ("columns", "where", "param", "limit", "sample")


def add_sizing_arguments(command: argparse.ArgumentParser) -> None:
    """Add the row options of ``fetch`` (tables of SQL sources).

    Args:
        command: The ``fetch`` parser.
    """
    group = command.add_argument_group("part of a table (SQL sources)")
    group.add_argument("--columns", metavar="A,B", help="only these columns, in this order")
    group.add_argument("--where", metavar="SQL", help="a condition over the columns, e.g. \"status = %%s\"")
    group.add_argument("--param", action="append", metavar="VALUE", help="a value for a %%s of --where (repeat)")
    group.add_argument("--limit", type=int, metavar="N", help="at most N rows (by primary key when there is one)")
    group.add_argument("--sample", type=float, metavar="X", help="a fraction (0 < X < 1) or a number of rows")
    group.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0): same seed, same rows")


def row_options(args: argparse.Namespace) -> RowOptions | None:
    """The row options given on the command line.

    Args:
        args: The parsed ``fetch`` arguments.

    Returns:
        The validated options, or None when the fetch is of whole items.

    Raises:
        UsageError: The options are invalid, or given with ``--all``.
    """
    if all(getattr(args, flag, None) is None for flag in OPTION_FLAGS):
        return None
    if args.all:
        raise UsageError("--columns/--where/--limit/--sample name a part of a table: give IDENTIFIERs, not --all")
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    try:
        return RowOptions(columns=columns, where=args.where, params=args.param, limit=args.limit,
                          sample=args.sample, seed=args.seed)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from None


async def fetch_sized(connector: DataSourceConnector, identifiers: list[str], workspace: str,
                      options: RowOptions) -> list[FetchResult]:
    """Each table cut by ``options``, one after the other.

    Args:
        connector: A SQL source (one with ``fetch_table``).
        identifiers: The tables to fetch.
        workspace: The source's folder in the workspace.
        options: The columns, condition, limit or sample to cut each table to.

    Returns:
        One result per table; a table that failed carries its error.

    Raises:
        UsageError: The source cannot cut items into rows.
    """
    fetch_table: Any = getattr(connector, "fetch_table", None)
    if fetch_table is None:
        raise UsageError(f"a {connector.type_name()} source cannot cut items into rows (SQL sources only)")
    results = []
    for identifier in identifiers:
        try:
            results.append(FetchResult(identifier, await fetch_table(identifier, workspace, options)))
        except DataSourceError as exc:
            results.append(FetchResult(identifier, error=exc))
    return results


def add_sync_table_command(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``sync-table ID TABLE [--full] [--workspace DIR]`` to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    command = commands.add_parser("sync-table", parents=[as_json],
                                  help="sync a table configured 'incremental' into its Parquet dataset folder")
    command.add_argument("id", type=source_id_arg)
    command.add_argument("table", help="schema.table, as configured in the source's incremental settings")
    command.add_argument("--full", action="store_true",
                         help="export the whole table and replace the dataset (drops rows deleted at the source)")
    command.add_argument("--workspace", metavar="DIR",
                         help=f"workspace root (default: ${WORKSPACE_ENV} or ./workspace)")
    command.set_defaults(handler=cmd_sync_table)


def cmd_sync_table(args: argparse.Namespace) -> int:
    """Print the dataset folder; its record's summary (rows synced, parts, total rows) on stderr."""
    root = Path(args.workspace or read(WORKSPACE_ENV) or "workspace").absolute()

    async def run() -> str:
        async with open_registry(args) as registry:
            connector: Any = await registry.connector(args.id)
            sync = getattr(connector, "sync_table", None)
            if sync is None:
                raise UsageError(f"a {connector.type_name()} source has no incremental tables")
            return str(await sync(args.table, str(root / args.id), full=args.full))

    with workspace_root(root):
        folder = asyncio.run(run())
    record = read_provenance(folder)
    summary = {"path": folder, "last_sync": record.get("last_sync"), "rows_synced": record.get("rows_synced"),
               "parts": len(record.get("parts", [])), "row_count": record.get("row_count"),
               "cursor_max": record.get("cursor_max"), "schema_changes": record.get("schema_changes", [])[-1:]}
    if args.json:
        print_json(summary)
    else:
        print(folder)
        print(f"{PROG}: {summary['last_sync']} sync: {summary['rows_synced']} rows synced; {summary['parts']} parts, "
              f"{summary['row_count']} rows; cursor up to {summary['cursor_max']}", file=sys.stderr)
    return 0
