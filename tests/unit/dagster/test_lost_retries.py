"""The safety net for a lost automatic retry: a failed sync tagged will_retry with no retry is requested once.

The lost event is simulated the way Dagster loses it: the run is failed and tagged
``dagster/will_retry=true``, and no retry run is ever created (the retry daemon
read the failure before the run's status and tag were written).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, RunRequest, SensorResult, SkipReason, build_sensor_context
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, WILL_RETRY_TAG

from connectors.base import DataSourceConfig
from connectors.testing import memory_store
from da_pipelines.definitions import build_definitions
from da_pipelines.lost_retries import RETRY_OF_TAG, SENSOR_NAME, lost_retries_sensor
from tests.dagster_location import register_test_connectors

JOB = "mem_src_sync"


@pytest.fixture
def store_name() -> str:
    register_test_connectors()
    name = f"unit-{uuid.uuid4().hex[:8]}"
    memory_store(name).put("a.csv", b"x\n1\n", modified_at=1_700_000_000)
    return name


@pytest.fixture
def defs(store_name: str, tmp_path: Path) -> Definitions:
    source = DataSourceConfig(id="Mem-Src", type="memory", name="Memory",  # type: ignore[arg-type]
                              config={"store": store_name}, metadata={"dagster": {"retry_delay_seconds": 0}})
    return build_definitions(sources=[source], workspace=str(tmp_path / "ws"))


def temp_instance(tmp_path: Path, retries: bool) -> Iterator[DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home), overrides={"run_retries": {"enabled": retries}}) as instance:
        yield instance


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    yield from temp_instance(tmp_path, retries=True)


def lost_retry(defs: Definitions, instance: DagsterInstance, will_retry: str = "true") -> str:
    """A failed run of the sync job that Dagster said it would retry, and never did."""
    job = defs.resolve_job_def(JOB)
    run = instance.create_run_for_job(job_def=job, tags={"da/source": "Mem-Src", "team": "data"})
    instance.report_run_failed(run)
    instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: will_retry})
    return run.run_id


def tick(defs: Definitions, instance: DagsterInstance, cursor: str | None = None,
         min_age: float = 0) -> SensorResult | SkipReason:
    sensor = lost_retries_sensor([defs.resolve_job_def(JOB)], min_age_seconds=min_age)  # type: ignore[list-item]
    result = sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(result, SensorResult | SkipReason)
    return result


def requests(result: SensorResult | SkipReason) -> list[RunRequest]:
    assert isinstance(result, SensorResult)
    return list(result.run_requests or [])


def test_a_lost_retry_is_requested_once_with_the_runs_own_tags(defs: Definitions, instance: DagsterInstance) -> None:
    run_id = lost_retry(defs, instance)
    first = tick(defs, instance)
    [request] = requests(first)
    assert request.job_name == JOB
    assert request.run_key == f"lost-retry:{run_id}"
    assert request.tags[RETRY_OF_TAG] == run_id
    assert request.tags["team"] == "data" and request.tags["da/source"] == "Mem-Src"
    assert not any(key.startswith("dagster/") for key in request.tags)
    assert isinstance(first, SensorResult)
    assert requests(tick(defs, instance, cursor=first.cursor)) == []  # the cursor moved past it


def test_the_requested_run_lands_the_items_and_is_then_known_as_the_retry(
        defs: Definitions, instance: DagsterInstance, tmp_path: Path) -> None:
    lost_retry(defs, instance)
    [request] = requests(tick(defs, instance))
    result = defs.resolve_job_def(JOB).execute_in_process(instance=instance, run_config=request.run_config,
                                                          tags=request.tags)
    assert result.success
    assert (tmp_path / "ws" / "Mem-Src" / "a.csv").read_bytes() == b"x\n1\n"
    assert requests(tick(defs, instance)) == []  # even without the cursor: the retry exists


@pytest.mark.parametrize("case", ["retried by dagster", "not to be retried", "too recent"])
def test_no_request_when_dagster_retried_declined_or_may_still_retry(
        defs: Definitions, instance: DagsterInstance, case: str) -> None:
    run_id = lost_retry(defs, instance, will_retry="false" if case == "not to be retried" else "true")
    if case == "retried by dagster":
        job = defs.resolve_job_def(JOB)
        instance.create_run_for_job(job_def=job, tags={PARENT_RUN_ID_TAG: run_id})
    result = tick(defs, instance, min_age=3600 if case == "too recent" else 0)
    assert requests(result) == []
    if case == "too recent":  # the cursor did not move past it: a later tick still sees it
        assert isinstance(result, SensorResult)
        assert len(requests(tick(defs, instance, cursor=result.cursor))) == 1


def test_idle_when_the_instance_does_not_retry_runs(defs: Definitions, tmp_path: Path) -> None:
    for instance in temp_instance(tmp_path, retries=False):
        lost_retry(defs, instance)
        assert isinstance(tick(defs, instance), SkipReason)


def test_the_code_location_has_the_sensor_on_by_default(defs: Definitions) -> None:
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status.value == "RUNNING"
    assert JOB in {job.name for job in sensor.jobs}
