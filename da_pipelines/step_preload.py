"""Preloaded by the shard executor's fork server, so each step process forked from it starts warm.

The shard executor (``da_pipelines.jobs.shard_executor``) forks each step from a fork server
that imports this module once per run: the code location (``da_pipelines``) and what every
step imports before it can start: the instance's SQLite storages (SQLAlchemy, Alembic), the
compute-log manager, the CLI module its command refers to, the IO manager's paths. Without it
each step process imported them itself (about 600 modules, 1-1.5 s of CPU per step process,
measured on 2 cores: each shard, then the merge).

A module missing in another Dagster release is skipped: this only saves time.
"""

from __future__ import annotations

import importlib

WARM_MODULES = (
    "da_pipelines",
    "dagster._cli.job",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.instance.factory",
    "upath.implementations.local",
    "dotenv",
)


def _warm() -> list[str]:
    """Import :data:`WARM_MODULES`; the names that could not be imported."""
    missing = []
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


MISSING = _warm()
