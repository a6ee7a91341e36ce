"""Connector types (built-ins, register_connector, entry-point plugins) and the source registry."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import type_table as registry_module
from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import ConfigurationError, NotFoundError
from connectors.landing.lineage import read_provenance
from connectors.local_file import LocalFileConnector
from connectors.plugins import get_connector_class, register_connector, unregister_connector
from connectors.registry import SourceRegistry, load_sources_file
from connectors.secrets.references import set_secret_store
from connectors.type_table import known_type_names
from tests.helpers.secrets import DictStore
from tests.plugin_fixture import PLUGIN_TYPE, install_plugin

REPO = Path(__file__).resolve().parents[2]



def local_source(source_id: str, root: Path, **config: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "local_file", "name": source_id.title(),
            "config": {"root": str(root), **config}}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("x,y\n1,2\n")
    (root / "sub" / "b.csv").write_text("x\n3\n")
    return root


@pytest.fixture
def registry(tmp_path: Path) -> SourceRegistry:
    return SourceRegistry(tmp_path / "sources.yaml")


# --- connector types --------------------------------------------------------------


class CountingConnector(LocalFileConnector):
    """A local_file connector that counts its connects and disconnects."""

    connects = 0
    disconnects = 0

    async def connect(self) -> bool:
        type(self).connects += 1
        await asyncio.sleep(0.01)  # a slow connect, so concurrent callers overlap
        return await super().connect()

    async def disconnect(self) -> None:
        type(self).disconnects += 1
        await super().disconnect()


@pytest.fixture
def counting_type() -> Iterator[str]:
    CountingConnector.connects = CountingConnector.disconnects = 0
    register_connector("counting_local", CountingConnector)
    yield "counting_local"
    unregister_connector("counting_local")


def test_builtins_are_known_without_importing_sdks() -> None:
    assert {"local_file", "azure_blob", "postgresql"} <= known_type_names()
    assert get_connector_class("local_file") is LocalFileConnector


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown connector type 'nope' \(known: .*local_file"):
        get_connector_class("nope")


def test_registering_refuses_what_is_not_a_connector() -> None:
    with pytest.raises(ConfigurationError, match="not a DataSourceConnector subclass"):
        register_connector("x", dict)  # type: ignore[arg-type]


def test_registering_refuses_an_incomplete_connector() -> None:
    class Half(DataSourceConnector):
        settings_model = LocalFileConnector.settings_model

        async def connect(self) -> bool:
            return True

    with pytest.raises(ConfigurationError, match="does not implement: .*fetch_data"):
        register_connector("half", Half)


def test_registering_refuses_a_connector_without_settings() -> None:
    class NoSettings(LocalFileConnector):
        settings_model = dict  # type: ignore[assignment]

    with pytest.raises(ConfigurationError, match="settings_model must be a ConnectorSettings"):
        register_connector("nosettings", NoSettings)


def test_registering_refuses_a_silent_overwrite(counting_type: str) -> None:
    class Other(LocalFileConnector):
        pass

    with pytest.raises(ConfigurationError, match="already registered"):
        register_connector("local_file", Other)
    with pytest.raises(ConfigurationError, match="already registered"):
        register_connector(counting_type, Other)
    register_connector(counting_type, CountingConnector)  # the same class again is no overwrite
    register_connector(counting_type, Other, replace=True)
    assert get_connector_class(counting_type) is Other


def test_registered_type_is_usable_in_a_config(counting_type: str, data_root: Path) -> None:
    source = DataSourceConfig.from_dict({**local_source("c", data_root), "type": counting_type})
    assert source.type_name == counting_type
    assert CountingConnector.type_name() == counting_type


# --- plugins through the entry-point group ----------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fixture distribution pip-installed into a folder put on sys.path."""
    site = install_plugin(tmp_path_factory.mktemp("plugin-site"))
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    registry_module._plugin_paths = None  # entry points are read again
    yield site
    sys.path.remove(str(site))
    registry_module._plugin_paths = None
    registry_module._registered.pop(PLUGIN_TYPE, None)
    sys.modules.pop("da_plugin_fixture", None)


def test_plugin_type_is_discovered_through_its_entry_point(plugin_site: Path) -> None:
    assert PLUGIN_TYPE in known_type_names()
    cls = get_connector_class(PLUGIN_TYPE)
    assert cls.__module__ == "da_plugin_fixture"
    assert Path(sys.modules["da_plugin_fixture"].__file__ or "").is_relative_to(plugin_site)
    assert cls.type_name() == PLUGIN_TYPE


def test_plugin_end_to_end(plugin_site: Path, registry: SourceRegistry, tmp_path: Path, canary: str) -> None:
    set_secret_store(DictStore({"inline-token": canary}))
    try:
        registry.add({"id": "inl", "type": PLUGIN_TYPE, "name": "Inline", "config": {
            "files": {"a.txt": "hello", "d/b.txt": "world"},
            "token": {"secret": "inline-token"},
            "expected_token_sha256": hashlib.sha256(canary.encode()).hexdigest(),
        }})
        assert [s.id for s in registry.list()] == ["inl"]

        async def run() -> tuple[list[str], str]:
            async with registry:
                connector = await registry.connector("inl")
                items = [item.path for item in await connector.list_items()]
                return items, await connector.fetch_data("d/b.txt", str(tmp_path / "ws"))

        items, landed = asyncio.run(run())
    finally:
        set_secret_store(None)
    assert items == ["a.txt", "d/b.txt"]
    assert Path(landed).read_text() == "world"
    assert read_provenance(landed)["source_type"] == PLUGIN_TYPE
    assert canary not in registry.path.read_text()


# --- the sources file -------------------------------------------------------------


def test_crud_round_trip(registry: SourceRegistry, data_root: Path) -> None:
    assert registry.list() == []
    added = registry.add(local_source("docs", data_root, pattern="*.csv"))
    assert registry.get("docs") == added
    registry.add(local_source("more", data_root))
    assert [s.id for s in registry.list()] == ["docs", "more"]
    updated = registry.update("docs", name="Documents", config={"pattern": None, "recursive": False},
                              metadata={"env": "test"})
    assert updated.name == "Documents"
    assert updated.config == {"root": str(data_root), "recursive": False}
    assert registry.get("docs").metadata == {"env": "test"}
    registry.remove("more")
    assert [s.id for s in registry.list()] == ["docs"]
    assert load_sources_file(registry.path) == registry.list()  # the same file the Dagster layer reads


def test_created_at_survives_a_round_trip(registry: SourceRegistry, data_root: Path) -> None:
    registry.add({**local_source("docs", data_root), "created_at": 1700000000})
    assert registry.get("docs").created_at == 1700000000
    registry.update("docs", name="x")
    assert registry.get("docs").created_at == 1700000000


def test_duplicate_id_is_refused(registry: SourceRegistry, data_root: Path) -> None:
    registry.add(local_source("docs", data_root))
    with pytest.raises(ConfigurationError, match="'docs' is taken"):
        registry.add(local_source("docs", data_root))


def test_unknown_id_lists_the_known_ones(registry: SourceRegistry, data_root: Path) -> None:
    registry.add(local_source("docs", data_root))
    for call in (registry.get, registry.remove, lambda i: registry.update(i, name="x")):
        with pytest.raises(NotFoundError, match=r"no source 'nope' .*\(known: docs\)"):
            call("nope")


def test_invalid_source_names_source_and_field(registry: SourceRegistry, data_root: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"source 'bad'.*config\.recursive"):
        registry.add(local_source("bad", data_root, recursive="sometimes"))
    with pytest.raises(ConfigurationError, match=r"source 'bad'.*config\.colour: unknown field"):
        registry.add(local_source("bad", data_root, colour="red"))
    assert not registry.path.exists()


def test_invalid_update_leaves_the_file_unchanged(registry: SourceRegistry, data_root: Path) -> None:
    registry.add(local_source("docs", data_root))
    before = registry.path.read_bytes()
    with pytest.raises(ConfigurationError, match="config.root"):
        registry.update("docs", config={"root": None})
    assert registry.path.read_bytes() == before


def test_literal_secret_is_never_persisted(registry: SourceRegistry, canary: str) -> None:
    entry = {"id": "pg", "type": "postgresql", "name": "PG", "config": {"host": "h", "password": canary}}
    with pytest.raises(ConfigurationError, match=r"config\.password: .*\{env: NAME\} or \{secret: NAME\}") as caught:
        registry.add(entry)
    assert canary not in str(caught.value)
    assert not registry.path.exists()


def test_references_are_persisted_as_references(registry: SourceRegistry) -> None:
    registry.add({"id": "pg", "type": "postgresql", "name": "PG",
                  "config": {"host": "h", "password": {"secret": "pg-pw"}, "user": {"env": "PG_USER"}}})
    written = yaml.safe_load(registry.path.read_text())
    assert written["sources"][0]["config"] == {"host": "h", "password": {"secret": "pg-pw"},
                                               "user": {"env": "PG_USER"}}


def test_literal_secret_cannot_be_added_by_update(registry: SourceRegistry, canary: str) -> None:
    registry.add({"id": "pg", "type": "postgresql", "name": "PG", "config": {"host": "h"}})
    with pytest.raises(ConfigurationError, match="literal secret"):
        registry.update("pg", config={"password": canary})
    assert canary not in registry.path.read_text()


def test_malformed_file_is_a_clear_error(registry: SourceRegistry) -> None:
    registry.path.write_text("sources: [unclosed\n")
    with pytest.raises(ConfigurationError, match="cannot read sources file"):
        registry.list()
    registry.path.write_text("sources:\n  - id: x\n    type: ftp\n    name: X\n    config: {}\n")
    # a bad entry fails itself only (test_source_ids.py): it is left out of list() and get() raises its error
    assert registry.list() == []
    with pytest.raises(ConfigurationError, match=r"source 'x': type: unknown connector type 'ftp'"):
        registry.get("x")


def test_writes_are_atomic_and_leave_no_temporary(registry: SourceRegistry, data_root: Path) -> None:
    for index in range(5):
        registry.add(local_source(f"s{index}", data_root))
    names = sorted(p.name for p in registry.path.parent.iterdir())
    assert not [n for n in names if n.startswith(".~da-")]
    assert "sources.yaml.lock" in names


def test_two_processes_adding_at_once_both_land(registry: SourceRegistry, data_root: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from connectors.registry import SourceRegistry
        registry = SourceRegistry(sys.argv[1])
        for i in range(15):
            registry.add({"id": f"{sys.argv[2]}-{i}", "type": "local_file", "name": "n",
                          "config": {"root": sys.argv[3]}})
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(registry.path), tag, str(data_root)], cwd=REPO)
        for tag in ("first", "second")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    ids = [s.id for s in registry.list()]
    assert len(ids) == 30
    assert sorted(ids) == sorted(f"{tag}-{i}" for tag in ("first", "second") for i in range(15))


def test_sources_file_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DA_SOURCES_FILE", str(tmp_path / "x.yaml"))
    assert SourceRegistry().path == tmp_path / "x.yaml"
    assert SourceRegistry(tmp_path / "y.yaml").path == tmp_path / "y.yaml"


# --- connectors from the registry -------------------------------------------------


def test_one_connector_per_source_connected_once(
    registry: SourceRegistry, data_root: Path, counting_type: str
) -> None:
    registry.add({**local_source("docs", data_root), "type": counting_type})

    async def run() -> list[DataSourceConnector]:
        async with registry:
            first = await asyncio.gather(*(registry.connector("docs") for _ in range(5)))
            again = await registry.connector("docs")
            assert all(c.is_connected for c in first)
            return [*first, again]

    handed_out = asyncio.run(run())
    assert len({id(c) for c in handed_out}) == 1
    assert CountingConnector.connects == 1
    assert CountingConnector.disconnects == 1  # closed by the registry
    assert not handed_out[0].is_connected


def test_create_connector_is_private_and_unconnected(registry: SourceRegistry, data_root: Path) -> None:
    registry.add(local_source("docs", data_root))
    first, second = registry.create_connector("docs"), registry.create_connector("docs")
    assert first is not second
    assert isinstance(first, LocalFileConnector) and not first.is_connected


def test_update_retires_the_pooled_connector(
    registry: SourceRegistry, data_root: Path, counting_type: str
) -> None:
    registry.add({**local_source("docs", data_root), "type": counting_type})

    async def run() -> tuple[DataSourceConnector, DataSourceConnector, list[str]]:
        async with registry:
            before = await registry.connector("docs")
            registry.update("docs", config={"pattern": "sub/*"})
            after = await registry.connector("docs")
            return before, after, [i.path for i in await after.list_items()]

    before, after, items = asyncio.run(run())
    assert before is not after
    assert items == ["sub/b.csv"]
    assert CountingConnector.disconnects == 2  # both closed by aclose


def test_failed_connect_is_not_pooled(registry: SourceRegistry, tmp_path: Path) -> None:
    registry.add(local_source("gone", tmp_path / "missing"))

    async def run() -> None:
        async with registry:
            for _ in range(2):
                with pytest.raises(NotFoundError, match="does not exist"):
                    await registry.connector("gone")

    asyncio.run(run())
