"""Fixtures of the deployment tests: a prepared (not yet started) deployment, stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import Deployment, prepare
from tests.harness import PostgresServer


@pytest.fixture
def make_deployment(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(sources: list[dict[str, Any]], **overrides: Any) -> Deployment:
        deployment = prepare(postgres_server, tmp_path / f"d{len(made)}", sources, overrides)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop()
