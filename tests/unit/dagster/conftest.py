"""Fixtures of the Dagster-layer unit tests: an in-memory store (test connectors registered), a Dagster instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
)

from connectors.testing import MemoryStore, memory_store
from tests.dagster_location import register_test_connectors


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    register_test_connectors()
    name = f"unit-{uuid.uuid4().hex[:8]}"
    store = memory_store(name)
    store.name = name  # type: ignore[attr-defined]
    yield store


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield instance
