"""Dagster's fork server preloads nothing unless told what (docs/dagster-forkserver-preload.md).

This watches Dagster's behaviour, not ours: if a Dagster release reads a missing
``preload_modules`` as "the job's module" again, this test fails, and the explicit preload in
``da_pipelines/jobs.py`` can be reconsidered.
"""

from __future__ import annotations

from dagster._core.definitions.executor_definition import _core_multiprocess_executor_creation


def test_dagster_reads_a_missing_preload_list_as_an_empty_one() -> None:
    executor = _core_multiprocess_executor_creation({"start_method": {"forkserver": {}}, "retries": {"enabled": {}}})
    assert executor._explicit_forkserver_preload == []  # None would let Dagster preload the job's module

