"""Dagster on PostgreSQL storage, as deployed from deploy/: runs queued and capped per source.

Five sync runs for each of two sources are submitted at once to a deployment of three processes
(code server, webserver, daemon) sharing a PostgreSQL instance. The queued run coordinator of
deploy/dagster.yaml must run at most one per source at any time, all must succeed, and no item may
be fetched twice (each fetch is logged by the source itself).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.stack import (
    Deployment,
    launch,
    launch_assets,
    local_source,
    overlapping,
    set_pool_limits,
    start_all,
    tag,
    wait_for_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
FILES = 4


def test_five_runs_per_source_at_once_run_one_at_a_time_per_source(
    make_deployment: Callable[..., Deployment], tmp_path: Path
) -> None:
    fetch_log = tmp_path / "fetches.log"
    sources = [local_source(sid, tmp_path / sid, FILES, fetch_delay=2.0, fetch_log=fetch_log)
               for sid in ("alpha", "beta")]
    deployment = make_deployment(sources)
    assert "da_source_alpha: limit 1" in set_pool_limits(deployment)
    start_all(deployment)

    submitted = [launch(deployment, f"{sid}_sync") for _ in range(5) for sid in ("alpha", "beta")]
    # what the UI's Materialize button launches: no da/source tag; the source's pool caps it instead
    from_ui = [launch_assets(deployment, ["alpha", "files"]) for _ in range(2)]
    found = wait_for_all(deployment, timeout=480)

    assert sorted(r["runId"] for r in found) == sorted(submitted + from_ui)
    assert {r["status"] for r in found} == {"SUCCESS"}, deployment.log_tail()
    for sid in ("alpha", "beta"):
        of_source = [r for r in found if tag(r, "da/source") == sid or (sid == "alpha" and r["runId"] in from_ui)]
        assert len(of_source) == (7 if sid == "alpha" else 5)
        assert overlapping(of_source) == [], f"runs of {sid} overlapped"
    # the two sources are not serialized against each other: the cap is per source
    assert overlapping(found), "no two runs ever overlapped: the test would not see a missing cap"
    fetched = [line.split()[0] for line in fetch_log.read_text().splitlines()]
    assert sorted(fetched) == sorted(f"f{i:02d}.csv" for i in range(FILES) for _ in ("alpha", "beta"))  # once each
    for sid in ("alpha", "beta"):
        assert len(list((deployment.workspace / sid).glob("*.csv"))) == FILES
