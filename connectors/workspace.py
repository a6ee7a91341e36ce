"""Deprecated: landing files lives in :mod:`connectors.landing`.

Importing these names from here still works for one release, with a ``DeprecationWarning``.
"""

from connectors.deprecation import moved_names

_MOVED = ["LandedFile", "Landing", "landing", "safe_relative_path", "target_path"]
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED, "connectors.landing"))
