"""Audit lines say what happened: the resolved resource and config, secrets masked; a change
whose line cannot be written fails.

Row 58 of docs/RELIABILITY.md (the fault matrix).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from connectors.api.audit import AuditWriteError
from tests.api.conftest import Api, local_source


def last(api: Api, route: str) -> dict[str, Any]:
    return [r for r in api.audit() if r["route"] == route][-1]


def test_created_and_changed_configs_are_recorded_with_secrets_masked(api: Api, canary: str) -> None:
    body = {"id": "pg", "type": "postgresql", "name": "pg",
            "config": {"host": "127.0.0.1", "dbname": "d", "user": "u", "password": canary}}
    api.call("POST", "/v1/data-sources", json=body, expect=201)
    created = last(api, "/v1/data-sources")["config"]
    assert created["host"] == "127.0.0.1" and created["password"] == {"secret": "pg.password"}
    api.call("PATCH", "/v1/data-sources/pg", json={"config": {"dbname": "sales", "password": canary + "2"}},
             expect=200)
    changed = last(api, "/v1/data-sources/{source_id}")
    assert changed["config"] == {"dbname": "sales", "password": {"secret": "pg.password"}}
    api.assert_nowhere(canary)


def test_attach_and_fetch_lines_name_the_thread_and_items(api: Api, data_root: Path) -> None:
    (data_root / "many").mkdir()
    for i in range(25):
        (data_root / "many" / f"f{i:02}.csv").write_text("a\n1\n")
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    refs = [{"source_id": "docs", "path": "a.csv"}, {"source_id": "docs", "glob": "2024/*.csv"}]
    api.call("POST", "/v1/threads/t-9/data", key="read", json={"references": refs, "create": True}, expect=200)
    attach = last(api, "/v1/threads/{thread_id}/data")
    assert attach["thread_id"] == "t-9" and attach["items"] == ["docs:a.csv", "docs:2024/*.csv"]
    api.call("POST", "/v1/data-sources/docs/fetch", key="read", json={"glob": "many/*.csv", "workspace": "w1"},
             expect=202)
    fetch = last(api, "/v1/data-sources/{source_id}/fetch")
    names = sorted(f"many/f{i:02}.csv" for i in range(25))
    assert fetch["workspace"] == "w1" and fetch["item_count"] == 25 and "items" not in fetch
    assert fetch["items_sha256"] == hashlib.sha256("\n".join(names).encode()).hexdigest()


def test_a_change_is_refused_when_the_audit_log_cannot_be_written(api: Api, data_root: Path) -> None:
    api.settings.audit_log.mkdir(parents=True)  # not a file: every append fails
    detail = api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=503).json()["detail"]
    assert "audit" in detail and "nothing was done" in detail
    assert api.call("GET", "/v1/data-sources", expect=200).json()["data"] == []  # reads still answer


def test_a_change_whose_line_fails_after_it_ran_answers_500(api: Api, data_root: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    state = api.client.app.state.da_sources  # type: ignore[attr-defined]

    def fail(**fields: Any) -> None:
        raise AuditWriteError("audit log not written: OSError")

    monkeypatch.setattr(state.audit, "record", fail)
    detail = api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=500).json()["detail"]
    assert "audit line could not be written" in detail
