"""As a property: whatever the path, open_beneath opens something inside root or refuses.

A real tree full of links (inside, outside, relative, absolute, chains, loops,
'..' games, FIFOs); hypothesis draws paths from its names. Every descriptor
returned is, by the kernel's own account (/proc/self/fd), a regular file or a
folder inside root; every refusal is one of the documented errors; nothing blocks.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.beneath import EscapesRootError, NotRegularError, open_beneath

NAMES = ["d", "e", "f.txt", "in-abs", "in-rel", "out-abs", "out-rel", "chain", "loop", "up", "fifo", "..", ".",
         "self", "deep", "out-file", "to-fifo"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("beneath")
    root, outside = base / "root", base / "outside"
    for top in (root, outside):
        (top / "d" / "e").mkdir(parents=True)
        (top / "f.txt").write_text("x")
        (top / "d" / "f.txt").write_text("x")
        (top / "d" / "e" / "f.txt").write_text("x")
    os.mkfifo(root / "fifo")
    links = {
        "in-abs": str(root / "d"), "in-rel": "d/e", "out-abs": str(outside / "d"), "out-rel": "../outside",
        "chain": "in-rel/../../d", "loop": "loop", "up": "d/../..", "self": ".", "deep": "d/e/../e/../../d",
        "out-file": str(outside / "f.txt"), "to-fifo": "fifo", "d/up": "..", "d/out": "../../outside/d",
        "d/e/back": "../../in-abs", "d/e/abs-root": str(root),
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return root, outside


@given(st.lists(st.sampled_from(NAMES + ["up", "back", "abs-root", "out"]), min_size=1, max_size=7),
       st.booleans())
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_open_beneath_never_leaves_root(tree: tuple[Path, Path], parts: list[str], directory: bool) -> None:
    root, _ = tree
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_beneath(root_fd, str(root), "/".join(parts), directory=directory)
    except (EscapesRootError, NotRegularError):
        return
    except OSError as exc:
        assert exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP), exc
        return
    finally:
        os.close(root_fd)
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
        assert where == str(root) or where.startswith(str(root) + "/"), where
        kind = os.fstat(fd).st_mode
        assert (os.path.isdir(where) if directory else os.path.isfile(where)), kind
    finally:
        os.close(fd)
