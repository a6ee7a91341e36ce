"""Every command in the README's shell blocks exists and parses, so a README command that breaks fails CI.

Scripts must exist and be executable; ``da-sources`` commands must parse with the CLI's own parser;
``dagster`` subcommands must answer ``--help``, and the files they name must exist. A program this
test does not know fails it: a new kind of command in the README gets a check here. (The blocks
marked to run are also run, by ``test_docs_getting_started.py``; ``scripts/run-sample`` by
``tests/integration/test_run_sample.py``; ``scripts/test`` is what CI runs.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.cli import build_parser
from tests.docs_blocks import REPO, blocks, commands

BIN = Path(sys.executable).parent


def readme_commands() -> list[list[str]]:
    found = [words for block in blocks(REPO / "README.md") if block.lang == "bash" for words in commands(block)]
    assert found, "the README has no shell command"
    return found


def _program(word: str) -> Path:
    """Where the README's program is: a repository script, or a console script of this environment."""
    if word.startswith(".venv/bin/"):
        return BIN / word.removeprefix(".venv/bin/")
    return REPO / word


def _check_da_sources(arguments: list[str]) -> None:
    build_parser().parse_args(arguments)  # a usage error raises; nothing runs


def _check_dagster(program: Path, arguments: list[str]) -> None:
    subcommand = [word for word in arguments if not word.startswith("-")][:1]
    result = subprocess.run([str(program), *subcommand, "--help"], capture_output=True, text=True, timeout=120,
                            check=False, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, f"dagster {' '.join(subcommand)} --help: {result.stderr[-1000:]}"
    for flag, value in zip(arguments, arguments[1:], strict=False):
        if flag in ("-w", "--workspace", "-f", "--python-file"):
            assert (REPO / value).is_file(), f"dagster {flag} {value}: no such file in the repository"


@pytest.mark.parametrize("words", readme_commands(), ids=lambda words: " ".join(words)[:60])
def test_a_readme_command_exists_and_parses(words: list[str]) -> None:
    program = _program(words[0])
    assert program.is_file() and os.access(program, os.X_OK), f"{words[0]}: not an executable file"
    if program.name == "da-sources":
        _check_da_sources(words[1:])
    elif program.name == "dagster":
        _check_dagster(program, words[1:])
    else:
        assert program.parent == REPO / "scripts" and len(words) == 1, f"no check for {' '.join(words)!r}"
