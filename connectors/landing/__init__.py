"""Landing files in a workspace: names, atomic writes, provenance records, group commit, progress.

Any connector, plugins included, lands a file atomically with its lineage record through
:func:`landing`; the framework that owns a workspace root declares it (:func:`workspace_root`) so
that no link below it is followed. Usage and the modules: ``docs/design/landing.md``.
"""

from connectors.landing.atomic import LandedFile, Landing, landing
from connectors.landing.lineage import find_provenance, read_provenance, run_context
from connectors.landing.names import safe_relative_path, target_path
from connectors.landing.progress import on_progress, report_progress
from connectors.landing.root import sweep_workspace, under_workspace_root, workspace_root

__all__ = [
    "LandedFile",
    "Landing",
    "find_provenance",
    "landing",
    "on_progress",
    "read_provenance",
    "report_progress",
    "run_context",
    "safe_relative_path",
    "sweep_workspace",
    "target_path",
    "under_workspace_root",
    "workspace_root",
]
