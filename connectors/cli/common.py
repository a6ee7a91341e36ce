"""What every command of ``da-sources`` shares: the parser class, errors, output helpers."""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from connectors.errors import ConfigurationError
from connectors.ids import check_source_id
from connectors.registry import SourceRegistry, sources_file_named
from connectors.secrets.references import redact

PROG = "da-sources"
WORKSPACE_ENV = "DA_WORKSPACE"
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A command line that cannot be parsed: reported in one line, exit code 2."""


MAX_ECHO = 300  # characters of one word echoed in a message: a long path fits, a 100 KB argument does not
MAX_LINE = 2000  # characters of one error line


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the usage block and exits)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            message = _unrecognized(message.split(":", 1)[1].split())
        message += _did_you_mean(message)
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _did_you_mean(message: str) -> str:
    """``; did you mean 'list'?`` for argparse's "invalid choice: 'lsit' (choose from 'list', ...)"."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    close = difflib.get_close_matches(found.group(1), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unrecognized(tokens: list[str]) -> str:
    """Name misplaced options (never their values); count, never echo, other words."""
    # a word that is not an option may be a secret typed as an argument by mistake: never printed back
    options = [token.split("=", 1)[0] for token in tokens if token.startswith("-") and len(token) > 1]
    others = len(tokens) - len(options)
    parts = []
    if options:
        names = ", ".join(bounded(option) for option in options)
        parts.append(f"unknown option {names} here: an option goes after the command it belongs to "
                     f"({PROG} COMMAND [ARGS] [OPTIONS]), and 'COMMAND --help' lists them")
    if others:
        parts.append(f"{others} unexpected argument(s) (not shown: secrets are never arguments, "
                     "they are prompted for)")
    return "; ".join(parts)


def bounded(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` with every word longer than ``limit`` cut (a 100 KB argument never comes back whole).

    Args:
        text: A message that may echo what the user typed.
        limit: The longest word kept whole, in characters.

    Returns:
        The text, each longer word cut to its start and its length.
    """

    def cut(match: re.Match[str]) -> str:
        word = match.group(0)
        return f"{word[:60]}…({len(word)} characters)"

    return re.sub(rf"\S{{{limit + 1},}}", cut, text)


def fail(message: str, code: int) -> int:
    """Print ``message`` as one redacted, bounded error line on stderr.

    Args:
        message: What went wrong (may hold a secret or a huge word: both are cut out).
        code: The exit code to give back.

    Returns:
        ``code``, so a command can ``return fail(...)``.
    """
    text = bounded(" ".join(redact(message).split()))  # one line, whatever the message held
    if len(text) > MAX_LINE:
        text = text[:MAX_LINE] + "…"
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return code


def source_id_arg(value: str) -> str:
    """argparse type of an ID argument: the source id rule, as a usage error (exit 2).

    Args:
        value: The word given.

    Returns:
        The id, unchanged.

    Raises:
        argparse.ArgumentTypeError: The id breaks the source id rule.
    """
    try:
        return check_source_id(value)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def open_registry(args: argparse.Namespace, *, must_exist: bool = True) -> SourceRegistry:
    """The registry of ``--sources`` / ``$DA_SOURCES_FILE`` / ``./sources.yaml``.

    The embedded ``sample`` source stands in for a missing default file, as in Dagster.

    Args:
        args: The parsed arguments (their ``sources``).
        must_exist: Refuse a named file that does not exist (``add`` passes False: it creates it).

    Returns:
        The registry, not yet opened.

    Raises:
        ConfigurationError: A sources file was named and does not exist.
    """
    registry = SourceRegistry(args.sources, embedded_sample=True)
    if must_exist and sources_file_named(args.sources) and not registry.path.exists():
        raise ConfigurationError(f"sources file {str(registry.path)!r} does not exist")
    return registry


def read_secret(prompt: str) -> str:
    """A secret from the terminal without echo, or one line from a pipe.

    Args:
        prompt: What the terminal shows before the hidden input.

    Returns:
        The value, without its line ending.

    Raises:
        ConfigurationError: Nothing was given.
    """
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigurationError("no secret value given")
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as JSON, every string in it redacted (a secret in a free-form label never shows).

    Args:
        value: Plain data; anything else is printed as its redacted ``str``.
    """
    print(json.dumps(redacted(value), indent=2, default=lambda v: redact(str(v))))


def redacted(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string in it, at any depth.

    Args:
        value: Plain data (dicts, lists, tuples, strings, numbers).

    Returns:
        A copy whose strings are redacted (tuples become lists, as JSON has them).
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    return value


def print_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], align_right: tuple[int, ...] = ()
) -> None:
    """Print rows in columns sized to their content; on a terminal, lines are cut to its width.

    Args:
        header: The column titles.
        rows: One tuple of cells per line.
        align_right: The indexes of the columns aligned right (sizes).
    """
    limit = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else None
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in align_right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print(fit("  ".join(cells).rstrip(), limit))


def fit(line: str, limit: int | None) -> str:
    """``line`` cut to ``limit`` characters, with ``…`` where it was cut.

    Args:
        line: One line of output.
        limit: The width in characters; None keeps the line whole (output is not a terminal).

    Returns:
        The line, at most ``limit`` characters.
    """
    if limit is None or len(line) <= limit:
        return line
    return line[: max(limit - 1, 0)] + "…"


def human_size(size: int) -> str:
    """A size in bytes as people read it (``512 B``, ``1.5 MiB``).

    Args:
        size: Bytes.

    Returns:
        Whole bytes below 1 KiB, else KiB to TiB with one decimal.
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def iso_time(seconds: int) -> str:
    """UTC date and time of ``seconds``, as ``YYYY-MM-DD HH:MM:SS``.

    Args:
        seconds: Unix seconds; 0 or less means unknown (a table has no modification time).

    Returns:
        The date and time, or ``-`` when unknown.
    """
    if seconds <= 0:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
