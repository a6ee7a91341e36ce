"""``local_file`` opens beneath root race-free (real file system, a thread swapping links).

While a thread keeps swapping a folder (or a file) of the source for a link
to outside ``root``, fetches, metadata and listings run: not one outside byte
is read, and every failure is a typed error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors import DataSourceError
from connectors.local_file import LocalFileConnector
from tests.conformance import run
from tests.unit.landing.landing_support import local_connector, snapshot

INSIDE = b"inside data\n"
OUTSIDE = b"OUTSIDE SECRET, never to be read\n"
ROUNDS = 600  # operations per scenario, while the swapper runs

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE)."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def swap_with_link(path: Path, link_target: str) -> Callable[[], None]:
    """One non-atomic swap: the real thing aside, a link moved in its place, then back."""
    aside, link = path.with_name(path.name + ".aside"), path.with_name(path.name + ".link")
    os.symlink(link_target, link)  # made once: a long link target costs a block on every creation

    def swap() -> None:
        os.rename(path, aside)
        os.rename(link, path)
        time.sleep(0.0002)
        os.rename(path, link)
        os.rename(aside, path)
        time.sleep(0.0005)

    return swap


def swap_atomically(path: Path, link_target: str) -> Callable[[], None]:
    link = path.with_name(path.name + ".link")
    os.symlink(link_target, link)

    def swap() -> None:
        exchange(path, link)  # now a link
        time.sleep(0.0002)
        exchange(path, link)  # now the real thing again
        time.sleep(0.0005)

    return swap


def make_tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    for base, data in ((root, INSIDE), (outside, OUTSIDE)):
        for folder in ("d", "a/b/c"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        (base / "d" / "f.txt").write_bytes(data)
        (base / "a" / "b" / "c" / "f.txt").write_bytes(data)
        (base / "f.txt").write_bytes(data)
    (root / "alias").symlink_to("d")  # a link inside root, to a folder inside root: served
    return root, outside


SCENARIOS: dict[str, tuple[str, Callable[[Path, Path], Callable[[], None]]]] = {
    # name: (identifier fetched, swapper factory)
    "folder-absolute-link": ("d/f.txt", lambda r, o: swap_with_link(r / "d", str(o / "d"))),
    "folder-relative-link": ("d/f.txt", lambda r, o: swap_with_link(r / "d", "../outside/d")),
    "folder-atomic-exchange": ("d/f.txt", lambda r, o: swap_atomically(r / "d", str(o / "d"))),
    "middle-folder": ("a/b/c/f.txt", lambda r, o: swap_atomically(r / "a" / "b", "../../outside/a/b")),
    "the-file-itself": ("d/f.txt", lambda r, o: swap_atomically(r / "d" / "f.txt", str(o / "d" / "f.txt"))),
    "through-an-inside-link": ("alias/f.txt", lambda r, o: swap_atomically(r / "d", str(o / "d"))),
}


async def operate(connector: LocalFileConnector, identifier: str, workspace: Path, index: int) -> bytes | None:
    """One operation (rotating through all four); what it read, as bytes, if anything."""
    kind = index % 4
    if kind == 0:
        return Path(await connector.fetch_data(identifier, str(workspace))).read_bytes()
    if kind == 1:
        result = (await connector.fetch_many([identifier], str(workspace)))[0]
        if result.error is not None:
            raise result.error
        return Path(str(result.path)).read_bytes()
    if kind == 2:
        metadata = await connector.get_metadata(identifier)
        return INSIDE if metadata["sha256"] == hashlib.sha256(INSIDE).hexdigest() else OUTSIDE
    folder = identifier.rsplit("/", 1)[0]
    items = await connector.list_items(folder)
    return OUTSIDE if any(item.size == len(OUTSIDE) for item in items) else INSIDE


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_racing_link_swap_never_leads_outside_root(tmp_path: Path, scenario: str) -> None:
    root, outside = make_tree(tmp_path)
    identifier, make_swapper = SCENARIOS[scenario]
    swap = make_swapper(root, outside)
    before = snapshot(outside)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            swap()
            swaps += 1

    outcomes: Counter[str] = Counter()

    async def body() -> None:
        async with local_connector(root) as connector:
            for index in range(ROUNDS):
                try:
                    read = await operate(connector, identifier, tmp_path / "ws", index)
                except DataSourceError as exc:
                    outcomes[type(exc).__name__] += 1
                except Exception as exc:  # noqa: BLE001 - counted as a failure of the test
                    outcomes[f"UNTYPED {type(exc).__name__}: {exc}"] += 1
                else:
                    outcomes["outside read" if read == OUTSIDE else "inside read"] += 1

    thread = threading.Thread(target=swapper, daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the swapper gets the GIL back at once: it swaps while the fetches run
    thread.start()
    try:
        run(body())
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(interval)
    print(f"{scenario}: {swaps} swaps, outcomes {dict(outcomes)}")
    assert outcomes["outside read"] == 0
    assert not [name for name in outcomes if name.startswith("UNTYPED")], outcomes
    assert outcomes["inside read"] > 0 and sum(outcomes.values()) == ROUNDS
    assert snapshot(outside) == before
    landed = [p for p in (tmp_path / "ws").rglob("*") if p.is_file() and ".lineage" not in p.parts]
    assert all(p.read_bytes() == INSIDE for p in landed)


def test_without_a_race_links_leading_outside_are_refused_at_every_position(tmp_path: Path) -> None:
    root, outside = make_tree(tmp_path)
    links = {
        "out-abs": str(outside / "d"), "out-rel": "../outside/d", "out-file": str(outside / "f.txt"),
        "chain1": "chain2", "chain2": "../outside", "dotdot": "d/../../outside/d", "loop": "loop",
        "abs-inside": str(root / "d"), "rel-inside": "a/../d",
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    (root / "d" / "up").symlink_to("../../outside")
    (root / "d" / "back").symlink_to("..")  # links to folders, fetched as if files
    (root / "a" / "b" / "back").symlink_to("..")

    async def body() -> dict[str, object]:
        results: dict[str, object] = {}
        async with local_connector(root) as connector:
            for identifier in ["out-abs/f.txt", "out-rel/f.txt", "out-file", "chain1/d/f.txt", "dotdot/f.txt",
                               "loop/f.txt", "d/up/d/f.txt", "abs-inside/f.txt", "rel-inside/f.txt", "d/back",
                               "d/back/d/f.txt", "a/b/back"]:
                try:
                    landed = await connector.fetch_data(identifier, str(tmp_path / "ws"))
                    results[identifier] = Path(landed).read_bytes()
                except DataSourceError as exc:
                    results[identifier] = type(exc).__name__
            results["refused"] = sorted(connector.refused) if await connector.list_items() is not None else None
        return results

    results = run(body())
    for identifier in ["out-abs/f.txt", "out-rel/f.txt", "out-file", "chain1/d/f.txt", "dotdot/f.txt", "d/up/d/f.txt"]:
        assert results[identifier] == "UnsafeNameError", identifier
    assert results["loop/f.txt"] in ("UnsafeNameError", "NotFoundError")
    assert results["abs-inside/f.txt"] == INSIDE and results["rel-inside/f.txt"] == INSIDE  # inside: served
    assert results["d/back"] == results["a/b/back"] == "NotFoundError" and results["d/back/d/f.txt"] == INSIDE
    # every link leading outside is reported, file or folder; links staying inside are not
    assert results["refused"] == ["chain1", "chain2", "d/up", "dotdot", "out-abs", "out-file", "out-rel"]
