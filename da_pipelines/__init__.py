"""The Dagster code location of da-sources: ``defs``, built from the sources file.

Load it with ``dagster dev -w workspace.yaml`` or ``dagster job execute -m da_pipelines -j sample_sync``.

Where things are:

* the asset model: ``translator`` (every asset key, group, kind, tag and metadata:
  ``DataSourceTranslator``) over the datasets of ``connectors.syncing.datasets``;
  ``assets`` (the definitions that land them); ``checks`` (the integrity check);
* the Component: ``components/data_sources/`` (``component.py``, ``scaffolder.py``);
* the sensors: ``sensors`` (and ``lost_retries``); the jobs: ``jobs``;
* the resources: ``resources``; one source put together: ``factory``; the code location:
  ``definitions`` and ``sources``; a team deployment: ``deploy``.

The planning underneath (which items to land, the sensor's cursor, manifests) does not
need Dagster and lives in ``connectors.syncing``. ``defs`` is built on first access,
so importing a submodule never reads the sources file.
"""

from typing import Any

try:
    from dagster import Definitions
except ModuleNotFoundError as exc:  # the library and the API install without Dagster; this package needs it
    raise ModuleNotFoundError("da_pipelines needs Dagster: pip install 'da-sources[dagster]'", name=exc.name) from exc

from da_pipelines.definitions import build_definitions

__all__ = ["build_definitions", "defs"]

# a dict, not a module-level Definitions: Dagster refuses a module with two of those
_built: dict[str, Definitions] = {}


def __getattr__(name: str) -> Any:
    if name == "DataSourceComponent":  # the Dagster Component, imported only when asked for
        from da_pipelines.components import DataSourceComponent

        return DataSourceComponent
    if name != "defs":
        raise AttributeError(f"module 'da_pipelines' has no attribute {name!r}")
    if "defs" not in _built:
        _built["defs"] = build_definitions()
    return _built["defs"]


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
