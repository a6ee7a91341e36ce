"""Deprecated: the lineage functions live in :mod:`connectors.landing.lineage` (and ``connectors``).

Importing them from here still works for one release, with a ``DeprecationWarning``.
"""

from connectors.deprecation import moved_names

_MOVED = ["find_provenance", "read_provenance", "run_context"]
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED, "connectors.landing.lineage"))
