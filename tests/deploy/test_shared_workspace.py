"""The workspace shared across hosts: two processes landing the same items through two mount points.

The landing relies on ``flock`` and same-folder renames (README, "Deploying": which shared file systems
honour both). Here one folder is mounted twice (a bind mount, in a mount namespace of the test's own
via ``unshare``, so it needs no privilege) and two processes land the same 300 items, one through each
mount point, each its own version of every item (two sources, one source id): once in groups, then item
by item, meeting at a barrier before each item so that their commits of it overlap. Every file must end
whole, once, one version's bytes, with that version's record and no temporary left. Were both to land
the same bytes, any record would fit any file; without the per-item barrier the commits rarely overlap:
either way a missing lock (``target_lock``) would go unseen.
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
    import asyncio, os, sys, time
    from pathlib import Path
    from connectors import DataSourceConfig
    from connectors.local_file import LocalFileConnector

    def arrive(folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(os.getpid())).touch()
        return len(list(folder.iterdir()))

    async def meet(folder):
        # both processes start each item's landing together: their commits of it overlap
        deadline = time.monotonic() + 60
        while arrive(folder) < 2:
            assert time.monotonic() < deadline, f"the other process never reached {folder}"
            await asyncio.sleep(0.001)

    async def main(root, workspace, barrier):
        config = DataSourceConfig(id="shared", type="local_file", name="shared", config={"root": root})
        slots = asyncio.Semaphore(8)
        async with LocalFileConnector(config) as source:
            names = [item.path for item in await source.list_items()]
            # once in groups (fetch_many: small files, one sync per group), then item by item, in step
            results = await source.fetch_many(names, workspace, concurrency=8)
            failed = [r for r in results if not r.ok]
            assert not failed, failed[:3]

            async def one(name):
                async with slots:
                    await meet(Path(barrier) / name)
                    await source.fetch_data(name, workspace)

            await asyncio.gather(*(one(name) for name in names))

    asyncio.run(main(*sys.argv[1:4]))
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
    barrier = tmp_path / "barrier"
    script = tmp_path / "land.py"
    script.write_text(LAND)
    both = (f"mount --bind {shared} {mount_a} && mount --bind {shared} {mount_b} && "
            f"{{ {sys.executable} {script} {root_a} {mount_a} {barrier} & first=$!; "
            f"{sys.executable} {script} {root_b} {mount_b} {barrier} & second=$!; wait $first && wait $second; }}")
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
