"""``da-sources``: manage sources and secrets, and fetch items, from a shell.

One module per command group (:mod:`.sources`, :mod:`.data`, :mod:`.query`, :mod:`.secrets`,
:mod:`.upload`, :mod:`.api`; :mod:`.common` holds what they share). Secrets are never
command-line arguments, and every error is one redacted line on stderr with a non-zero exit.
The commands and why: ``docs/design/cli.md`` (usage: ``docs/cli.md``).

Example:
    $ da-sources add local_file docs --name Docs --root /srv/docs --pattern '*.csv'
    $ da-sources ls docs
    $ da-sources fetch docs 2024/sales.csv --workspace ./workspace
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from connectors.cli import api, data, query, secrets, sources, upload
from connectors.cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, PROG, Parser, UsageError, fail
from connectors.cli.progress_bar import ProgressBar
from connectors.errors import DataSourceError
from connectors.secrets.references import RedactingFilter

__all__ = ["ProgressBar", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``da-sources``: parse the command line, run the command, report any error in one line.

    Args:
        argv: The arguments after the program name; None reads the process's own.

    Returns:
        The exit code: 0 done, 1 failed, 2 a usage error, 130 interrupted.
    """
    _configure_logging()
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except DataSourceError as exc:
        return fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # the reader went away (da-sources ls x | head): not an error; keep Python quiet at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last line of defence: one line, never a traceback
        return fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def _configure_logging() -> None:
    # warnings from the library and the SDKs, redacted at the handler so every logger is covered
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (the CLI reference page is walked from it).

    Returns:
        A parser whose parsed arguments carry the command's ``handler``.
    """
    parser = Parser(prog=PROG, description="Data sources for DeepAnalyze: configure, test, list, fetch.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.add_argument("--sources", metavar="FILE", help=_SOURCES_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    as_json = Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")
    sources.add_commands(commands, as_json)
    data.add_commands(commands, as_json)
    query.add_commands(commands, as_json)
    secrets.add_commands(commands, as_json)
    api.add_commands(commands, as_json)
    upload.add_commands(commands, as_json)
    for command in _leaf_parsers(parser):
        # also after the command; SUPPRESS keeps a value given before it
        command.add_argument("--sources", metavar="FILE", default=argparse.SUPPRESS, help=_SOURCES_HELP)
    return parser


_SOURCES_HELP = "sources file (default: $DA_SOURCES_FILE or ./sources.yaml)"


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser that runs a command (the ones without subcommands of their own)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield parser
    for group in groups:
        for child in dict.fromkeys(group.choices.values()):  # aliases share a parser
            yield from _leaf_parsers(child)


def _version() -> str:
    try:
        return importlib.metadata.version("da-sources")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
