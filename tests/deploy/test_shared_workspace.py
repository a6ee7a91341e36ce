"""The workspace shared across hosts: two processes landing the same items through two mount points.

The landing relies on ``flock`` and same-folder renames (README, "Deploying": which shared file systems
honour both). Here one folder is mounted twice (a bind mount, in a mount namespace of the test's own
via ``unshare``, so it needs no privilege) and two processes land the same 300 items at once, one
through each mount point, three times over, each its own version of every item (two sources, one
source id): every file must end whole, once, one version's bytes, with that version's record and no
temporary left. Were both to land the same bytes, any record would fit any file and a missing lock
would go unseen.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ITEMS = 300

LAND = textwrap.dedent("""
    import asyncio, sys
    from connectors import DataSourceConfig
    from connectors.local_file import LocalFileConnector

    async def main(root, workspace):
        config = DataSourceConfig(id="shared", type="local_file", name="shared", config={"root": root})
        async with LocalFileConnector(config) as source:
            names = [item.path for item in await source.list_items()]
            for _ in range(3):
                results = await source.fetch_many(names, workspace, concurrency=8)
                failed = [r for r in results if not r.ok]
                assert not failed, failed[:3]

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


def test_two_processes_through_two_mount_points_land_each_item_once(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        raise AssertionError("unshare (util-linux) is needed: apt-get install util-linux")
    root_a, root_b, shared, mount_a, mount_b = (tmp_path / n for n in ("root_a", "root_b", "shared", "a", "b"))
    for folder in (root_a, root_b, shared, mount_a, mount_b):
        folder.mkdir()
    for index in range(ITEMS):
        for version, root in enumerate((root_a, root_b)):
            (root / f"item{index:03d}.csv").write_bytes(f"id,v\n{index},{version}\n".encode() * (1 + index % 50))
    script = tmp_path / "land.py"
    script.write_text(LAND)
    both = (f"mount --bind {shared} {mount_a} && mount --bind {shared} {mount_b} && "
            f"{{ {sys.executable} {script} {root_a} {mount_a} & first=$!; "
            f"{sys.executable} {script} {root_b} {mount_b} & second=$!; wait $first && wait $second; }}")
    result = subprocess.run(["unshare", "--mount", "--map-root-user", "bash", "-c", both],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    landed = sorted(p.name for p in shared.iterdir() if p.is_file())
    assert landed == sorted(p.name for p in root_a.iterdir())
    disagree = []
    for name in landed:
        record = json.loads((shared / ".lineage" / f"{name}.json").read_text())
        data = (shared / name).read_bytes()
        [source] = [root for root in (root_a, root_b) if (root / name).read_bytes() == data]  # one version, whole
        if (record["sha256"], record["size"], record["source_uri"]) != (
                hashlib.sha256(data).hexdigest(), len(data), (source / name).as_uri()):
            disagree.append((name, source.name, record["source_uri"]))
    assert disagree == [], f"{len(disagree)} of {ITEMS} files hold one version and the record of the other"
    leftovers = [p for p in shared.rglob(".~da-*")]
    assert leftovers == []
