"""Landing files in a workspace: names, atomic writes, provenance records, group commit, progress.

The way for any connector, plugins included, to land a file atomically with
its lineage record is :func:`landing`::

    from connectors.landing import landing

    with landing(workspace, name, source_id=source_id, identifier=identifier) as land:
        land.write(data)
        land.commit(provenance={"source_type": "my_type", "source_uri": uri, "source_version": version})

The framework that owns a workspace root declares it around its fetches, so
that nothing from the root down (the source's folder included) is followed
if it is a link, and sweeps a source's folder at the start of each sync::

    with workspace_root(root):
        sweep_workspace(root / source_id)
        await connector.fetch_many(identifiers, str(root / source_id))

Modules: :mod:`.names` (remote name -> safe relative path), :mod:`.root` (the
trusted workspace root, sweeping a source's folders), :mod:`.dirs`
(folders opened without following links, locked temporaries, sweeping),
:mod:`.syscalls` (fallocate, syncfs, writeback), :mod:`.atomic` (the landing),
:mod:`.lineage` (provenance records), :mod:`.group_commit` (many small files,
one file-system sync), :mod:`.progress` (byte counts for progress bars).
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
