"""Per source: the sync job ``N_sync`` (every dataset of the source, or the items its run config names).

``N_sync`` is an asset job over the source's datasets: one step, ``N_sync_items``,
lists the source once and lands what is new, changed or damaged. To land chosen
items only, give it run config (in the launchpad, or ``-c config.yaml``)::

    ops:
      N_sync_items:
        config:
          items: [{identifier: "2024/sales.csv", version: ""}]   # "" fetches whatever landed before
          full_refresh: true   # incremental tables: export them whole again (drops deleted rows)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    Config,
    ExecutorDefinition,
    Failure,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from pydantic import Field

from connectors.environment import read
from connectors.errors import ConfigurationError, DataSourceError, is_retryable
from connectors.secrets.references import redact
from da_pipelines.translator import SourceKeys

SHARD_EXECUTOR_ENV = "DA_SHARD_EXECUTOR"


class SyncItem(Config):  # type: ignore[misc]
    """One item a sync run should land: its identifier and the version the sensor saw."""

    identifier: str
    version: str = ""  # empty: fetch it whatever version landed before


class SyncConfig(Config):  # type: ignore[misc]
    """Run config of ``N_sync_items``: no items means list the source and sync everything new or changed."""

    items: list[SyncItem] = []
    full_refresh: bool = Field(False, description=(
        "Incremental tables: export them whole and replace their dataset folder in one step, instead of "
        "adding the rows after the last cursor (a cursor does not see deletes; this drops them)."))


def sync_job(keys: SourceKeys, asset_keys: Sequence[AssetKey], *,
             sharded: bool = False) -> UnresolvedAssetJobDefinition:
    """``N_sync``: materializes every unpartitioned dataset of the source (and runs their checks).

    Args:
        keys: The source's names, datasets and settings, as the translator made them.
        asset_keys: The (translated) keys of the datasets the job materializes.
        sharded: A set of the source syncs in shards, one step each: the job runs them in
            processes (or pods, :func:`shard_executor`); otherwise the job is one step in its run's process.

    Returns:
        The job, resolved by Dagster against the assets.
    """
    return define_asset_job(
        name=f"{keys.slug}_sync",
        selection=AssetSelection.assets(*asset_keys),
        description=f"Land every new, changed or damaged item of {keys.source.name}, one event per dataset.",
        tags={"da/source": keys.source.id},
        # one step: a step process would only add its start-up (the sync fans out inside the step);
        # the job still runs under the multiprocess or a distributed executor when one is configured
        executor_def=shard_executor() if sharded else in_process_executor,
    )


def shard_executor() -> ExecutorDefinition:
    """The executor of a job with sharded sets: ``$DA_SHARD_EXECUTOR``, ``multiprocess`` (default) or ``k8s``.

    ``k8s`` (``k8s_job_executor``, from ``pip install 'da-sources[k8s]'``) runs each step in its own pod,
    configured from the run launcher's settings (image, volumes, secrets: ``deploy/helm/values.yaml``).

    Returns:
        The executor definition.

    Raises:
        ConfigurationError: ``$DA_SHARD_EXECUTOR`` names another executor.
    """
    name = read(SHARD_EXECUTOR_ENV) or "multiprocess"
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        executor: ExecutorDefinition = k8s_job_executor  # typed whether or not dagster-k8s ships its types
        return executor
    if name != "multiprocess":
        raise ConfigurationError(f"{SHARD_EXECUTOR_ENV} must be 'multiprocess' or 'k8s', not {name!r}")
    return SHARD_MULTIPROCESS


def _forked_by_default(config: Mapping[str, Any]) -> dict[str, Any]:
    """The multiprocess executor's config, starting steps from a fork server unless the run says otherwise.

    ``spawn`` (Dagster's default) starts a fresh interpreter per step that imports Dagster and the
    code location again (about 1.5 s of CPU each, measured): a sharded sync pays it for every
    shard and the merge. A fork server imports them once per run and forks each step. Its modules
    are named (:data:`STEP_PRELOAD`): with ``forkserver: {}`` Dagster 1.13 preloads none of the
    job's (its executor reads the missing ``preload_modules`` as an empty list, not as "the job's
    module"), and each forked step imported them itself.
    """
    return {"start_method": {"forkserver": {"preload_modules": list(STEP_PRELOAD)}}, **config}


STEP_PRELOAD = ("da_pipelines.step_preload",)  # the code location and what a step imports (see that module)


SHARD_MULTIPROCESS: ExecutorDefinition = multiprocess_executor.configured(
    _forked_by_default, config_schema=multiprocess_executor.config_schema.as_field())


def failure_for(errors: Sequence[DataSourceError], *, before_items: bool = False) -> Failure:
    """A ``Failure`` that lets the ``RetryPolicy`` retry only when some error is retryable.

    Args:
        errors: What failed (at least one); the first five are shown, redacted.
        before_items: The source could not be reached or listed (no item was tried), so the
            description does not count items.

    Returns:
        The ``Failure`` to raise, with ``failed`` and ``retryable`` metadata.
    """
    retryable = any(is_retryable(error) for error in errors)
    shown = "; ".join(redact(str(error)) for error in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return Failure(
        description=(f"the source could not be read (no item was fetched): {shown}" if before_items
                     else f"{len(errors)} item(s) failed: {shown}{more}"),
        metadata={"failed": len(errors), "retryable": retryable},
        allow_retries=retryable,
    )
