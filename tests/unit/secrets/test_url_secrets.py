"""A secret inside a URL or host value is a secret everywhere.

A canary SAS signature in ``account_url``, a canary password in URL or host
userinfo: masked in configs and CLI output, never written to the sources file,
refused as a literal by the Dagster code location, accepted as a reference.
"""

# ruff: noqa: F811  (the cli fixture of test_cli.py, taken as an argument)
from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import pytest
import yaml

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.registry import SourceRegistry
from connectors.secrets.references import MASK, Secret, carries_secret, redact
from connectors.settings import AzureBlobSettings, resolve_settings
from tests.helpers.cli import CONSOLE_SCRIPT, Cli


def sas_url(canary: str) -> str:
    return f"https://acct.blob.core.windows.net/?sv=2024-05-04&ss=b&srt=co&sp=rl&sig={canary}"


def secret_values(canary: str) -> list[tuple[str, dict[str, object]]]:
    """(type, config) pairs whose only secret is the canary inside a text field."""
    return [
        ("azure_blob", {"container_name": "data", "account_url": sas_url(canary)}),
        ("azure_blob", {"container_name": "data", "account_url": f"https://user:{canary}@acct.example/"}),
        ("postgresql", {"host": f"reader:{canary}@db.internal", "dbname": "x"}),
    ]


@pytest.mark.parametrize("text", [
    "https://a.blob.core.windows.net/c?sv=1&sig=abc", "postgresql://u:pw@h/db", "u:pw@db.internal",
    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==", "https://x/?token=abc", "password=abc",
    "BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=abc",
])
def test_secret_parts_are_recognised_and_redacted(text: str) -> None:
    assert carries_secret(text)
    assert MASK in redact(text) and "abc" not in redact(text).replace("abc==", "") and "pw@" not in redact(text)


@pytest.mark.parametrize("text", ["https://acct.blob.core.windows.net", "db.internal", "10.0.0.5", "/srv/data",
                                  "https://user@host/", "exports/2024/", "*.csv"])
def test_plain_values_are_not_secrets(text: str) -> None:
    assert not carries_secret(text)


def test_the_config_masks_the_value_and_the_connector_still_gets_it(canary: str) -> None:
    for type_name, config in secret_values(canary):
        source = DataSourceConfig(id="s", type=type_name, name="S", config=config)
        key = "account_url" if type_name == "azure_blob" else "host"
        assert isinstance(source.config[key], Secret)
        for text in (repr(source), str(source), source.model_dump_json(), repr(pickle.loads(pickle.dumps(source)))):
            assert canary not in text
    source = DataSourceConfig(id="s", type="azure_blob", name="S", config=secret_values(canary)[0][1])
    settings = resolve_settings(AzureBlobSettings, source.config, "s")
    assert settings.account_url == sas_url(canary)  # the SDK gets the real URL
    assert canary not in repr(settings)
    rebuilt = DataSourceConfig(id="s", type="azure_blob", name="S", config=source.config)  # Secret in, Secret out
    assert rebuilt.config["account_url"] == source.config["account_url"]


def test_the_sources_file_never_holds_it(tmp_path: Path, canary: str) -> None:
    registry = SourceRegistry(tmp_path / "sources.yaml")
    for type_name, config in secret_values(canary):
        with pytest.raises(ConfigurationError, match=r"config\.(account_url|host) \(its value carries a secret") as e:
            registry.add({"id": "s", "type": type_name, "name": "S", "config": config})
        assert canary not in str(e.value)
    assert not registry.path.exists()
    registry.add({"id": "s", "type": "azure_blob", "name": "S",
                  "config": {"container_name": "data", "account_url": {"env": "AZ_URL"}}})
    with pytest.raises(ConfigurationError, match="literal secret"):
        registry.update("s", config={"account_url": sas_url(canary)})
    assert canary not in registry.path.read_text()


def test_the_cli_never_shows_or_stores_it(cli: Cli, canary: str) -> None:
    result = cli("add", "azure_blob", "az", "--container-name", "data", "--account-url", sas_url(canary),
                 check=False)
    assert result.returncode == 1 and "config.account_url" in result.stderr and "{env: NAME}" in result.stderr
    assert not cli.sources_file.exists()
    # written by hand into the file: refused as Dagster refuses it, never shown nor used
    entries = [{"id": "az", "type": "azure_blob", "name": "A", "config": {"container_name": "data",
                                                                         "account_url": sas_url(canary)}},
               {"id": "pg", "type": "postgresql", "name": "P", "config": {"host": f"u:{canary}@db", "dbname": "x"}}]
    for entry, field in zip(entries, ("config.account_url", "config.host"), strict=True):
        cli.sources_file.write_text(yaml.safe_dump({"sources": [entry]}))
        [listed] = json.loads(cli("list", "--json", check=False).stdout)
        assert listed["id"] == entry["id"] and field in listed["error"] and "literal secret" in listed["error"]
        assert "literal secret" in cli("test", entry["id"], check=False).stderr
    assert all(canary not in text for text in cli.outputs)
    # a reference is the way: stored as the reference
    cli.sources_file.unlink()
    cli("add", "azure_blob", "az", "--container-name", "data", "--set", "account_url={env: AZ_URL}")
    assert yaml.safe_load(cli.sources_file.read_text())["sources"][0]["config"]["account_url"] == {"env": "AZ_URL"}


def test_dagster_refuses_it_as_a_literal_and_takes_it_as_a_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str) -> None:
    sources = tmp_path / "sources.yaml"
    entries = [{"id": f"s{i}", "type": t, "name": "S", "config": c} for i, (t, c) in enumerate(secret_values(canary))]
    entries.append({"id": "byref", "type": "azure_blob", "name": "R",
                    "config": {"container_name": "data", "account_url": {"env": "AZ_URL"}}})
    sources.write_text(yaml.safe_dump({"sources": entries}))
    monkeypatch.setenv("DA_SOURCES_FILE", str(sources))
    monkeypatch.setenv("AZ_URL", sas_url(canary))
    script = (  # a fresh process, as the code server loads the location
        "import da_pipelines, json\n"
        "d = da_pipelines.defs\n"
        "r = d.get_repository_def()\n"
        "print(json.dumps({'jobs': sorted(j.name for j in r.get_all_jobs()),\n"
        "                  'report': d.metadata['da_sources/invalid_sources'].value,\n"
        "                  'resources': repr(d.resources)}))\n"
    )
    result = subprocess.run([str(CONSOLE_SCRIPT.parent / "python"), "-c", script], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert [j for j in loaded["jobs"] if not j.startswith("__")] == ["byref_sync"]
    assert loaded["report"].count("a literal secret cannot be handed to Dagster") == 3
    assert "config.account_url (its value carries a secret" in loaded["report"]
    assert "account_url='AZ_URL'" in loaded["resources"]  # an EnvVar: its name, resolved in the run
    assert canary not in result.stdout + result.stderr
