"""Every WorkspaceError names the workspace path concerned, bounded (real file systems).

A full disk (a 1 MiB tmpfs), a read-only file system, a workspace outside the
declared root: through the landing, ``fetch_data`` and ``fetch_many`` (group
commit), the message names the path, and stays short for a very deep path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import WorkspaceError
from connectors.landing import landing, workspace_root
from tests.conformance import run
from tests.helpers.tmpfs import tmpfs
from tests.unit.landing.landing_support import PROVENANCE, local_connector

MAX_MESSAGE = 400


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs."""
    with tmpfs(tmp_path / "tiny") as mount:
        yield mount



def land(workspace: Path, name: str, data: bytes) -> None:
    with landing(workspace, name, source_id="s") as target:
        target.write(data)
        target.commit(provenance=PROVENANCE)


def fetch(root: Path, workspace: Path, name: str, many: bool) -> None:
    async def body() -> None:
        async with local_connector(root) as connector:
            if many:
                result = (await connector.fetch_many([name], str(workspace)))[0]
                if result.error is not None:
                    raise result.error
            else:
                await connector.fetch_data(name, str(workspace))

    run(body())


def assert_names(error: BaseException, workspace: Path) -> None:
    message = str(error)
    assert len(message) <= MAX_MESSAGE, message
    shown = repr(str(workspace))
    assert shown in message or (shown[:40] in message), message  # long paths keep their start


@pytest.mark.root
@pytest.mark.parametrize("way", ["landing", "fetch_data", "fetch_many"])
@pytest.mark.parametrize("depth", [0, 30])
def test_a_full_disk_names_the_workspace(mount: Path, tmp_path: Path, way: str, depth: int) -> None:
    workspace = mount.joinpath(*["deep-folder-name"] * depth) / "src"
    big = b"\1" * (2 * 1024 * 1024) if way != "fetch_many" else b"\1" * (900 * 1024)
    root = tmp_path / "root"
    root.mkdir()
    (root / "big.bin").write_bytes(big)
    if way == "fetch_many":  # a small file (group commit) that does not fit
        (mount / "filler").write_bytes(b"\0" * 200 * 1024)
    with pytest.raises(WorkspaceError, match="disk full") as caught:
        if way == "landing":
            land(workspace, "big.bin", big)
        else:
            fetch(root, workspace, "big.bin", many=way == "fetch_many")
    assert_names(caught.value, workspace)


@pytest.mark.root
def test_a_read_only_file_system_names_the_workspace(mount: Path) -> None:
    (mount / "ws").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    for workspace in (mount / "ws", mount / "ws" / "src" / "deeper"):
        with pytest.raises(WorkspaceError) as caught:
            land(workspace, "a.csv", b"a")
        assert_names(caught.value, workspace)


def test_a_workspace_outside_the_declared_root_names_both(tmp_path: Path) -> None:
    with workspace_root(tmp_path / "ws"), pytest.raises(WorkspaceError) as caught:
        land(tmp_path / "other" / "src", "a.csv", b"a")
    assert_names(caught.value, tmp_path / "other" / "src")
    assert repr(str(tmp_path / "ws")) in str(caught.value)
