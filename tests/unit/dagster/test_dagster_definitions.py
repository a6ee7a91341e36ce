"""The code location: names, the embedded sample, sources-file sources, and secrets as references only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from dagster import AssetKey, EnvVar
from dagster._core.definitions.partitions.utils.base import INVALID_PARTITION_SUBSTRINGS
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.ids import source_slug
from connectors.syncing.progress_log import ProgressLog
from da_pipelines.definitions import build_definitions
from da_pipelines.factory import source_uri
from da_pipelines.resources import AzureBlobResource, PostgreSQLResource
from da_pipelines.sources import SAMPLE_DATA_DIR, load_sources, resource_for
from da_pipelines.translator import item_from_partition_key, item_partition_key

CANARY = "canary-Secret-9f2c1e"


def test_source_slug_follows_the_design() -> None:
    assert source_slug("ds-Azure.Prod") == "ds_azure_prod"
    assert source_slug("sample") == "sample"
    assert source_slug("Ünï code/x") == "_n__code_x"


@given(st.text(min_size=1, max_size=60))
def test_partition_keys_are_safe_and_reversible(name: str) -> None:
    key = item_partition_key(name)
    assert item_from_partition_key(key) == name
    assert not any(refused in key for refused in INVALID_PARTITION_SUBSTRINGS)


def test_without_a_sources_file_the_sample_source_is_served(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DA_SOURCES_FILE", raising=False)
    [sample] = load_sources()
    assert sample.id == "sample" and Path(sample.config["root"]) == SAMPLE_DATA_DIR
    assert {p.name for p in SAMPLE_DATA_DIR.iterdir()} >= {"sales.csv", "customers.csv", "products.parquet"}
    defs = build_definitions()
    assert defs.resolve_job_def("sample_sync").name == "sample_sync"
    assert defs.resolve_sensor_def("sample_sensor").name == "sample_sensor"
    keys = {spec.key for spec in defs.resolve_all_asset_specs()}
    assert {AssetKey(["sample", "remote"]), AssetKey(["sample", "files"])} <= keys


def test_a_missing_named_sources_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_SOURCES_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_sources()


SOURCES = """
sources:
  - id: ds-azure-prod
    type: azure_blob
    name: Production Azure Storage
    config:
      connection_string: {env: DA_TEST_AZURE_CS}
      container_name: data
  - id: PG-Warehouse
    type: postgresql
    name: Warehouse
    config:
      host: db.internal
      dbname: dw
      user: reader
      password: {secret: warehouse-password}
      port: {env: DA_TEST_PG_PORT}
"""


def test_sources_file_sources_get_assets_jobs_sensors_and_reference_only_resources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sources.yaml").write_text(SOURCES)
    monkeypatch.setenv("DA_SOURCES_FILE", str(tmp_path / "sources.yaml"))
    monkeypatch.setenv("DA_TEST_AZURE_CS", CANARY)
    defs = build_definitions(workspace=str(tmp_path / "ws"))
    for slug in ("ds_azure_prod", "pg_warehouse"):
        assert defs.resolve_job_def(f"{slug}_sync") and defs.resolve_sensor_def(f"{slug}_sensor")
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    remote = specs[AssetKey(["ds_azure_prod", "remote"])]
    assert remote.kinds == {"azure"} and remote.metadata["dagster/uri"] == "azure://data"
    assert specs[AssetKey(["pg_warehouse", "remote"])].metadata["dagster/uri"] == "postgresql://db.internal/dw"
    # the server is unreachable and no listing was ever stored: one stand-in asset, saying why
    tables = specs[AssetKey(["pg_warehouse", "tables"])]
    assert tables.deps[0].asset_key == AssetKey(["pg_warehouse", "remote"])
    assert "not known" in (tables.description or "") and "listing the tables failed" in (tables.description or "")
    assert specs[AssetKey(["ds_azure_prod", "files"])].deps[0].asset_key == AssetKey(["ds_azure_prod", "remote"])
    resources = defs.resources or {}
    azure = resources["ds_azure_prod_source"]
    assert isinstance(azure, AzureBlobResource) and isinstance(azure.connection_string, EnvVar)
    pg = resources["pg_warehouse_source"]
    assert isinstance(pg, PostgreSQLResource) and pg.password is None
    assert pg.secret_refs == {"password": "warehouse-password"} and pg.references == {"port": "DA_TEST_PG_PORT"}
    assert CANARY not in repr(resources) and CANARY not in str(pickle.dumps(dict(resources)))


def test_a_literal_secret_is_refused_naming_source_and_field() -> None:
    source = DataSourceConfig(id="az", type="azure_blob", name="Az",
                              config={"container_name": "c", "connection_string": CANARY})
    with pytest.raises(ConfigurationError) as raised:
        resource_for(source)
    assert "az" in str(raised.value) and "connection_string" in str(raised.value)
    assert CANARY not in str(raised.value)


def test_resolved_secrets_are_masked_in_a_resource_repr() -> None:
    resource = AzureBlobResource(source_id="az", source_name="Az", container_name="c", connection_string=CANARY)
    assert CANARY not in repr(resource) and CANARY not in str(resource)
    config = resource.source_config()
    assert CANARY not in repr(config)


def test_source_uri_never_carries_credentials() -> None:
    source = DataSourceConfig(id="az", type="azure_blob", name="Az", config={
        "container_name": "c", "account_url": f"https://user:pw@acct.blob.core.windows.net/?sig={CANARY}",
        "sas_token": {"env": "X"}})
    uri = source_uri(source)
    assert uri == "https://acct.blob.core.windows.net/c" and CANARY not in uri and "pw" not in uri


def test_workspace_root_follows_da_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_WORKSPACE", str(tmp_path / "elsewhere"))
    defs = build_definitions(sources=[])
    assert (defs.resources or {})["workspace"].root == str(tmp_path / "elsewhere")
    monkeypatch.delenv("DA_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    assert (build_definitions(sources=[]).resources or {})["workspace"].root == str(tmp_path / "workspace")


def test_progress_lines_count_items_bytes_and_rate_and_are_rate_limited() -> None:
    lines: list[str] = []
    progress = ProgressLog(lines.append, total_items=3, interval=3600)
    progress.on_bytes("a", 1024, 2048)
    progress.on_bytes("a", 2048, 2048)
    progress.item_done()
    assert lines == []  # within the interval: silent
    assert progress.summary().startswith("1/3 items, 2.0 KB, ")
    eager = ProgressLog(lines.append, total_items=1, interval=0)
    eager.item_done()
    assert lines and lines[-1].startswith("progress: 1/1 items")
