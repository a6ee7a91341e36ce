"""The OpenAPI schema, checked by property-based runs (schemathesis), and the authorization matrix.

Over every operation of the schema, with random valid and invalid inputs and a
manage key: no 500, every status and body as the schema says. Then every
route: 401 without a key (or with a wrong one), 403 with a read-only key where
it changes something; never a body that says more than that.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks

from connectors.api import create_app
from connectors.api.api_keys import KeyStore
from tests.api.conftest import make_settings

_ROOT = Path(tempfile.mkdtemp(prefix="da-api-schema-"))
(_ROOT / "data" / "2024").mkdir(parents=True)
(_ROOT / "data" / "a.csv").write_text("x,y\n1,2\n")
(_ROOT / "data" / "2024" / "b.csv").write_text("q\n1\n")
_SETTINGS = make_settings(_ROOT)
_SETTINGS.sources_file.write_text(f"sources:\n- id: docs\n  type: local_file\n  name: Docs\n"
                                  f"  config: {{root: {_ROOT / 'data'}}}\n")
_MANAGE = KeyStore(_SETTINGS.keys_file).create("admin")[1]
_READ = KeyStore(_SETTINGS.keys_file).create("reader", read_only=True)[1]
APP = create_app(_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.fixture(autouse=True)
def _store(monkeypatch: pytest.MonkeyPatch) -> None:
    # write-only secrets the fuzzer sends land in a store of this module's own
    from connectors.secrets.store import FernetFileStore

    monkeypatch.setenv("DA_SECRETS_FILE", str(_ROOT / "secrets.fernet"))
    monkeypatch.setenv("DA_SECRETS_KEY", _KEY)
    monkeypatch.setenv("DA_SECRETS_BACKEND", "file")
    assert FernetFileStore


_KEY = __import__("connectors.secrets.store", fromlist=["FernetFileStore"]).FernetFileStore.generate_key()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_schema(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {_MANAGE}"}, checks=CHECKS, excluded_checks=[
        checks.positive_data_acceptance, checks.negative_data_rejection, checks.ignored_auth,
        checks.use_after_free, checks.ensure_resource_availability, checks.missing_required_header,
        checks.unsupported_method])


def _operations() -> list[tuple[str, str]]:
    spec = APP.openapi()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item if path != "/health"]


def _url(path: str) -> str:
    return path.replace("{source_id}", "docs").replace("{job_id}", "job_x") + (
        "?item=a.csv&path=docs/a.csv" if "{" not in path else "")


@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_route_needs_a_key(method: str, path: str) -> None:
    with TestClient(APP) as client:
        for headers in ({}, {"Authorization": "Bearer dsk_wrong"}, {"Authorization": f"Basic {_MANAGE}"}):
            response = client.request(method, _url(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert set(response.json()) == {"detail"}


CHANGES = {("POST", "/v1/data-sources"), ("PATCH", "/v1/data-sources/{source_id}"),
           ("DELETE", "/v1/data-sources/{source_id}")}


@pytest.mark.parametrize(("method", "path"), sorted(CHANGES))
def test_routes_that_change_sources_refuse_a_read_only_key(method: str, path: str) -> None:
    with TestClient(APP) as client:
        response = client.request(method, _url(path), headers={"Authorization": f"Bearer {_READ}"},
                                  json={"id": "new", "type": "local_file", "name": "n", "config": {"root": "/"}})
        assert response.status_code == 403, response.text
        assert "read-only" in response.json()["detail"]
        assert client.get("/v1/data-sources/docs", headers={"Authorization": f"Bearer {_READ}"}).status_code == 200


def test_the_schema_has_examples_and_the_bearer_scheme() -> None:
    spec = APP.openapi()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    bodies = spec["components"]["schemas"]
    for name in ("SourceCreate", "DataSource", "Job", "FetchRequest", "EntryList", "TableSchema", "Preview"):
        assert bodies[name].get("examples"), name
    assert "security" not in spec["paths"]["/health"]["get"]
