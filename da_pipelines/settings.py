"""Per-source tuning of the Dagster layer, read from the source's ``metadata.dagster``.

The models live in ``connectors.pipeline_settings`` (no dagster there), so the
sources file, the CLI and the API refuse a bad ``metadata.dagster`` with the very
checks the code location applies; they are re-exported here, their Dagster-side home.
"""

from connectors.pipeline_settings import (
    DEFAULT_SET,
    MAX_PARTITIONS,
    CheckSettings,
    ItemSetSpec,
    PipelineSettings,
    TableScope,
    pipeline_settings,
)

__all__ = ["DEFAULT_SET", "MAX_PARTITIONS", "CheckSettings", "ItemSetSpec", "PipelineSettings", "TableScope",
           "pipeline_settings"]
