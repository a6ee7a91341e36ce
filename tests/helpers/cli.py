"""``da-sources`` as a user runs it: the installed console script in a private environment, canary checks."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import REPO

CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "da-sources"


@dataclass
class Cli:
    """Runs da-sources in ``cwd`` with a private environment; every output is kept for canary checks."""

    cwd: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    def __call__(self, *args: str, stdin: str = "", env: dict[str, str] | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "connectors.cli"]
        result = subprocess.run([*command, *args], cwd=self.cwd, env={**self.env, **(env or {})}, input=stdin,
                                capture_output=True, text=True, timeout=120)
        self.outputs += [result.stdout, result.stderr]
        assert "Traceback" not in result.stderr, result.stderr
        if check:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode != 0, result.stdout
            assert result.stderr.startswith("da-sources: error: ")
            assert result.stderr.count("\n") == 1, result.stderr  # one line
        return result

    @property
    def sources_file(self) -> Path:
        return Path(self.env["DA_SOURCES_FILE"])

    @property
    def secrets_file(self) -> Path:
        return Path(self.env["DA_SECRETS_FILE"])


def assert_nowhere(canary: str, cli: Cli, *paths: Path) -> None:
    """The canary is in no output of the session and in none of the files."""
    for text in cli.outputs:
        assert canary not in text
    for path in paths:
        if path.exists():
            assert canary.encode() not in path.read_bytes(), path
