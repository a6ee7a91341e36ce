"""A folder fsync that fails after the rename still leaves the file and its record in agreement.

Once the new bytes are renamed into place, the old record would describe a file
that is no longer there; the landing reports the failure, and the record on disk
is the new file's. A real EIO cannot be produced on demand, so ``os.fsync`` of a
folder answers EIO here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from connectors import DataSourceError, read_provenance
from connectors.landing import landing
from tests.unit.landing.landing_support import PROVENANCE


def land(workspace: Path, data: bytes) -> Path:
    with landing(workspace, "a/sales.csv", source_id="s") as target:
        target.write(data)
        return target.commit(provenance=PROVENANCE).path


def test_a_failed_folder_sync_after_the_rename_leaves_the_new_record(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = land(tmp_path, b"old\n")
    real_fsync = os.fsync

    def folder_sync_fails(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", folder_sync_fails)
    with pytest.raises((OSError, DataSourceError)):
        land(tmp_path, b"new, longer\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"new, longer\n"
    record = read_provenance(path, tmp_path)
    assert record["sha256"] == hashlib.sha256(b"new, longer\n").hexdigest()
    assert record["size"] == len(b"new, longer\n")
