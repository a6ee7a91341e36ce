"""A real small file system (tmpfs), so ENOSPC is the kernel's, never a fake; mounting needs root."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str = "1m") -> Iterator[Path]:
    """``mount_point`` (created) as a tmpfs of ``size`` until the block ends; no mount (not root) fails the test."""
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                            capture_output=True)
    assert result.returncode == 0, f"this test needs root to mount a tmpfs: {result.stderr!r}"
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
