"""A malformed DSN never has any of its values quoted back, anywhere.

libpq quotes the fragment it cannot parse (``forbidden value %00 in
percent-encoded value: "<password>%00dsn"``); that fragment is not the whole
DSN or the whole password, so masking known secrets does not catch it. Every
form below carries the canary where libpq would quote it; the error must be
typed and the canary absent from its text, repr, pickle, cause chain, the
logs, and the CLI's output (plain and ``--json``).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from connectors import AuthenticationError, ConfigurationError, ConnectionError, DataSourceConfig
from connectors.postgresql import PostgreSQLConnector
from tests.conformance import run
from tests.harness import REPO, PostgresServer

pytestmark = pytest.mark.integration

CANARY = "PGCANARY"


def malformed(server: PostgresServer) -> dict[str, str]:
    """name -> a DSN carrying the canary where libpq's error would quote it."""
    where = f"{server.host}:{server.port}"
    return {
        "NUL in percent-encoding": f"postgresql://u:{CANARY}%00dsn@{where}/postgres",
        "bad percent-encoding": f"postgresql://u:{CANARY}%zzdsn@{where}/postgres",
        "truncated percent-encoding": f"postgresql://u:{CANARY}dsn%4@{where}/postgres",
        "percent at the end": f"postgresql://u@{where}/postgres?password={CANARY}%",
        "unknown URI parameter": f"postgresql://u:pw@{where}/postgres?{CANARY}=1",
        "bad URI parameter": f"postgresql://u:pw@{where}/postgres?password={CANARY}=x=y",
        "URI parameter without value": f"postgresql://u:pw@{where}/postgres?sslmode&password={CANARY}",
        "port in the password's place": f"postgresql://u@{server.host}:{CANARY}/postgres",
        "unterminated IPv6 host": f"postgresql://u:{CANARY}@[::1/postgres",
        "key without =": f"host={server.host} {CANARY}dsn password=x",
        "unterminated quote": f"host={server.host} password='{CANARY}dsn",
        "unknown key": f"host={server.host} {CANARY}=1",
        "bad port value": f"host={server.host} port={CANARY}",
        "bad sslmode": f"host={server.host} port={server.port} sslmode={CANARY} password=x",
        "bad target_session_attrs": f"host={server.host} port={server.port} target_session_attrs={CANARY}",
        "host from the password": f"postgresql://u@{CANARY}dsn.invalid:{server.port}/postgres",
        "wrong password": f"postgresql://postgres:{CANARY}@{where}/postgres",
        "bad connect_timeout": f"host={server.host} port={server.port} connect_timeout={CANARY}",
        "bad keepalives": f"host={server.host} port={server.port} keepalives={CANARY}",
        "trailing backslash": f"host={server.host} password={CANARY}\\",
    }


def texts_of(error: BaseException) -> list[str]:
    """Every text the error and the exceptions chained to it can show."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), str(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return texts


def test_malformed_dsns_are_typed_errors_that_quote_nothing(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    problems = []
    for name, dsn in malformed(postgres_server).items():
        config = DataSourceConfig(id="pg-dsn", type="postgresql", name="PG", config={"dsn": dsn, "connect_timeout": 3})
        connector = PostgreSQLConnector(config)
        try:
            run(connector.connect())
        except (ConfigurationError, ConnectionError, AuthenticationError) as exc:
            texts = [*texts_of(exc), pickle.dumps(exc).decode("latin-1"), repr(connector), repr(config)]
            if any(CANARY in text for text in texts):
                problems.append((name, str(exc)))
        else:
            problems.append((name, "connected"))
            run(connector.disconnect())
    assert problems == []
    assert CANARY not in caplog.text


def test_the_cli_says_what_is_wrong_without_the_dsn(postgres_server: PostgresServer, tmp_path: Path) -> None:
    forms = malformed(postgres_server)
    sources = {"sources": [{"id": f"pg{index}", "type": "postgresql", "name": name,
                            "config": {"dsn": {"env": f"DA_TEST_DSN_{index}"}, "connect_timeout": 3}}
                           for index, name in enumerate(forms)]}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources))
    env = {**os.environ, **{f"DA_TEST_DSN_{index}": dsn for index, dsn in enumerate(forms.values())}}
    outputs = []
    for index in (0, 1, 4, 7, 9, 10, 16):  # one of each kind: the CLI path is the same for all
        for extra in ([], ["--json"]):
            done = subprocess.run([sys.executable, "-m", "connectors.cli", "--sources", str(tmp_path / "sources.yaml"),
                                   "test", f"pg{index}", *extra], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=60)
            outputs.append(done.stdout + done.stderr)
            assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert all(CANARY not in output for output in outputs), [o for o in outputs if CANARY in o]
    assert any("percent-encoded" in output for output in outputs)  # the message still says what is wrong
