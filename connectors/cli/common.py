"""What every command of ``da-sources`` shares: the parser class, errors, output helpers."""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from connectors.errors import ConfigurationError
from connectors.secrets.references import redact

PROG = "da-sources"
WORKSPACE_ENV = "DA_WORKSPACE"
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A command line that cannot be parsed: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the usage block and exits)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # not echoed: a secret typed as an argument by mistake must not be printed back
            count = len(message.split(":", 1)[1].split())
            message = f"{count} unexpected argument(s); secrets are never arguments, they are prompted for"
        raise UsageError(f"{message} (see '{self.prog} --help')")


def fail(message: str, code: int) -> int:
    text = " ".join(redact(message).split())  # one line, whatever the message held
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return code


def read_secret(prompt: str) -> str:
    """A secret from the terminal without echo, or one line from a pipe."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigurationError("no secret value given")
    return value


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def print_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], align_right: tuple[int, ...] = ()
) -> None:
    """Columns sized to their content; on a terminal, lines are cut to its width."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    limit = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else None
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in align_right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print(fit("  ".join(cells).rstrip(), limit))


def fit(line: str, limit: int | None) -> str:
    if limit is None or len(line) <= limit:
        return line
    return line[: max(limit - 1, 0)] + "…"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
