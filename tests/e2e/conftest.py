"""Fixtures of the end-to-end test: the seeded services, ``dagster dev`` over them, and a browser."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.stack import (
    USER_LOCATION,
    DagsterDev,
    Seeded,
    dagster_env,
    seed_services,
    start_dagster_dev,
    wait_until_loaded,
    write_sources_file,
)
from tests.e2e.ui import Ui, chromium_page
from tests.harness import REPO, AzuriteServer, PostgresServer

ARTIFACTS = REPO / "test-artifacts" / "e2e"


@dataclass
class Stack:
    """``dagster dev`` serving the sources file, and where everything lives."""

    dev: DagsterDev
    seeded: Seeded
    azurite: AzuriteServer
    home: Path
    workspace: Path


@pytest.fixture(scope="module")
def stack(azurite_server: AzuriteServer, postgres_server: PostgresServer) -> Iterator[Stack]:
    """``dagster dev -w workspace.yaml`` (webserver + daemon) over seeded Azurite and PostgreSQL.

    Stopped with its whole process group at the end, also when the test fails;
    the log tail is printed on the way out to explain a failure.
    """
    base = Path(tempfile.mkdtemp(prefix="da-e2e-"))
    seeded = seed_services(azurite_server, postgres_server)
    sources_file = base / "sources.yaml"
    write_sources_file(sources_file, azurite_server, postgres_server, seeded)
    env = dagster_env(base / "dagster_home", base / "workspace", sources_file, azurite_server, seeded)
    dev = start_dagster_dev(env, base / "dagster-dev.log")
    try:
        wait_until_loaded(dev)
        wait_until_loaded(dev, USER_LOCATION)
        yield Stack(dev, seeded, azurite_server, base / "dagster_home", base / "workspace")
    finally:
        dev.stop()
        print(f"--- dagster dev log (tail) ---\n{dev.log_tail(6000)}")
        shutil.rmtree(base, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so a fixture can tell that the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def ui(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Ui]:
    """The Dagster UI in headless Chromium; screenshots go to test-artifacts/e2e/.

    When the test fails, the page as it was goes to ``failure.png`` (unless it shows the secret).
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    with chromium_page() as page:
        ui = Ui(page=page, url=stack.dev.url, secret=stack.seeded.canary, artifacts=ARTIFACTS)
        yield ui
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            with contextlib.suppress(Exception):  # best effort: the failure itself is already reported
                print(f"page at failure: {ui.page.url} -> {ui.screenshot('failure')}")
