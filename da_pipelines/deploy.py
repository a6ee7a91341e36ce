"""What a team deployment (deploy/) needs beyond Dagster's defaults.

* :class:`MonitoredRunLauncher`: Dagster's default launcher (each run a subprocess of the code server
  that loaded it) plus run-worker health checks, which the default launcher lacks, so run monitoring
  fails a run whose worker died with its code server, and run retries start it again.
* :func:`exit_with_parent`: a step worker (or a run worker under a code server) ends at once when
  the process that started it dies, instead of landing on as an orphan after its run was failed.
* ``python -m da_pipelines.deploy pools``: sets the concurrency limit of every source's pool
  (``da_source_<N>``) explicitly, once per deployment: a brand-new pool with only a default limit
  was seen not to cap its first burst of runs.

Example:
    $ DAGSTER_HOME=/opt/dagster/home python -m da_pipelines.deploy pools --limit 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster._serdes import deserialize_value

from connectors.ids import is_valid_source_id, source_slug
from connectors.registry import read_sources_file, sources_file_path

HEALTH_CHECK_TIMEOUT = 15  # seconds for the code server to answer one health check
PARENT_POLL_SECONDS = 0.5
_watching = threading.Event()


def pool_of(source_id: str) -> str:
    """The concurrency pool of every asset and op of a source.

    Args:
        source_id: The source's id.

    Returns:
        ``da_source_<slug>``; its limit is set with :func:`set_pool_limits`.
    """
    return f"da_source_{source_slug(source_id)}"


class MonitoredRunLauncher(DefaultRunLauncher):
    """The default run launcher, whose runs run monitoring can see die.

    A run is healthy while the code server that started it still runs its process. A code server
    that answers but no longer knows the run (it was restarted) means the run worker is gone: its
    process was a child of that server. While the code server does not answer, the run is left as
    it is (deploy/docker-compose.yaml restarts the code server).
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """Ask the code server that started ``run`` whether it still runs it.

        Args:
            run: A run this launcher started.

        Returns:
            Running while the code server runs it (or does not answer yet: transient), failed when
            it answers without the run, unknown when no code server is recorded for it.
        """
        # the same client Dagster's own terminate() uses: built from the run's gRPC-info tag
        client = self._get_grpc_client_for_termination(run.run_id)  # type: ignore[no-untyped-call]
        if client is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no code server is recorded for the run")
        try:
            answer = deserialize_value(
                client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id), HEALTH_CHECK_TIMEOUT),
                CanCancelExecutionResult,
            )
        except DagsterUserCodeUnreachableError:
            # restarting, most likely: failing the run now would also fail its retry, which needs the
            # code server to plan; the next check, once it answers, tells whether the run survived
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the code server does not answer yet", transient=True)
        if answer.can_cancel:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, "the code server has no process for the run")


def exit_with_parent() -> None:
    """End this process as soon as the process that started it dies (idempotent; Linux and macOS).

    Dagster starts step workers (and, under a code server, run workers) as multiprocessing children.
    When their parent is killed they live on as orphans: one was seen landing items and reporting
    success into a run already marked failed, while the retry landed the same items. Landings are
    atomic, so ending mid-way leaves whole files or swept temporaries, never a mixed file. A process
    not started by multiprocessing (``dagster job execute`` itself) is left alone.
    """
    parent = multiprocessing.parent_process()
    if parent is None or _watching.is_set():
        return
    _watching.set()
    # spawned: our parent process is the one that started us, and changes when it dies. Forked by a
    # fork server (the shard executor's start method): the server is our parent and outlives the run
    # worker (we hold its "alive" pipe); the pipe multiprocessing keeps to the process that started
    # us (our parent's sentinel) ends with it in both cases.
    threading.Thread(target=_watch_parent, args=(parent, os.getppid()), name="da-exit-with-parent",
                     daemon=True).start()


def _watch_parent(parent: BaseProcess, parent_pid: int) -> None:
    # an orphan is adopted by init or a subreaper (its ppid changes); a dead starter closes its pipe
    while os.getppid() == parent_pid and parent.is_alive():
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def set_pool_limits(instance: DagsterInstance, source_ids: Sequence[str], limit: int) -> dict[str, int]:
    """Set the concurrency limit of each source's pool.

    Args:
        instance: The Dagster instance whose pools are set.
        source_ids: The sources whose pools get the limit.
        limit: Steps of one source that may run at once.

    Returns:
        Each pool's name and the limit it now has.
    """
    limits = {pool_of(source_id): limit for source_id in source_ids}
    for pool, value in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, value)
    return limits


def _pool_source_ids(path: Path) -> list[str]:
    """Every valid id of the sources file: also of an entry this process cannot build (a plugin type
    installed only on the code server), since its runs still need their pool capped."""
    loaded = read_sources_file(path)
    ids = [source.id for source in loaded.sources]
    return ids + [str(bad.id) for bad in loaded.invalid if is_valid_source_id(bad.id) and bad.id not in ids]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m da_pipelines.deploy pools [--limit N] [--sources FILE]``: set the sources' pool limits.

    Args:
        argv: The arguments after the module name; None reads the process's own.

    Returns:
        0 when every pool's limit is set (argparse exits 2 on a usage error).
    """
    parser = argparse.ArgumentParser(prog="python -m da_pipelines.deploy")
    commands = parser.add_subparsers(dest="command", required=True)
    pools = commands.add_parser("pools", help="set every source's pool limit on the instance ($DAGSTER_HOME)")
    pools.add_argument("--limit", type=int, default=1, help="runs of one source at a time (default 1)")
    pools.add_argument("--sources", help="sources file (default: $DA_SOURCES_FILE or ./sources.yaml)")
    args = parser.parse_args(argv)
    path = sources_file_path(args.sources)
    source_ids = _pool_source_ids(path) if path.exists() else ["sample"]
    with DagsterInstance.get() as instance:
        for pool, limit in set_pool_limits(instance, source_ids, args.limit).items():
            print(f"pool {pool}: limit {limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
