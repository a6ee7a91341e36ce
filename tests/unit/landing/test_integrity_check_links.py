"""The integrity check reads only files inside the source's folder (the workspace is the agent's too).

A folder of landed files swapped for a link to a copy elsewhere, a manifest path
with ``..``, or an absolute one (what a record outside the folder becomes), must
count as damaged: the check never hashes a file it reaches through a link.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from connectors.syncing.dataset_manifest import ManifestEntry
from da_pipelines.checks import verify_entries

DATA = b"id,name\n1,a\n"


def entry(path: str) -> ManifestEntry:
    return ManifestEntry(identifier=path, version="v1", sha256=hashlib.sha256(DATA).hexdigest(), size=len(DATA),
                         path=path)


def test_files_in_place_pass(tmp_path: Path) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "a.csv").write_bytes(DATA)
    damaged, _ = verify_entries(tmp_path / "src", [entry("sub/a.csv")], full=True, sample_size=1)
    assert damaged == []


def test_a_folder_swapped_for_a_link_to_a_copy_is_damaged(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.csv").write_bytes(DATA)  # same bytes, same size: only the link gives it away
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sub").symlink_to(outside)
    damaged, facts = verify_entries(tmp_path / "src", [entry("sub/a.csv")], full=True, sample_size=1)
    assert damaged == ["sub/a.csv"]
    assert facts["damaged"].value == 1


def test_a_landed_file_swapped_for_a_link_is_damaged(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "elsewhere.csv").write_bytes(DATA)
    (tmp_path / "src" / "a.csv").symlink_to(tmp_path / "elsewhere.csv")
    damaged, _ = verify_entries(tmp_path / "src", [entry("a.csv")], full=True, sample_size=1)
    assert damaged == ["a.csv"]


def test_paths_leading_out_of_the_folder_are_damaged(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "twin.csv").write_bytes(DATA)
    shutil.copy(tmp_path / "twin.csv", tmp_path / "src" / "here.csv")
    outside = [entry("../twin.csv"), entry(str(tmp_path / "twin.csv"))]
    damaged, _ = verify_entries(tmp_path / "src", [*outside, entry("here.csv")], full=True, sample_size=10)
    assert sorted(damaged) == sorted(e.identifier for e in outside)
