"""The tests' Dagster code location: ``da_pipelines`` plus two connector types only tests use.

``memory`` (:class:`connectors.testing.MemoryConnector`) and
``local_file_with_token``: a local-file source that needs a secret ``token`` to
connect, so a test can send a canary secret through Dagster's ``EnvVar`` path in
a real run (and can make runs meet at a barrier before fetching, so that two
runs surely overlap). Run it as ``dagster job execute -m tests.dagster_location
-j N_sync`` with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from connectors.base import DataSourceConnector, FetchResult
from connectors.errors import AuthenticationError, ConnectionError
from connectors.local_file import LocalFileConnector
from connectors.plugins import register_connector
from connectors.secrets.references import Secret
from connectors.settings import LocalFileSettings
from connectors.testing import MemoryConnector
from da_pipelines.definitions import build_definitions
from da_pipelines.resources import RESOURCE_TYPES, LocalFileResource


class TokenLocalFileSettings(LocalFileSettings):
    """Local-file settings plus a secret ``token`` that must be given."""

    token: Secret = Field(description="A secret the source needs (a canary in tests).")
    fetch_delay: float = Field(0.0, ge=0, description="Seconds to wait before each fetch.")
    barrier_dir: str | None = Field(
        None, description="Before its first fetch, wait until `barrier_count` processes reached this folder."
    )
    barrier_count: int = Field(2, ge=1, description="How many processes the barrier waits for.")
    barrier_each: bool = Field(False, description="Meet at the barrier before every item, not only the first.")
    fetch_log: str | None = Field(None, description="A file that gets one line per fetch (identifier, pid).")


class TokenLocalFileConnector(LocalFileConnector):
    """A local-file source that resolves and checks a secret token when it connects."""

    settings_model = TokenLocalFileSettings  # type: ignore[assignment]  # a subclass, by design

    async def connect(self) -> bool:
        settings: TokenLocalFileSettings = self.resolve_settings()
        if not settings.token.reveal():
            raise AuthenticationError("empty token", source_id=self.source_id)
        self._token_settings = settings
        return await super().connect()

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        settings: TokenLocalFileSettings = self._token_settings
        if settings.barrier_dir:
            folder = Path(settings.barrier_dir)
            if settings.barrier_each:  # every item's fetch starts at once in every process
                folder = folder / hashlib.sha256(identifier.encode()).hexdigest()[:16]
            await _barrier(folder, settings.barrier_count, poll=0.001 if settings.barrier_each else 0.05)
        await asyncio.sleep(settings.fetch_delay)
        path = await super().fetch_data(identifier, workspace)
        if settings.fetch_log:
            await asyncio.to_thread(_log_fetch, Path(settings.fetch_log), identifier)
        return path

    async def fetch_many(
        self, identifiers: Iterable[str], workspace: str, concurrency: int = 8
    ) -> list[FetchResult]:
        # every item through fetch_data, so the delay, the barrier and the fetch log apply to syncs too
        return await DataSourceConnector.fetch_many(self, identifiers, workspace, concurrency)


def _log_fetch(log: Path, identifier: str) -> None:
    with log.open("a") as handle:  # one short append per line: whole lines, even from many processes
        handle.write(f"{identifier} {os.getpid()} {time.time():.3f}\n")


def _arrive(folder: Path) -> int:
    """Mark this process as arrived at the barrier in ``folder``; how many have arrived."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    return len(list(folder.iterdir()))


async def _barrier(folder: Path, count: int, timeout: float = 120.0, poll: float = 0.05) -> None:
    """Wait until ``count`` processes have arrived in ``folder`` (so that runs overlap for sure)."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(_arrive, folder) < count:
        if time.monotonic() > deadline:
            raise ConnectionError(f"barrier {folder}: fewer than {count} processes arrived")
        await asyncio.sleep(poll)


class TokenLocalFileResource(LocalFileResource):
    """The resource of ``local_file_with_token``: the token only as an ``EnvVar``."""

    type_name: ClassVar[str] = "local_file_with_token"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    token: str | None = Field(None, description="The secret token (an EnvVar).")
    fetch_delay: float = Field(0.0, description="Seconds to wait before each fetch.")
    barrier_dir: str | None = Field(None, description="Folder where overlapping runs meet before fetching.")
    barrier_count: int = Field(2, description="How many processes the barrier waits for.")
    barrier_each: bool = Field(False, description="Meet at the barrier before every item.")
    fetch_log: str | None = Field(None, description="A file that gets one line per fetch.")


def register_test_connectors() -> None:
    """Register the ``memory`` and ``local_file_with_token`` types (idempotent)."""
    register_connector("memory", MemoryConnector, replace=True)
    register_connector("local_file_with_token", TokenLocalFileConnector, replace=True)
    RESOURCE_TYPES["local_file_with_token"] = TokenLocalFileResource


register_test_connectors()
defs = build_definitions()
