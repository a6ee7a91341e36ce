"""Helpers of the landing's security tests: snapshots of what lies outside, watchdogs, planted files."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors import DataSourceConfig, DataSourceError
from connectors.landing.names import TEMP_PREFIX
from connectors.local_file import LocalFileConnector

PROVENANCE = {"source_type": "local_file", "source_uri": "file:///x", "source_version": "v1"}


def snapshot(folder: Path) -> dict[str, Any]:
    """Everything under ``folder`` (names, kinds, bytes, link targets, folders' mtimes), without following links."""
    found: dict[str, Any] = {}
    if not os.path.lexists(folder):
        return found
    found["."] = ("folder", folder.lstat().st_mtime_ns)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            relative = str(path.relative_to(folder))
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                found[relative] = ("file", path.read_bytes(), info.st_mtime_ns)
            elif stat.S_ISDIR(info.st_mode):  # its mtime: even a temporary made and removed shows
                found[relative] = ("folder", info.st_mtime_ns)
            else:
                found[relative] = (stat.S_IFMT(info.st_mode),)
    return found


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def local_connector(root: Path, source_id: str = "local-test", **settings: object) -> LocalFileConnector:
    config = DataSourceConfig(id=source_id, type="local_file", name="Local", config={"root": str(root), **settings})
    return LocalFileConnector(config)


def make_fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def make_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` (bound in a short folder, then moved: paths over 108 bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    short = Path(tempfile.mkdtemp(dir="/tmp", prefix="s")) / "s"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(short))
    server.listen()
    os.rename(short, path)
    os.rmdir(short.parent)
    return server


def make_device(path: Path) -> None:
    """A character device like /dev/zero (endless bytes if it were ever read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))


BLOCKING_KINDS = {"fifo": make_fifo, "socket": make_socket, "device": make_device}


def within(seconds: float, action: Callable[[], Any], *, unblock: list[Path] = ()) -> Any:  # type: ignore[assignment]
    """Run ``action`` in a thread; fail if it has not returned in ``seconds`` (then unblock FIFOs).

    Returns what it returned, or the DataSourceError it raised; any other exception fails the test.
    """
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(("ok", action()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(("error", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung:
        for fifo in unblock:  # let the stuck open return so the thread ends
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(5)
    assert not hung, "the operation blocked (hang)"
    kind, value = outcome[0]
    if kind == "error":
        assert isinstance(value, DataSourceError), f"untyped error: {value!r}"
    return value
