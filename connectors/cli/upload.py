"""``da-sources upload``: a local file, or a thread's generated file, to a blob storage source.

Either way a record of what went where is appended to a JSON-lines log: a plain file's to
``published.jsonl`` beside the sources file, a thread's to its ``published.jsonl`` in the state folder
(``$DA_STATE_DIR``, default ``da-sources-state`` beside the sources file; never the thread's folder).

Examples:
    $ da-sources upload lake ./report.csv results/report.csv
    $ da-sources upload lake chart.png --thread thread-3f9d --workspace ./workspace   # -> thread-3f9d/chart.png
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from connectors.cli.common import WORKSPACE_ENV, print_json
from connectors.environment import read
from connectors.publishing import publish_file
from connectors.registry import SourceRegistry

__all__ = ["add_commands"]


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``upload`` to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    command = commands.add_parser("upload", parents=[as_json], help="upload a file to a blob storage source")
    command.add_argument("id")
    command.add_argument("file", help="a local file, or with --thread a name under the thread's generated/ folder")
    command.add_argument("blob", nargs="?", help="blob name (default: the file's name; with --thread THREAD/FILE)")
    command.add_argument("--overwrite", action="store_true", help="replace a blob of the same name")
    command.add_argument("--thread", metavar="THREAD", help="a DeepAnalyze thread: metadata and a record of it")
    command.add_argument("--workspace", metavar="DIR",
                         help=f"workspace base of the threads (default: ${WORKSPACE_ENV} or ./workspace)")
    command.set_defaults(handler=cmd_upload)


def cmd_upload(args: argparse.Namespace) -> int:
    """``upload ID FILE [BLOB]``: one line (or JSON) saying what went where."""
    record = asyncio.run(_upload(args))
    if args.json:
        print_json(record)
    else:
        print(f"uploaded {args.file} -> {record['uri']} ({record['size']} bytes, md5 {record['content_md5']})")
    return 0


async def _upload(args: argparse.Namespace) -> dict[str, Any]:
    async with SourceRegistry(args.sources) as registry:
        if args.thread:
            # imported here: threads bring pyarrow, which no other command of this process needs
            from connectors.threads import publish_generated

            base = args.workspace or read(WORKSPACE_ENV) or "workspace"
            return await publish_generated(registry, base, args.thread, args.id, args.file, args.blob, args.overwrite)
        return await publish_file(registry, args.id, args.file, args.blob, args.overwrite)
