"""Compatibility: the seed's import path for landing files (``connectors.workspace.landing``).

The code lives in :mod:`connectors.landing`; import from there in new code.
"""

from connectors.landing import LandedFile, Landing, landing, safe_relative_path, target_path

__all__ = ["LandedFile", "Landing", "landing", "safe_relative_path", "target_path"]
