"""``da-sources query ID SQL --name NAME``: land the result of a read-only query."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConfig
from connectors.cli.common import WORKSPACE_ENV, UsageError, open_registry, print_json, source_id_arg
from connectors.environment import read
from connectors.errors import ConfigurationError
from connectors.plugins import get_connector_class

__all__ = ["add_commands"]


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``query`` to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    command = commands.add_parser(
        "query", parents=[as_json], help="land the result of a read-only SQL query (postgresql sources)"
    )
    command.add_argument("id", type=source_id_arg)
    command.add_argument("sql", metavar="SQL", help="one read-only statement; '-' reads it from stdin")
    command.add_argument("--name", required=True, help="file name of the result, without extension")
    command.add_argument(
        "--workspace", metavar="DIR", help=f"workspace root (default: ${WORKSPACE_ENV} or ./workspace)"
    )
    command.add_argument("--format", choices=["csv", "parquet"], help="default: the source's format (csv)")
    command.add_argument("--param", action="append", default=[], metavar="NAME=VALUE | VALUE",
                         help="a value for a placeholder, bound safely (never pasted into the SQL): "
                              "NAME=VALUE for %%(NAME)s, or VALUE for each %%s in order; repeatable")
    command.set_defaults(handler=cmd_query)


def cmd_query(args: argparse.Namespace) -> int:
    """``query ID SQL --name NAME``: lands ``<workspace>/<ID>/<NAME>.<csv|parquet>``, prints its path."""
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    workspace = Path(args.workspace or read(WORKSPACE_ENV) or "workspace").absolute() / args.id
    path = asyncio.run(_run_query(args, sql, str(workspace)))
    if args.json:
        print_json({"id": args.id, "name": args.name, "path": path})
    else:
        print(path)
    return 0


async def _run_query(args: argparse.Namespace, sql: str, workspace: str) -> str:
    source = open_registry(args).get(args.id)
    connector_class = get_connector_class(source.type_name)
    fetch_query = getattr(connector_class, "fetch_query", None)
    if not callable(fetch_query):
        raise ConfigurationError(
            f"sources of type {source.type_name!r} cannot run queries ('query' needs a type with "
            "fetch_query, such as postgresql)", source_id=source.id)
    if args.format:
        source = DataSourceConfig(id=source.id, type=source.type, name=source.name, created_at=source.created_at,
                                  config={**source.config, "format": args.format}, metadata=source.metadata)
    async with connector_class(source) as connector:
        path: str = await connector.fetch_query(  # type: ignore[attr-defined]
            sql, workspace, args.name, _params(args.param))
        return path


def _params(given: list[str]) -> dict[str, str] | list[str] | None:
    """``--param`` values: a mapping when each is NAME=VALUE, else a list in order."""
    if not given:
        return None
    named = [value.partition("=") for value in given]
    if all(sep and name.isidentifier() for name, sep, _ in named):
        return {name: value for name, _, value in named}
    if any(sep and name.isidentifier() for name, sep, _ in named):
        raise UsageError("--param: give every value as NAME=VALUE (for %(NAME)s) or none (for %s), not both")
    return given
