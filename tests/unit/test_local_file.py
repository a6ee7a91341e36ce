"""LocalFileConnector: the conformance suite plus root confinement, patterns and sub-folders.

docs/RELIABILITY.md row 8.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors import DataSourceConfig, NotFoundError, UnsafeNameError
from connectors.local_file import LocalFileConnector
from tests.conformance import ConnectorConformance, SourceUnderTest, run, version_bytes

FILES = {
    "sales.csv": b"region,amount\nnorth,10\nsouth,20\n",
    "nested/deeper/data.json": b'{"a": 1}\n',
    "with space & unicode \u00e9.txt": "caf\u00e9\n".encode(),
    "empty.bin": b"",
}


def make_root(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def local_connector(root: Path, **settings: object) -> LocalFileConnector:
    config = DataSourceConfig(id="local-test", type="local_file", name="Local",
                              config={"root": str(root), **settings})
    return LocalFileConnector(config)


class TestLocalFileConformance(ConnectorConformance):
    @pytest.fixture
    def source(self, tmp_path: Path) -> SourceUnderTest:
        root = make_root(tmp_path / "root", FILES)
        return SourceUnderTest(
            make_connector=lambda: local_connector(root),
            items=dict(FILES),
            missing="no/such/file.csv",
            source_type="local_file",
            change=lambda identifier, n: replace(root / identifier, version_bytes(identifier, n)),
        )


def replace(path: Path, data: bytes) -> None:
    """Replace a file whole, as a user's save does (a reader sees the old or the new bytes)."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}")
    staged.write_bytes(data)
    staged.replace(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root", FILES)


async def _list(connector: LocalFileConnector, path: str | None = None) -> list[str]:
    async with connector:
        return [item.path for item in await connector.list_items(path)]


def test_symlink_leading_outside_root_is_refused_reported_and_never_read(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("outside")
    (root / "escape.txt").symlink_to(secret)
    (root / "escape-dir").symlink_to(tmp_path, target_is_directory=True)
    connector = local_connector(root)

    async def body() -> None:
        async with connector:
            listed = [item.path for item in await connector.list_items()]
            assert "escape.txt" not in listed
            assert sorted(connector.refused) == ["escape-dir", "escape.txt"]
            with pytest.raises(UnsafeNameError, match="outside root"):
                await connector.fetch_data("escape.txt", str(tmp_path / "ws"))
            with pytest.raises(UnsafeNameError):
                await connector.fetch_data("escape-dir/outside-secret.txt", str(tmp_path / "ws"))
            with pytest.raises(UnsafeNameError):
                await connector.get_metadata("escape.txt")

    run(body())
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").rglob("*.txt"))


def test_symlink_inside_root_is_served(root: Path, tmp_path: Path) -> None:
    (root / "alias.csv").symlink_to(root / "sales.csv")
    assert "alias.csv" in run(_list(local_connector(root)))
    path = run(_fetch(local_connector(root), "alias.csv", tmp_path / "ws"))
    assert Path(path).read_bytes() == FILES["sales.csv"] and not Path(path).is_symlink()


async def _fetch(connector: LocalFileConnector, identifier: str, workspace: Path) -> str:
    async with connector:
        return await connector.fetch_data(identifier, str(workspace))


def test_pattern_and_recursive_filter_the_listing(root: Path) -> None:
    assert run(_list(local_connector(root, pattern="*.csv"))) == ["sales.csv"]
    flat = run(_list(local_connector(root, recursive=False)))
    assert "nested/deeper/data.json" not in flat and "sales.csv" in flat
    assert run(_list(local_connector(root, pattern="nested/*"))) == ["nested/deeper/data.json"]


def test_list_items_of_a_sub_folder(root: Path) -> None:
    assert run(_list(local_connector(root), "nested")) == ["nested/deeper/data.json"]
    assert run(_list(local_connector(root), "nested/deeper/")) == ["nested/deeper/data.json"]
    with pytest.raises(NotFoundError):
        run(_list(local_connector(root), "nope"))
    with pytest.raises(UnsafeNameError):
        run(_list(local_connector(root), "../"))


def test_items_carry_size_mtime_and_content_type(root: Path) -> None:
    os.utime(root / "sales.csv", (1_700_000_000, 1_700_000_000))

    async def items() -> dict[str, object]:
        async with local_connector(root) as connector:
            return {item.path: item for item in await connector.list_items()}

    item = run(items())["sales.csv"]
    assert item.size == len(FILES["sales.csv"])  # type: ignore[attr-defined]
    assert item.modified_at == 1_700_000_000  # type: ignore[attr-defined]
    assert item.metadata["content_type"] == "text/csv"  # type: ignore[attr-defined]


def test_get_metadata_has_sha256_and_mtime(root: Path) -> None:
    import hashlib

    async def meta() -> dict[str, object]:
        async with local_connector(root) as connector:
            return await connector.get_metadata("sales.csv")

    metadata = run(meta())
    assert metadata["sha256"] == hashlib.sha256(FILES["sales.csv"]).hexdigest()
    assert metadata["size"] == len(FILES["sales.csv"])
    assert metadata["content_type"] == "text/csv"
    assert str(metadata["modified_at"]).endswith("Z")


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        run(local_connector(tmp_path / "absent").connect())


def test_a_changed_version_is_visible_in_the_listing(root: Path) -> None:
    before = {i: v for i, v in run(_versions(root)).items()}
    (root / "sales.csv").write_bytes(b"region,amount\nnorth,11\n")
    os.utime(root / "sales.csv", ns=(1, 1))
    after = run(_versions(root))
    assert before["sales.csv"] != after["sales.csv"]
    assert before["empty.bin"] == after["empty.bin"]


async def _versions(root: Path) -> dict[str, str]:
    async with local_connector(root) as connector:
        return {item.path: item.metadata["version"] for item in await connector.list_items()}


def test_fetch_many_lands_small_files_in_groups_and_large_ones_by_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from connectors import on_progress, read_provenance
    from connectors.base import FetchResult
    from tests.conformance import temporaries

    files = {f"many/{i:03d}.csv": f"id,value\n{i},{i * i}\n".encode() * (i + 1) for i in range(150)}
    files["big.bin"] = os.urandom(2 * 1024 * 1024 + 3)  # over SMALL_FILE: copied like fetch_data
    root = make_root(tmp_path / "root", files)
    (root / "escape.txt").symlink_to(tmp_path)  # leads outside root
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    wanted = [*files, "escape.txt", "missing.csv"]

    progress: dict[str, int] = {}

    async def body() -> list[FetchResult]:
        async with local_connector(root) as connector:
            with on_progress(lambda identifier, done, total: progress.__setitem__(identifier, done)):
                return await connector.fetch_many(wanted, str(tmp_path / "ws"), concurrency=8)

    results = run(body())
    assert [r.identifier for r in results] == wanted
    assert progress == {name: len(data) for name, data in files.items()}  # every byte is reported, small or large
    for result in results[: len(files)]:
        assert result.ok and Path(result.path).read_bytes() == files[result.identifier]
        record = read_provenance(result.path)
        assert record["sha256"] == hashlib.sha256(files[result.identifier]).hexdigest()
    assert isinstance(results[-2].error, UnsafeNameError) and isinstance(results[-1].error, NotFoundError)
    assert len(fsyncs) == 3  # the large file's data, folder and record; the 150 small ones synced in groups
    assert temporaries(tmp_path / "ws") == []
