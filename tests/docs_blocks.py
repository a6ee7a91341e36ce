"""The code blocks of the documentation's markdown pages, for the tests that run or check them.

A block marked ``<!-- docs-test: run -->`` on the line before its fence is run as written by
``tests/unit/test_docs_getting_started.py``; every other ``bash`` block of the README is checked
command by command (``tests/unit/test_readme_commands.py``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_MARK = "<!-- docs-test: run -->"
_FENCE = re.compile(r"^(?P<mark><!-- docs-test: run -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.M | re.S)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its text, whether it is marked to run, where it starts."""

    lang: str
    body: str
    runnable: bool
    line: int


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text()
    return [Block(m["lang"], m["body"], bool(m["mark"]), text.count("\n", 0, m.start("body")))
            for m in _FENCE.finditer(text)]


def commands(block: Block) -> list[list[str]]:
    """The commands of a shell block: comments dropped, ``VAR=value`` prefixes dropped, one list of words each."""
    found = []
    for line in block.body.splitlines():
        words = shlex.split(line, comments=True)
        while words and _ASSIGNMENT.match(words[0]):
            words.pop(0)
        if words:
            found.append(words)
    return found
