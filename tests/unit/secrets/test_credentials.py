"""Secret references, the masked Secret type, and log redaction (canaries through every path)."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import pickle
from collections.abc import Iterator

import pytest

from connectors.base import DataSourceConfig
from connectors.errors import ConfigurationError
from connectors.local_file import LocalFileConnector
from connectors.secrets.references import (
    MASK,
    RedactingFilter,
    Secret,
    get_logger,
    is_reference,
    redact,
    resolve_config,
    resolve_reference,
    set_secret_store,
)
from connectors.settings import PostgreSQLSettings, resolve_settings
from tests.helpers.secrets import DictStore


@pytest.fixture
def store() -> Iterator[DictStore]:
    installed = DictStore()
    set_secret_store(installed)
    yield installed
    set_secret_store(None)


# --- references -------------------------------------------------------------------


def test_is_reference_recognises_only_the_two_forms() -> None:
    assert is_reference({"env": "X"}) and is_reference({"secret": "X"})
    assert not is_reference({"env": "X", "secret": "Y"})
    assert not is_reference({"vault": "X"})
    assert not is_reference({"env": 3})
    assert not is_reference("X")


def test_env_reference_resolves_at_resolution_time(monkeypatch: pytest.MonkeyPatch, canary: str) -> None:
    monkeypatch.setenv("DA_TEST_PW", canary)
    assert resolve_reference({"env": "DA_TEST_PW"}, where="config.password") == canary


def test_missing_env_reference_names_field_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DA_TEST_MISSING", raising=False)
    with pytest.raises(ConfigurationError, match=r"config\.password: environment variable DA_TEST_MISSING"):
        resolve_reference({"env": "DA_TEST_MISSING"}, where="config.password")


def test_secret_reference_uses_the_installed_store(store: DictStore, canary: str) -> None:
    store.values["pg"] = canary
    assert resolve_reference({"secret": "pg"}, where="x") == canary
    with pytest.raises(ConfigurationError, match="'nope' is not in the credential store"):
        resolve_reference({"secret": "nope"}, where="x")


def test_resolve_config_leaves_the_config_untouched(store: DictStore, canary: str) -> None:
    store.values["pw"] = canary
    config = {"host": "h", "password": {"secret": "pw"}}
    resolved = resolve_config(config, source_id="s")
    assert resolved["password"] == canary
    assert config == {"host": "h", "password": {"secret": "pw"}}


def test_rotation_is_seen_on_the_next_resolution(store: DictStore) -> None:
    config = {"host": "h", "password": {"secret": "pw"}}
    store.values["pw"] = "first-value"
    assert resolve_settings(PostgreSQLSettings, config, "s").password.reveal() == "first-value"
    store.values["pw"] = "second-value"
    assert resolve_settings(PostgreSQLSettings, config, "s").password.reveal() == "second-value"


def test_connector_resolves_references_only_when_it_connects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("DA_TEST_ROOT", raising=False)
    source = DataSourceConfig(id="s", type="local_file", name="S", config={"root": {"env": "DA_TEST_ROOT"}})
    connector = LocalFileConnector(source)  # building it needs no value
    with pytest.raises(ConfigurationError, match="DA_TEST_ROOT is not set"):
        asyncio.run(connector.connect())
    monkeypatch.setenv("DA_TEST_ROOT", str(tmp_path))
    assert asyncio.run(connector.connect())
    assert source.config["root"] == {"env": "DA_TEST_ROOT"}  # never stored resolved
    asyncio.run(connector.disconnect())


# --- the masked type --------------------------------------------------------------


def test_secret_never_shows_its_value(canary: str) -> None:
    s = Secret(canary)
    shown = [repr(s), str(s), f"{s}", f"{s!r}", f"{s:>40}", format(s, "^30"), str([s]), str({"k": s})]
    shown.append("%s %r" % (s, s))  # noqa: UP031 - the old style is used by logging
    for text in shown:
        assert canary not in text
        assert MASK in text
    assert s.reveal() == canary


def test_pickled_secret_is_masked_and_cannot_be_revealed(canary: str) -> None:
    data = pickle.dumps(Secret(canary))
    assert canary.encode() not in data
    copy_ = pickle.loads(data)
    assert str(copy_) == MASK
    with pytest.raises(ConfigurationError, match="reference"):
        copy_.reveal()


def test_copies_in_process_keep_the_value(canary: str) -> None:
    s = Secret(canary)
    assert copy.copy(s).reveal() == canary
    assert copy.deepcopy({"k": s})["k"].reveal() == canary


def test_secret_equality_compares_values_without_showing_them(canary: str) -> None:
    assert Secret(canary) == Secret(canary)
    assert Secret(canary) != Secret(canary + "x")
    assert hash(Secret(canary)) == hash(Secret("other"))  # the hash leaks nothing about the value


def test_literal_secret_in_a_config_is_masked_everywhere(canary: str) -> None:
    source = DataSourceConfig(id="pg", type="postgresql", name="PG",
                              config={"host": "h", "password": canary})
    assert isinstance(source.config["password"], Secret)
    dumped = [source.model_dump_json(), json.dumps(source.model_dump(mode="json"))]
    for text in (repr(source), str(source), *dumped, json.dumps(source.config, default=str)):
        assert canary not in text
    assert canary.encode() not in pickle.dumps(source)


def test_validation_errors_never_echo_values(canary: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DataSourceConfig(id="pg", type="postgresql", name="PG",
                         config={"host": "h", "password": canary, "port": canary})
    assert canary not in str(caught.value)
    assert "config.port" in str(caught.value)


# --- redaction --------------------------------------------------------------------

REDACTION_CASES = [
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={c}==;EndpointSuffix=core.windows.net",
    "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&sig={c}",
    "https://a.blob.core.windows.net/c/b.csv?sv=2022-11-02&se=2030-01-01&sp=r&sig={c}%3D",
    "sig={c}&sv=2022-11-02",
    "Server=db;Database=x;User Id=u;Password={c};",
    "postgresql://app:{c}@db.example.com:5432/sales?sslmode=require",
    "postgres://app:p@ss{c}@db/x",
    "host=db port=5432 user=app password={c} dbname=x",
    "host=db password='{c} with space' dbname=x",
    'host=db password="{c} with space" dbname=x',
    "PGPASSWORD={c} psql",
    "{{'password': '{c}', 'host': 'db'}}",
    '{{"account_key": "{c}", "container_name": "data"}}',
    '{{"sas_token": "{c}"}}',
    "Authorization: SharedKey devstoreaccount1:{c}",
    "Authorization: Bearer {c}",
]


@pytest.mark.parametrize("template", REDACTION_CASES)
def test_redact_removes_the_canary(template: str, canary: str) -> None:
    text = template.format(c=canary)
    clean = redact(text)
    assert canary not in clean
    assert MASK in clean


@pytest.mark.parametrize(
    "text",
    [
        "listed 12 items in container data",
        "postgresql://db.example.com:5432/sales",
        "signature verified; design=final; user=app",
        "https://a.blob.core.windows.net/c/b.csv?sv=2022-11-02&sp=r",
    ],
)
def test_redact_leaves_harmless_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_keeps_the_useful_parts() -> None:
    clean = redact("postgresql://app:pw@db:5432/sales and AccountName=acct;AccountKey=abc==;")
    assert clean == f"postgresql://app:{MASK}@db:5432/sales and AccountName=acct;AccountKey={MASK};"


def _capture(logger: logging.Logger) -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return stream, handler


def test_library_logger_redacts_messages_args_exceptions_and_stacks(canary: str) -> None:
    logger = get_logger(f"connectors.test.{canary[:12]}")
    stream, handler = _capture(logger)
    try:
        logger.info("connecting with %s", f"AccountKey={canary};")
        logger.warning("dsn postgresql://u:%s@h/db failed", canary)
        logger.info("secret object %s %r", Secret(canary), Secret(canary))
        try:
            raise RuntimeError(f"SDK says: password={canary}")
        except RuntimeError:
            logger.exception("fetch failed")
        logger.info("where sig=%s", canary, stack_info=True)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert canary not in output
    assert "connecting with AccountKey=" in output and "fetch failed" in output
    assert "RuntimeError: SDK says: password=" in output  # the exception is still shown, redacted


def test_get_logger_installs_the_filter_once() -> None:
    logger = get_logger("connectors.test.once")
    get_logger("connectors.test.once")
    assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1


def test_filter_survives_a_bad_format_string(canary: str) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %d password=" + canary, ("a",), None)
    assert RedactingFilter().filter(record)
    assert canary not in record.getMessage()
