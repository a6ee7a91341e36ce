"""``test_connection`` says the real cause, and a key that is not base64 is refused at once (real Azurite).

``AzureBlobConnector.test_connection`` returns True or raises the typed error
that ``list_items`` would raise; ``da-sources test`` prints that error. A key
that is not base64 is a ConfigurationError when the config is validated
(literal) or when the reference is resolved at connect: never a request.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataSourceConfig,
    DataSourceError,
    NotFoundError,
)
from connectors.azure_blob import AzureBlobConnector
from connectors.azure_blob.retries import MAX_BACKOFF
from tests.conformance import run
from tests.faults import FaultProxy
from tests.harness import AzuriteServer, free_port
from tests.helpers.azure import CANARY, azure_config, new_container, via_proxy
from tests.helpers.cli import Cli

pytestmark = pytest.mark.integration

WRONG_KEY = base64.b64encode(CANARY.encode() * 3).decode()  # well-formed, wrong
RETRYING = re.compile(r"retrying in ([0-9.]+) s after: ")
NOT_BASE64 = [f"{CANARY}!not-base64", "abc", "====", "", "a key with spaces=="]


@pytest.fixture
def container(azurite_server: AzuriteServer) -> str:
    return new_container(azurite_server, {"raw/a.csv": b"a\n"})


def connection_string(server: AzuriteServer, *, key: str | None = None, port: int | None = None) -> str:
    endpoint = f"http://127.0.0.1:{port or server.port}/{server.account_name}"
    return (f"DefaultEndpointsProtocol=http;AccountName={server.account_name};"
            f"AccountKey={server.account_key if key is None else key};BlobEndpoint={endpoint};")


def outcome_of(config: DataSourceConfig) -> Any:
    """What test_connection returned or raised."""

    async def body() -> Any:
        async with AzureBlobConnector(config) as connector:
            try:
                return await connector.test_connection()
            except DataSourceError as exc:
                return exc

    return run(body())


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The pause before each retry, in seconds, as the retry budget logged it."""
    logged = [RETRYING.match(r.getMessage()) for r in caplog.records if r.name == "connectors.azure_blob.retries"]
    return [float(match[1]) for match in logged if match]


def test_a_good_source_tests_true(azurite_server: AzuriteServer, container: str) -> None:
    assert outcome_of(azure_config(azurite_server, container, prefix="raw/")) is True


def test_a_missing_container_says_so_after_one_request(azurite_server: AzuriteServer) -> None:
    async def body() -> tuple[Any, int]:
        async with FaultProxy(azurite_server.port) as proxy:
            async with via_proxy(azurite_server, proxy, "no-such-container") as connector:  # retry_total=3
                with pytest.raises(NotFoundError) as caught:
                    await connector.test_connection()
            return caught.value, len(proxy.requests)

    outcome, requests = run(body())
    assert "container 'no-such-container'" in str(outcome) and "does not exist" in str(outcome)
    assert requests == 1  # not retried: a missing container is no transient failure


def test_a_wrong_key_says_access_denied_after_one_request(azurite_server: AzuriteServer, container: str) -> None:
    async def body() -> tuple[Any, int]:
        async with FaultProxy(azurite_server.port) as proxy:
            config = azure_config(azurite_server, container,
                                  connection_string=connection_string(azurite_server, key=WRONG_KEY, port=proxy.port))
            async with AzureBlobConnector(config) as connector:
                with pytest.raises(AuthenticationError) as caught:
                    await connector.test_connection()
            return caught.value, len(proxy.requests)

    error, requests = run(body())
    assert requests == 1 and "access denied" in str(error)
    assert WRONG_KEY not in str(error) + repr(error) and CANARY not in str(error)


def test_an_unreachable_endpoint_says_it_cannot_connect_within_the_retry_budget(
    azurite_server: AzuriteServer, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.azure_blob.retries")
    port = free_port()  # nothing listens there
    config = azure_config(azurite_server, container, retry_total=2,
                          connection_string=connection_string(azurite_server, port=port))
    outcome = outcome_of(config)
    assert isinstance(outcome, ConnectionError), outcome
    assert f"cannot connect to 127.0.0.1:{port}" in str(outcome) and "refused" in str(outcome)
    # retry_total bounds the call: two retries, each after a backoff under the cap (no other retry layer)
    pauses = retries_logged(caplog)
    assert len(pauses) == 2 and all(0 <= pause <= MAX_BACKOFF for pause in pauses), pauses


def assert_refused(server: AzuriteServer, field: str, **settings: Any) -> None:
    """Building the config refuses the key (a pydantic check: no connector, no request)."""
    with pytest.raises(ConfigurationError, match=f"config.{field}: .*not a storage account key") as caught:
        azure_config(server, "c", **settings)
    assert CANARY not in str(caught.value) + repr(caught.value)


@pytest.mark.parametrize("key", NOT_BASE64)
def test_an_account_key_that_is_not_base64_is_refused_when_the_config_is_built(
    azurite_server: AzuriteServer, key: str
) -> None:
    assert_refused(azurite_server, "account_key", account_url=azurite_server.blob_endpoint, account_key=key)


@pytest.mark.parametrize("key", [k for k in NOT_BASE64 if k])  # 'AccountKey=' (empty) is no key: anonymous
def test_a_connection_string_key_that_is_not_base64_is_refused_when_the_config_is_built(
    azurite_server: AzuriteServer, key: str
) -> None:
    assert_refused(azurite_server, "connection_string",
                           connection_string=connection_string(azurite_server, key=key))


def test_a_referenced_key_that_is_not_base64_is_refused_at_connect_before_any_request(
    azurite_server: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DA_TEST_BAD_KEY", NOT_BASE64[0])

    async def body() -> int:
        async with FaultProxy(azurite_server.port) as proxy:
            connector = AzureBlobConnector(azure_config(
                azurite_server, container, account_url=proxy.endpoint(azurite_server.account_name),
                account_key={"env": "DA_TEST_BAD_KEY"}))
            with pytest.raises(ConfigurationError, match="config.account_key: .*not a storage account key"):
                await connector.test_connection()  # connects first: the reference is resolved there
            return len(proxy.requests)

    assert run(body()) == 0


# --- the CLI: `da-sources test` prints the cause ------------------------------------------------


def write_sources(path: Path, sources: dict[str, dict[str, Any]]) -> None:
    entries = [{"id": sid, "type": "azure_blob", "name": sid, "config": config} for sid, config in sources.items()]
    path.write_text(yaml.safe_dump({"sources": entries}))


def test_cli_test_and_ls_say_the_real_cause(cli: Cli, azurite_server: AzuriteServer, container: str) -> None:
    env = {"GOOD_CS": azurite_server.connection_string,
           "WRONG_KEY_CS": connection_string(azurite_server, key=WRONG_KEY),
           "UNREACHABLE_CS": connection_string(azurite_server, port=free_port()),
           "BAD_KEY_CS": connection_string(azurite_server, key=NOT_BASE64[0])}
    cs = {name: {"env": name} for name in env}
    write_sources(cli.sources_file, {
        "good": {"connection_string": cs["GOOD_CS"], "container_name": container, "prefix": "raw/"},
        "nocontainer": {"connection_string": cs["GOOD_CS"], "container_name": "no-such-container"},
        "wrongkey": {"connection_string": cs["WRONG_KEY_CS"], "container_name": container},
        "unreachable": {"connection_string": cs["UNREACHABLE_CS"], "container_name": container, "retry_total": 1},
        "badkey": {"connection_string": cs["BAD_KEY_CS"], "container_name": container},
    })
    assert "ok" in cli("test", "good", env=env).stdout
    # what ls prints is what ls PATH and fetch take (through the CLI)
    printed = [i["path"] for i in json.loads(cli("ls", "good", "--json", env=env).stdout)]
    assert printed == ["raw/a.csv"]
    assert [i["path"] for i in json.loads(cli("ls", "good", "raw/", "--json", env=env).stdout)] == printed
    cli("fetch", "good", printed[0], "--workspace", str(cli.cwd / "ws"), env=env)
    assert (cli.cwd / "ws" / "good" / "raw" / "a.csv").read_bytes() == b"a\n"
    assert "not in this source" in cli("ls", "good", "other/", check=False, env=env).stderr
    causes = {"nocontainer": "does not exist", "wrongkey": "access denied", "unreachable": "cannot connect",
              "badkey": "not a storage account key"}
    # how many requests each cause costs is counted in-process above (the CLI calls test_connection once)
    for source, cause in causes.items():
        tested_ = cli("test", source, check=False, env=env).stderr
        assert cause in tested_ and "does not answer with these settings" not in tested_, tested_
        listed = cli("ls", source, check=False, env=env).stderr
        assert cause in listed and "unexpected" not in listed, listed
    assert all(WRONG_KEY not in text and CANARY not in text for text in cli.outputs)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    from connectors.secrets.store import FernetFileStore

    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    return Cli(work, {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
                      "DA_SOURCES_FILE": str(tmp_path / "sources.yaml"),
                      "DA_SECRETS_FILE": str(tmp_path / "secrets" / "store.fernet"),
                      "DA_SECRETS_KEY": FernetFileStore.generate_key(), "DA_SECRETS_BACKEND": "file"})
