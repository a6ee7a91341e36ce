"""Compatibility: the documented import path ``connectors.lineage.read_provenance``.

The code lives in :mod:`connectors.landing.lineage`.
"""

from connectors.landing.lineage import find_provenance, read_provenance, run_context

__all__ = ["find_provenance", "read_provenance", "run_context"]
