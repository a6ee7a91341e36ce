"""The sensor ``da_lost_retries``: re-requests sync runs whose automatic retry Dagster lost.

Dagster 1.13 stores a ``RUN_FAILURE`` event before it marks the run failed and tags
it ``dagster/will_retry``; a retry daemon that reads the event in between sees a run
that has not failed and never looks at it again (``docs/dagster-lost-retry.md``).
A run left failed, tagged ``dagster/will_retry=true``, with no retry after
``min_age_seconds`` is requested again here, once (its run key), as a whole new
run of the same job: a sync is idempotent, so running it in full is safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import (
    AUTO_RETRY_RUN_ID_TAG,
    PARENT_RUN_ID_TAG,
    PARTITION_NAME_TAG,
    SYSTEM_TAG_PREFIX,
    WILL_RETRY_TAG,
)

SENSOR_NAME = "da_lost_retries"
RETRY_OF_TAG = "da/retry_of"
# a retry Dagster launches shows up within seconds; wait well past its daemon's ticks
DEFAULT_MIN_AGE_SECONDS = 120
# runs failed longer ago than this are left alone (the sensor was off, or they are history)
DEFAULT_LOOKBACK_SECONDS = 24 * 3600
PAGE = 100


@dataclass(frozen=True)
class RetryWindow:
    """Which failed runs a tick looks at: updated after ``after`` and before ``before``."""

    after: datetime
    before: datetime


def _tick_window(cursor: str | None, now: datetime, min_age: float, lookback: float) -> RetryWindow:
    """The window of a tick: from the cursor (or ``now - lookback``) to ``now - min_age``."""
    earliest = now - timedelta(seconds=lookback)
    after = datetime.fromtimestamp(float(json.loads(cursor)["after"]), UTC) if cursor else earliest
    return RetryWindow(after=max(after, earliest), before=now - timedelta(seconds=min_age))


def _failed_awaiting_retry(instance: DagsterInstance, window: RetryWindow,
                          job_names: Sequence[str]) -> Iterator[tuple[DagsterRun, float]]:
    """Failed runs of ``job_names`` in ``window`` that Dagster said it would retry, oldest first."""
    filters = RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "true"},
                         updated_after=window.after, updated_before=window.before)
    records = instance.get_run_records(filters=filters, limit=PAGE, order_by="update_timestamp", ascending=True)
    for record in records:
        if record.dagster_run.job_name in job_names:
            yield record.dagster_run, record.update_timestamp.timestamp()


def _retry_was_launched(instance: DagsterInstance, run: DagsterRun) -> bool:
    """Whether Dagster (or a person, or this sensor) already launched a run after ``run``."""
    if run.tags.get(AUTO_RETRY_RUN_ID_TAG):
        return True
    for tag in (PARENT_RUN_ID_TAG, RETRY_OF_TAG):
        if instance.get_run_ids(RunsFilter(tags={tag: run.run_id}), limit=1):
            return True
    return False


def _retry_request(run: DagsterRun) -> RunRequest:
    """The same job, config, selection and partition, with the run's own (non-system) tags."""
    tags = {key: value for key, value in run.tags.items() if not key.startswith(SYSTEM_TAG_PREFIX)}
    return RunRequest(
        run_key=f"lost-retry:{run.run_id}",
        job_name=run.job_name,
        run_config=dict(run.run_config),
        tags={**tags, RETRY_OF_TAG: run.run_id},
        asset_selection=list(run.asset_selection) if run.asset_selection else None,
        partition_key=run.tags.get(PARTITION_NAME_TAG),
    )


def lost_retries_sensor(jobs: Sequence[UnresolvedAssetJobDefinition], name: str = SENSOR_NAME,
                        min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
                        lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS) -> SensorDefinition:
    """A sensor over ``jobs``: runs every minute, on by default, idle without run retries.

    The code location has one, ``da_lost_retries``; each Component its own, ``N_lost_retries``.

    Args:
        jobs: The jobs whose failed runs it watches.
        name: The sensor's name.
        min_age_seconds: How long a failed run waits for Dagster's own retry before the sensor launches it.
        lookback_seconds: How far back the first tick (no cursor yet) looks for failed runs.

    Returns:
        The sensor.
    """
    job_names = [job.name for job in jobs]

    @sensor(name=name, jobs=list(jobs), minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="Requests again a failed sync whose automatic retry Dagster lost (see the docs).")
    def _lost_retries(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        if not context.instance.run_retries_enabled:
            return SkipReason("run retries are not enabled on this instance")
        window = _tick_window(context.cursor, datetime.now(UTC), min_age_seconds, lookback_seconds)
        requests, last = [], window.after.timestamp()
        for run, updated in _failed_awaiting_retry(context.instance, window, job_names):
            last = updated
            if not _retry_was_launched(context.instance, run):
                context.log.warning(f"run {run.run_id} of {run.job_name} failed and its retry never came; "
                                    "requesting it again")
                requests.append(_retry_request(run))
        return SensorResult(run_requests=requests, cursor=json.dumps({"after": last}))

    return _lost_retries
