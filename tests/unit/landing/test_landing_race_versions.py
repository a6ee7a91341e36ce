"""Racing landings of different versions of one item: the file and its record always agree.

Writers that land the same bytes cannot show a missing lock (any record fits any file), so here
every racer lands a version of its own, at the same moment (a barrier per round), over many rounds,
with real renames, fsyncs and records. After each round the file on disk is one racer's whole
version, and its record names that version and that file's sha256: the per-target lock
(``connectors.landing.lineage.target_lock``) keeps each rename and its record together.
docs/RELIABILITY.md row 23.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connectors.landing import landing, read_provenance

RACERS = 4
ROUNDS = 150
NAME = "data/item.csv"


def version_bytes(version: str) -> bytes:
    """Bytes that name their version, of a size that differs from one version to the next."""
    return f"version,{version}\n".encode() * (1 + sum(map(ord, version)) % 17)


def land(workspace: Path, version: str, barrier: threading.Barrier) -> None:
    with landing(workspace, NAME, source_id="race", identifier=NAME) as land:
        land.write(version_bytes(version))
        barrier.wait()  # every racer has its bytes written: the commits race
        land.commit(provenance={"source_type": "test", "source_uri": f"test://{NAME}", "source_version": version})


def agreement(path: Path) -> tuple[str, str, str, str]:
    """(version in the bytes, version in the record, sha256 of the bytes, sha256 in the record)."""
    data = path.read_bytes()
    record = read_provenance(path)
    return (data.split(b"\n", 1)[0].split(b",", 1)[1].decode(), record["source_version"],
            hashlib.sha256(data).hexdigest(), record["sha256"])


def test_racing_landings_of_different_versions_leave_a_file_and_record_that_agree(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    disagreements = []
    with ThreadPoolExecutor(RACERS) as pool:
        for round_ in range(ROUNDS):
            barrier = threading.Barrier(RACERS)
            versions = [f"r{round_}-w{racer}" for racer in range(RACERS)]
            for done in [pool.submit(land, workspace, version, barrier) for version in versions]:
                done.result()
            in_bytes, in_record, sha_bytes, sha_record = agreement(workspace / NAME)
            assert in_bytes in versions and (workspace / NAME).read_bytes() == version_bytes(in_bytes)
            if (in_bytes, sha_bytes) != (in_record, sha_record):
                disagreements.append((round_, in_bytes, in_record))
    assert disagreements == [], f"{len(disagreements)} of {ROUNDS} rounds left a record of another version"
