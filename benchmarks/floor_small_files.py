"""The floor for ``da-sources fetch --all`` of many small files: a minimal Python program with the same guarantees.

Run: ``python -m benchmarks.floor_small_files SRC OUT [--workers N]``

What it does per file, as our fetch does (and nothing else: no configuration, no
plan, no re-sync, no error handling beyond failing):

- the source tree listed without following links (regular files only);
- each file opened without following a link, read whole, its size checked against
  its ``fstat``, its sha256 computed;
- its bytes written to an exclusively created, ``flock``-ed temporary beside its
  place; a JSON lineage record (source, identifier, path, size, sha256) to
  another under ``.lineage/``; both stay open and locked until renamed;
- per group of :data:`GROUP` files (as ours), ``syncfs`` once (the data on disk
  before any name points at it), every file then its record renamed into place,
  ``syncfs`` again: durable before it returns.

With ``--workers N`` the listing is split over N processes (forked), each landing
its share as above; the parent returns once every worker succeeded. Benchmarks
run it beside ours (:mod:`benchmarks.bench_small_files`) as an honest reference:
how fast Python can go at all on this machine with these guarantees.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import json
import os
import secrets
import sys

_LIBC = ctypes.CDLL(None, use_errno=True)
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
GROUP = 1024  # files landed per group (two syncfs each), as ours: each holds two descriptors until renamed


def syncfs(fd: int) -> None:
    if _LIBC.syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def listing(src: str) -> list[str]:
    """Every regular file under ``src``, relative, sorted; no link followed."""
    found: list[str] = []
    folders = [""]
    while folders:
        folder = folders.pop()
        with os.scandir(os.path.join(src, folder)) as entries:
            for entry in entries:
                relative = f"{folder}/{entry.name}" if folder else entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append(relative)
                elif entry.is_file(follow_symlinks=False):
                    found.append(relative)
    return sorted(found)


class _Folders:
    """The output folders, each created and opened once."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.fds: dict[str, int] = {}

    def get(self, relative: str) -> int:
        fd = self.fds.get(relative)
        if fd is None:
            path = os.path.join(self.out, relative)
            os.makedirs(path, exist_ok=True)
            fd = self.fds[relative] = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return fd


def _create_locked(folder: int, name: str, body: bytes) -> int:
    """A new temporary holding ``body``, locked (a sweeper leaves it alone) until the caller closes it."""
    fd = os.open(name, _CREATE, 0o644, dir_fd=folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, body)
    except BaseException:
        os.close(fd)
        raise
    return fd


def land(src: str, out: str, names: list[str]) -> None:
    """Land ``names`` (relative to ``src``) under ``out`` in groups of :data:`GROUP`, as the module's docstring says."""
    folders = _Folders(out)
    try:
        for start in range(0, len(names), GROUP):
            _land_group(src, out, names[start:start + GROUP], folders)
    finally:
        for fd in folders.fds.values():
            os.close(fd)


def _land_group(src: str, out: str, names: list[str], folders: _Folders) -> None:
    start = secrets.randbits(64)
    renames: list[tuple[int, str, str]] = []
    held: list[int] = []  # the temporaries stay open and locked until renamed, as ours do
    try:
        for index, name in enumerate(names):
            folder, _, base = name.rpartition("/")
            source = os.open(os.path.join(src, name), _READ)
            try:
                size = os.fstat(source).st_size
                body = os.read(source, size + 1)
            finally:
                os.close(source)
            if len(body) != size:
                raise OSError(f"{name} changed while it was read")
            data_folder, record_folder = folders.get(folder), folders.get(os.path.join(".lineage", folder))
            temporary = f".~floor-{(start + index) % 2**64:016x}.part"
            held.append(_create_locked(data_folder, temporary, body))
            record = {"source_id": "floor", "identifier": name, "local_path": os.path.join(out, name),
                      "size": size, "sha256": hashlib.sha256(body).hexdigest()}
            held.append(_create_locked(record_folder, temporary + ".json",
                                       json.dumps(record, sort_keys=True).encode() + b"\n"))
            renames += [(data_folder, temporary, base), (record_folder, temporary + ".json", base + ".json")]
        if not renames:
            return
        anywhere = renames[0][0]
        syncfs(anywhere)  # the bytes are on disk before any name points at them
        for folder_fd, temporary, final in renames:
            os.rename(temporary, final, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        syncfs(anywhere)  # the names too, before this returns
    finally:
        for fd in held:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    names = listing(args.src)
    os.makedirs(args.out, exist_ok=True)
    workers = max(1, args.workers)
    children = []
    for worker in range(1, workers):  # forked: no second interpreter start-up, as a pool of forks would do
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                land(args.src, args.out, names[worker::workers])
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    land(args.src, args.out, names[0::workers])
    failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0]
    if failed:
        sys.exit(f"{len(failed)} worker(s) failed")
    print(len(names))


if __name__ == "__main__":
    main()
