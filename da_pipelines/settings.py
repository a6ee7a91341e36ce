"""Per-source tuning of the Dagster layer, read from the source's ``metadata.dagster``.

Example (sources file)::

    metadata:
      dagster: {max_items_per_tick: 2000, batch_size: 200, minimum_interval_seconds: 60}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.settings import describe_errors
from da_pipelines.cursor import DEFAULT_LOOKBACK_SECONDS


class PipelineSettings(BaseModel):
    """How a source's sensor and sync behave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum_interval_seconds: int = Field(30, ge=5, description="Seconds between sensor ticks.")
    max_items_per_tick: int = Field(
        5000, ge=1, description="Soft bound on the items one tick requests: keeps a tick short."
    )
    batch_size: int = Field(500, ge=1, description="Items per requested run.")
    lookback_seconds: int = Field(
        DEFAULT_LOOKBACK_SECONDS, ge=0, description="Items this close to the newest are tracked exactly."
    )
    concurrency: int = Field(8, ge=1, le=64, description="Fetches at once within a run.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a run step after a retryable error.")
    retry_delay_seconds: float = Field(5.0, ge=0, description="First retry delay; doubles each retry.")
    sensor_running_by_default: bool = Field(False, description="Start the sensor without a click in the UI.")


def pipeline_settings(source: DataSourceConfig) -> PipelineSettings:
    """The settings in ``source.metadata["dagster"]`` (defaults when absent).

    Raises:
        ConfigurationError: an unknown key or a bad value, naming the source and the field.
    """
    raw: Any = source.metadata.get("dagster") or {}
    try:
        return PipelineSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc, "metadata.dagster"), source_id=source.id) from None
