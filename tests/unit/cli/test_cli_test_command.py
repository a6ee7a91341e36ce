"""``da-sources test ID`` prints the real cause of a failure.

In-process (``connectors.cli.main``), with connector types registered for the
test: one whose ``test_connection`` raises a typed error, one that returns False
without a cause, one whose ``disconnect`` fails too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.cli import main
from connectors.errors import AuthenticationError, ConnectionError
from connectors.plugins import register_connector, unregister_connector
from connectors.registry import SourceRegistry
from connectors.testing import MemoryConnector, memory_store


class RefusingConnector(MemoryConnector):
    """Answers test_connection with the service's refusal, as the Azure and PostgreSQL connectors do."""

    async def test_connection(self) -> bool:
        raise AuthenticationError("the server refused the credentials (HTTP 403, AuthorizationFailure)",
                                  source_id=self.source_id)


class SilentConnector(MemoryConnector):
    async def test_connection(self) -> bool:
        return False


class BrokenCloseConnector(RefusingConnector):
    async def disconnect(self) -> None:
        raise ConnectionError("connection reset while closing", source_id=self.source_id)


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[Path]:
    kinds = {"refusing": RefusingConnector, "silent": SilentConnector, "brokenclose": BrokenCloseConnector}
    for name, cls in kinds.items():
        register_connector(f"test_{name}", cls, replace=True)
    memory_store("cli-test")
    path = tmp_path / "sources.yaml"
    registry = SourceRegistry(path)
    for name in kinds:
        registry.add({"id": name, "type": f"test_{name}", "name": name, "config": {"store": "cli-test"}})
    yield path
    for name in kinds:
        unregister_connector(f"test_{name}")


def test_the_connectors_own_error_is_printed(sources: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sources", str(sources), "test", "refusing"]) == 1
    err = capsys.readouterr().err
    assert err == ("da-sources: error: source 'refusing': the server refused the credentials "
                   "(HTTP 403, AuthorizationFailure)\n")
    assert main(["--sources", str(sources), "test", "refusing", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "HTTP 403" in out["error"]


def test_a_failing_disconnect_does_not_hide_the_cause(sources: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sources", str(sources), "test", "brokenclose"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 403" in err and "closing" not in err


def test_the_generic_line_only_without_a_cause(sources: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sources", str(sources), "test", "silent"]) == 1
    assert "does not answer with these settings" in capsys.readouterr().err
