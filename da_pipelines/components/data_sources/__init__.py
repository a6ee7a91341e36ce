"""One data source as a Dagster Component: ``component.py`` (the ``defs.yaml`` model) and ``scaffolder.py``."""

from da_pipelines.components.data_sources.component import DataSourceComponent
from da_pipelines.components.data_sources.scaffolder import DataSourceScaffolder

__all__ = ["DataSourceComponent", "DataSourceScaffolder"]
