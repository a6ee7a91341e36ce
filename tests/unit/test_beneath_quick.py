"""open_beneath's quick path: a file's folders reached in one openat2 when no link is on the way, the file still
checked before it is opened; anything else (a link, a FIFO, '..' out of the root) goes the walk's way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import connectors.beneath as beneath
from connectors.beneath import EscapesRootError, NotRegularError, open_beneath


def opened_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    real_open, real_dup = os.open, os.dup

    def counting_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        names.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    def counting_dup(fd: int) -> int:
        names.append("dup")
        return real_dup(fd)

    monkeypatch.setattr(beneath.os, "open", counting_open)
    monkeypatch.setattr(beneath.os, "dup", counting_dup)
    return names


def test_a_file_deep_down_opens_in_one_lookup_for_its_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.txt").write_bytes(b"c")
    names = opened_names(monkeypatch)
    root_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_beneath(root_fd, str(tmp_path), "a/b/c.txt")
        assert os.read(fd, 10) == b"c"
        os.close(fd)
    finally:
        os.close(root_fd)
    assert names[1:] == ["c.txt"]  # no walk: neither a copy of the root nor "a" and "b" opened one by one


def test_links_fifos_and_escapes_still_take_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "root" / "real").mkdir(parents=True)
    (tmp_path / "root" / "real" / "f.txt").write_bytes(b"f")
    (tmp_path / "root" / "link").symlink_to("real")  # a link inside the root: served
    os.mkfifo(tmp_path / "root" / "real" / "pipe")
    root = tmp_path / "root"
    names = opened_names(monkeypatch)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_beneath(root_fd, str(root), "link/f.txt")
        assert os.read(fd, 10) == b"f"
        os.close(fd)
        with pytest.raises(NotRegularError):
            open_beneath(root_fd, str(root), "real/pipe")
        with pytest.raises(EscapesRootError):
            open_beneath(root_fd, str(root), "real/../../outside.txt")
    finally:
        os.close(root_fd)
    assert "pipe" not in names  # checked, never opened: a FIFO or a device is not touched
