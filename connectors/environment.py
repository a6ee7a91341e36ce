"""Every ``DA_*`` environment variable, declared once: its name, default, meaning and readers.

Dagster's own variables that this project's files set (``DAGSTER_HOME``, ``DAGSTER_PG_*``) are
declared too, so the generated page lists everything an operator sets.

The documentation's environment-variables page is generated from :data:`VARIABLES`, and a
test fails on any ``DA_*`` name in the code (``connectors``, ``da_pipelines``, ``scripts``,
``deploy``) that is not declared here. Code reads a variable with :func:`read`, which refuses
an undeclared name.

Example:
    >>> from connectors.environment import read
    >>> read("DA_WORKSPACE") or "workspace"
    'workspace'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["VARIABLES", "Variable", "default_number", "read", "variable"]


@dataclass(frozen=True)
class Variable:
    """One environment variable: what it does, its default, and which part of the project reads it."""

    name: str
    default: str
    """The default as the environment-variables page shows it (``1048576 (1 MiB)``, ``none``, a rule)."""
    description: str
    read_by: str
    group: str
    number: int | None = None
    """The default of a numeric variable, as the code uses it (its one source: readers take it from here)."""


_KIB, _MIB = 1 << 10, 1 << 20
_UNITS = ((1 << 30, "GiB"), (1 << 20, "MiB"), (_KIB, "KiB"))


def _shown(name: str, number: int) -> str:
    """How a numeric default reads on the page: a size in bytes with its binary unit too (``1048576 (1 MiB)``)."""
    unit = next(((size, unit) for size, unit in _UNITS if number % size == 0), None)
    return f"{number} ({number // unit[0]} {unit[1]})" if name.endswith("_BYTES") and unit else str(number)


def _group(group: str, read_by: str, *rows: tuple[str, str | int, str]) -> tuple[Variable, ...]:
    return tuple(Variable(name, _shown(name, default) if isinstance(default, int) else default, description,
                          read_by, group, default if isinstance(default, int) else None)
                 for name, default, description in rows)


_API = "the HTTP API (connectors.api, da-sources serve)"
_SERVE = "da-sources serve"

VARIABLES: tuple[Variable, ...] = (
    *_group(
        "Sources, workspace and state", "the CLI, the HTTP API and the Dagster code location",
        ("DA_SOURCES_FILE", "./sources.yaml",
         "The sources file. A file named so must exist (except for `da-sources add`, which creates it)."),
        ("DA_WORKSPACE", "./workspace",
         "The workspace root: source X lands under <root>/X/; for the HTTP API, the base of the "
         "thread folders (<base>/<thread_id>)."),
        ("DA_STATE_DIR", "da-sources-state beside the sources file",
         "da-sources' records of threads (lineage of attached files, staging, uploads); never inside "
         "the workspace."),
        ("DA_SAMPLE_ONLY", "unset",
         "1: serve the embedded sample source alone, whatever the sources file holds (scripts/run-sample)."),
    ),
    *_group(
        "Secrets", "the credential store (connectors.secrets)",
        ("DA_SECRETS_FILE", "~/.config/da-sources/secrets.fernet",
         "The Fernet-encrypted credential store file (mode 0600), used when no OS keyring works."),
        ("DA_SECRETS_KEY", "unset",
         "The key of the encrypted store file (make one with `da-sources secrets keygen`)."),
        ("DA_SECRETS_BACKEND", "unset (keyring when one works, else the file)",
         "keyring or file: force one credential store."),
    ),
    *_group(
        "HTTP API: files", _API,
        ("DA_API_KEYS_FILE", "api-keys.json beside the sources file", "The hashed API keys."),
        ("DA_API_POLICY_FILE", "api-policy.yaml beside the sources file",
         "The operator's policy: what API callers may create and reach (closed defaults without it)."),
        ("DA_API_AUDIT_LOG", "api-audit.jsonl beside the sources file", "The audit log (one JSON line per call)."),
        ("DA_API_JOBS_DIR", "<DA_WORKSPACE>/.fetch-jobs",
         "Where fetch jobs land, apart from the thread folders."),
        ("DA_API_CORS_ORIGINS", "none", "Browser origins allowed to call the API (comma-separated)."),
    ),
    *_group(
        "HTTP API: limits", _API,
        ("DA_API_MAX_BODY_BYTES", 1 * _MIB, "Largest request body, counted while it is read (413)."),
        ("DA_API_MAX_ITEM_BYTES", 100 * _MIB,
         "Largest item a fetch, preview or attach reads (per source: metadata.api.max_item_bytes)."),
        ("DA_API_PREVIEW_MAX_ROWS", 1000, "Most rows a preview returns."),
        ("DA_API_PREVIEW_MAX_BYTES", 4 * _MIB, "Largest preview answer."),
        ("DA_API_THREAD_MAX_ROWS", 5_000_000, "Most rows of one table or query attached to a thread."),
        ("DA_API_THREAD_MAX_BYTES", 1024 * _MIB,
         "Most bytes (the planner's estimate) of one table or query attached to a thread."),
        ("DA_API_CACHE_SECONDS", 60, "How long listings and metadata are cached per source."),
        ("DA_API_MAX_JOBS", 16, "Fetch jobs running at once."),
        ("DA_API_MAX_JOBS_PER_SOURCE", 4, "Fetch jobs running at once per source."),
        ("DA_API_KEEP_JOBS", 200, "Finished jobs remembered."),
        ("DA_API_KEEP_JOBS_BYTES", 16 * _MIB, "Total size of the finished jobs' answers remembered."),
        ("DA_API_TIMEOUT_SECONDS", 60, "Longest wait on a source within a request (504 past it)."),
        ("DA_API_IDLE_SECONDS", 300, "A source's pooled connections close after this long unused."),
    ),
    *_group(
        "da-sources serve", _SERVE,
        ("DA_API_MAX_CONNECTIONS", 4096, "Open connections at most; past it the oldest idle one is closed."),
        ("DA_API_HEADER_TIMEOUT_SECONDS", 10, "A request's headers must arrive within this."),
        ("DA_API_BODY_TIMEOUT_SECONDS", 30, "A request's body must arrive within this once its headers did."),
        ("DA_UMASK", "007", "File mode creation mask of the server: what it lands is 0660, its folders 0770."),
    ),
    *_group(
        "Dagster", "the Dagster code location (da_pipelines), where it loads and in its run workers",
        ("DA_SHARD_EXECUTOR", "multiprocess",
         "The executor of a sync job with sharded sets: multiprocess (one process per step) or k8s "
         "(k8s_job_executor: one pod per step, from the run launcher's settings; pip install 'da-sources[k8s]')."),
    ),
    *_group(
        "Deployment", "deploy/ (the webserver's and daemon's workspace.yaml, the compose file)",
        ("DA_CODE_SERVER_HOST", "none", "Host of the Dagster code server (dagster api grpc -m da_pipelines)."),
        ("DA_CODE_SERVER_PORT", "none", "Port of the Dagster code server."),
    ),
    *_group(
        "Dagster's own, set by this project's files", "Dagster (scripts/run-sample, deploy/dagster.yaml)",
        ("DAGSTER_HOME", "./.dagster for scripts/run-sample",
         "Dagster's instance folder (run history, event logs); deploy/ puts dagster.yaml there."),
        ("DAGSTER_PG_HOST", "none", "deploy/dagster.yaml: host of Dagster's PostgreSQL storage."),
        ("DAGSTER_PG_PORT", "none", "deploy/dagster.yaml: its port."),
        ("DAGSTER_PG_DB", "none", "deploy/dagster.yaml: its database."),
        ("DAGSTER_PG_USER", "none", "deploy/dagster.yaml: its user."),
        ("DAGSTER_PG_PASSWORD", "none", "deploy/dagster.yaml: its password."),
    ),
    *_group(
        "DeepAnalyze's side", "da-sources-client (clients/python), in DeepAnalyze's process",
        ("DA_SOURCES_URL", "none", "The da-sources HTTP API's URL."),
        ("DA_SOURCES_API_KEY", "none", "DeepAnalyze's API key; the glue removes it from the environment."),
        ("DA_SOURCES_AGENT_SOURCES", "none",
         "Comma-separated source ids the agent's own code may attach (through a thread token)."),
        ("DA_SOURCES_TOKEN_TTL", 3600, "Seconds a thread token minted by the glue lasts."),
        ("DA_SOURCES_TOKEN_DIR", "none", "Where the glue leaves a thread's token (<dir>/<thread_id>.json)."),
    ),
    *_group(
        "Benchmarks", "benchmarks/",
        ("DA_BENCH_DIR", "the system temporary folder", "Where a benchmark writes its sources and outputs."),
        ("DA_BENCH_RESULTS", "benchmarks/results", "Where a benchmark writes its result files."),
        ("DA_BENCH_NOTE", "none", "A note every result file of the run carries (e.g. that the machine is shared)."),
        ("DA_BENCH_LATE_IMPORTS", "none", "A file listing modules a Python candidate imports inside its clock."),
        ("DA_BENCH_AZURE_CS", "the harness's Azurite", "Connection string of the Azure benchmark's account."),
        ("DA_BENCH_AZURE_BIG_MIB", "1024", "Size of the Azure benchmark's large blob."),
        ("DA_BENCH_API_MIB", "1024", "Size of the API benchmark's large blob."),
        ("DA_BENCH_API_ITEMS", "10000", "Blobs the API benchmark lists."),
        ("DA_BENCH_S3_SERVER", "s3rver", "The S3 server the S3 benchmark starts (s3rver or moto)."),
        ("DA_BENCH_S3_ENDPOINT", "none", "An S3 endpoint to benchmark instead of a local server."),
        ("DA_BENCH_S3_KEY", "none", "Access key id for DA_BENCH_S3_ENDPOINT."),
        ("DA_BENCH_S3_SECRET", "none", "Secret access key for DA_BENCH_S3_ENDPOINT."),
        ("DA_BENCH_S3_BIG_MIB", "1024", "Size of the S3 benchmark's large object."),
        ("DA_BENCH_S3_COUNT", "10000", "Small objects of the S3 benchmark."),
        ("DA_BENCH_S3_REPS", "3", "Repetitions of each S3 benchmark case."),
    ),
)

_BY_NAME = {v.name: v for v in VARIABLES}


def variable(name: str) -> Variable:
    """The declared variable ``name``.

    Args:
        name: The variable's name (``DA_STATE_DIR``).

    Returns:
        Its declaration: default, meaning and where it is read.

    Raises:
        KeyError: ``name`` is not declared in :data:`VARIABLES`.
    """
    return _BY_NAME[name]


def default_number(name: str) -> int:
    """The default of the declared numeric variable ``name``: the one value the code falls back to.

    Args:
        name: The variable's name (``DA_API_MAX_JOBS``).

    Returns:
        Its numeric default.

    Raises:
        KeyError: ``name`` is not declared, or its default is no number (a path, ``none``).
    """
    number = variable(name).number
    if number is None:
        raise KeyError(f"{name} has no numeric default")
    return number


def read(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the declared variable ``name`` in ``environ`` (default: the process's), or None.

    An empty value counts as unset.

    Args:
        name: The variable's name (``DA_STATE_DIR``).
        environ: The environment to read; None for ``os.environ``.

    Returns:
        The value, or None when unset or empty.

    Raises:
        KeyError: ``name`` is not declared in :data:`VARIABLES` (a typo, or a new variable to declare).
    """
    variable(name)
    value = (os.environ if environ is None else environ).get(name)
    return value or None
