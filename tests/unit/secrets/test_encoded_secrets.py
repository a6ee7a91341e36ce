"""Secret detection decodes before it decides: percent-encoding and case hide no SAS signature,
and a Dagster component value given as ``{{ env.X }}`` never carries a secret or a value into the definitions.

Row 57 of docs/RELIABILITY.md (the fault matrix).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.registry import SourceRegistry
from connectors.secrets.references import MASK, Secret, carries_secret, redact
from da_pipelines.components import DataSourceComponent
from da_pipelines.sources import resource_for


def encoded_sas(canary: str) -> list[str]:
    base = "https://acct.blob.core.windows.net/?sv=2024-05-04&sp=rl&"
    return [f"{base}%73ig={canary}", f"{base}%2573ig={canary}", f"{base}%53%49%47%3D{canary}", f"{base}SiG={canary}"]


def test_an_encoded_or_upper_case_signature_is_recognised_and_masked(canary: str) -> None:
    for url in encoded_sas(canary):
        assert carries_secret(url), url
        assert canary not in redact(url) and MASK in redact(url)
        assert canary not in redact(f"GET {url} failed: 403")


def test_a_source_with_an_encoded_signature_masks_it_and_never_stores_it(tmp_path: Path, canary: str) -> None:
    registry = SourceRegistry(tmp_path / "sources.yaml")
    for i, url in enumerate(encoded_sas(canary)):
        source = DataSourceConfig(id=f"s{i}", type="azure_blob", name="s", config={"container_name": "c",
                                                                                   "account_url": url})
        assert isinstance(source.config["account_url"], Secret)
        assert canary not in repr(source) and canary not in source.model_dump_json()
        with pytest.raises(ConfigurationError) as caught:
            registry.add(source)
        assert canary not in str(caught.value)
    assert not (tmp_path / "sources.yaml").exists() or canary not in (tmp_path / "sources.yaml").read_text()


def test_a_component_value_resolving_to_an_encoded_sas_is_refused_without_echo(canary: str) -> None:
    url = encoded_sas(canary)[0]  # what {{ env.AZURE_URL }} resolves to before the component sees it
    component = DataSourceComponent(id="lake", type="azure_blob", config={"container_name": "c", "account_url": url})
    with pytest.raises(ConfigurationError) as caught:
        resource_for(component.source_config())
    assert "config.account_url" in str(caught.value) and canary not in str(caught.value)


@pytest.mark.parametrize("kind", ["env", "secret"])
def test_a_component_reference_named_by_a_template_is_refused_without_echo(
        kind: str, canary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_PASSWORD", canary)  # {kind: "{{ env.WAREHOUSE_PASSWORD }}"}, resolved
    component = DataSourceComponent(id="wh", type="postgresql", config={"host": "db", "password": {kind: canary}})
    with pytest.raises(ConfigurationError) as caught:
        component.source_config()
    assert "config.password" in str(caught.value) and canary not in str(caught.value)


def test_a_component_reference_by_name_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "pw")
    component = DataSourceComponent(id="wh", type="postgresql",
                                    config={"host": "db", "password": {"env": "WAREHOUSE_PASSWORD"}})
    assert component.source_config().config["password"] == {"env": "WAREHOUSE_PASSWORD"}
