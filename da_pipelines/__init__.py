"""The Dagster code location of da-sources: ``defs``, built from the sources file.

Load it with ``dagster dev -w workspace.yaml`` or ``dagster job execute -m da_pipelines -j sample_sync``.
See ``da_pipelines.factory`` for what each source contributes.

Where things are:

* the asset model: ``datasets`` (which datasets a source has: item sets, tables) and
  ``assets`` (the remote asset, the datasets' multi-asset, partitioned sets);
* syncing a dataset without Dagster: ``dataset_sync`` (plan, land, summarize),
  ``manifest`` (what a dataset holds), ``state`` (a table source's listing);
* the job ``N_sync``: ``jobs``; the sensor ``N_sensor``: ``sensors`` (its pure decision: ``cursor``);
* the Dagster Component (``dg scaffold defs``): ``component``;
* one source put together: ``factory``; the code location: ``definitions``;
  configuration: ``settings`` (``metadata.dagster``), ``resources``, ``sources``.

``defs`` is built on first access (PEP 562), not on import: importing a
submodule (``da_pipelines.resources``) must not read
the sources file, and a code location that registers extra connector types
first (the tests' ``tests.dagster_location``) must be able to do so.
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
