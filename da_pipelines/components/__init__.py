"""The Dagster Components of da-sources, listed by ``dg list components`` (this module is the registry entry point).

``da_pipelines.components.DataSourceComponent``: one data source, added with
``dg scaffold defs da_pipelines.components.DataSourceComponent NAME --id ID --type TYPE``.
"""

from da_pipelines.components.data_sources import DataSourceComponent

__all__ = ["DataSourceComponent"]
