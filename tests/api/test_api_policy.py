"""The operator's policy holds against a manage key: what the API may create, reference and reach.

Each test replays an attack (a manage key reading the server's secrets and files, or aiming
the server at a host of its choice) and checks it is refused before anything is stored or connected.

Row 30 of docs/RELIABILITY.md (the fault matrix).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from connectors.api.policy import ApiPolicy
from connectors.plugins import register_connector, unregister_connector
from connectors.secrets.store import default_store
from connectors.testing import MemoryConnector
from tests.api.conftest import Api, local_source, open_policy, start_api

KEY = base64.b64encode(b"k" * 64).decode()


def pg(source_id: str = "pg", **config: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "postgresql", "name": "pg",
            "config": {"host": "127.0.0.1", "dbname": "d", "user": "u", **config}}


def azure(source_id: str = "az", **config: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "azure_blob", "name": "az", "config": {"container_name": "c", **config}}


def refused(api: Api, body: dict[str, Any], field: str) -> None:
    detail = api.call("POST", "/v1/data-sources", json=body, expect=403).json()["detail"]
    assert field in detail, detail


def test_the_default_policy_allows_no_root_no_host_and_no_plugin(tmp_path: Path, secret_store_env: Path,
                                                                 data_root: Path) -> None:
    for api in start_api(tmp_path, policy=ApiPolicy()):
        refused(api, local_source(data_root), "config.root")
        refused(api, pg(password="pw"), "config.host")
        refused(api, azure(connection_string=f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY}"),
                "config.account_url")
        refused(api, azure(account_url="http://127.0.0.1:10000/devstoreaccount1"), "config.account_url")
        register_connector("policy-mem", MemoryConnector, replace=True)
        try:
            refused(api, {"id": "m", "type": "policy-mem", "name": "m", "config": {"store": "x"}}, "type")
        finally:
            unregister_connector("policy-mem")
        assert api.call("GET", "/v1/data-sources", expect=200).json()["data"] == []


def test_references_to_the_environment_or_another_source_are_refused_and_never_echoed(
        api: Api, data_root: Path, canary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_CANARY", canary)
    api.call("POST", "/v1/data-sources", json=pg("victim", password=canary), expect=201)
    assert default_store().get("victim.password") == canary
    for root in ({"env": "DA_CANARY"}, {"env": "DA_SECRETS_KEY"}, {"secret": "victim.password"}):
        refused(api, {**local_source(data_root), "config": {"root": root}}, "config.root")  # the issue's first attack
    refused(api, pg(user={"env": "DA_CANARY"}, password="pw"), "config.user")
    refused(api, pg(password={"secret": "victim.password"}), "config.password")
    refused(api, pg("thief", password={"secret": "thief.password"}), "config.password")  # not its own yet
    refused(api, pg(password={"env": "DA_CANARY"}), "config.password")
    refused(api, azure(container_name={"env": "DA_CANARY"}, account_url="http://127.0.0.1:1/a"), "config.container")
    refused(api, azure(account_url="http://127.0.0.1:1/a", sas_token={"env": "DA_CANARY"}), "config.sas_token")
    refused(api, azure(connection_string={"env": "DA_CANARY"}), "config.connection_string")
    api.assert_nowhere(canary)


def test_roots_outside_the_listed_folders_or_around_the_servers_files_are_refused(
        api: Api, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "etc-link").symlink_to("/etc")
    (tmp_path / "keys-link").symlink_to(tmp_path)
    for root in ("/etc", "/", str(tmp_path), str(tmp_path / "etc-link"), str(tmp_path / "keys-link"),
                 str(api.settings.workspace_base), str(api.settings.workspace_base / "t1"),
                 str(tmp_path / "dagster" / "storage"), str(Path(os.environ["DA_SECRETS_FILE"])), "data", "../etc"):
        refused(api, local_source(Path(root)) if root.startswith("/") else
                {**local_source(data_root), "config": {"root": root}}, "config.root")
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)


def test_a_root_swapped_for_a_link_after_creation_is_refused_when_used(api: Api, tmp_path: Path,
                                                                      data_root: Path) -> None:
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    api.call("GET", "/v1/data-sources/docs/browse", key="read", expect=200)  # its connector pooled, connected
    data_root.rename(tmp_path / "moved")
    data_root.symlink_to(tmp_path)  # now the root would hold the keys file and the credential store
    api.client.app.state.da_sources.cache.invalidate("docs")  # type: ignore[attr-defined]
    assert api.call("GET", "/v1/data-sources/docs/browse", key="read").status_code in (403, 404)
    result = api.call("POST", "/v1/data-sources/docs/test", key="read", expect=200).json()
    assert not result["ok"] and "config.root" in result["error"]
    refs = [{"source_id": "docs", "path": "api-keys.json"}]
    answer = api.call("POST", "/v1/threads/t1/data", key="read", json={"references": refs})
    assert answer.status_code in (403, 404), answer.text
    assert not (api.settings.workspace_base / "t1" / "api-keys.json").exists()


@pytest.mark.parametrize(("config", "field"), [
    ({"host": "/var/run/postgresql", "user": "postgres"}, "config.host"),
    ({"host": "@abstract"}, "config.host"),
    ({"host": "127.0.0.1,/tmp"}, "config.host"),
    ({"host": None, "dsn": "dbname=postgres user=postgres"}, "config.host"),  # no host: libpq's socket
    ({"host": None, "dsn": "host=/tmp dbname=postgres"}, "config.host"),
    ({"host": None, "dsn": "host=127.0.0.1 dbname=d passfile=/root/.pgpass"}, "passfile"),
    ({"host": None, "dsn": "postgresql://u@127.0.0.1/d?sslkey=/etc/ssl/private/k&sslcert=/c"}, "sslkey"),
    ({"host": None, "dsn": "service=prod"}, "service"),
    ({"host": None, "dsn": "host=127.0.0.1 sslrootcert=/x sslcrl=/y"}, "sslcrl"),
    ({"host": None, "dsn": "host=127.0.0.1 hostaddr=10.0.0.1"}, "hostaddr"),
    ({"host": None, "dsn": "host=127.0.0.1 require_auth=password"}, "require_auth"),
    ({"allow_privileged_queries": True}, "config.allow_privileged_queries"),
    ({"pool_max_size": 500}, "config.pool_max_size"),
])
def test_postgresql_sockets_file_options_and_operator_knobs_are_refused(api: Api, config: dict[str, Any],
                                                                        field: str) -> None:
    body = pg(password="pw", **config)
    body["config"] = {k: v for k, v in body["config"].items() if v is not None}
    refused(api, body, field)


def test_operator_knobs_of_azure_and_metadata_are_refused(api: Api, data_root: Path) -> None:
    refused(api, azure(account_url="https://127.0.0.1/a", credential="default"), "config.credential")
    refused(api, {**local_source(data_root), "metadata": {"api": {"max_item_bytes": 1 << 40}}}, "metadata.api")
    api.call("POST", "/v1/data-sources", json=local_source(data_root), expect=201)
    api.call("PATCH", "/v1/data-sources/docs", json={"metadata": {"api": {"max_item_bytes": 1 << 40}}}, expect=403)
    api.call("PATCH", "/v1/data-sources/docs", json={"config": {"root": "/etc"}}, expect=403)


def test_hosts_ports_and_schemes_outside_the_allow_list_are_refused_before_connecting(
        tmp_path: Path, secret_store_env: Path) -> None:
    policy = ApiPolicy.from_mapping({"hosts": ["127.0.0.1", "*.blob.core.windows.net"], "ports": [5432, 443],
                                     "schemes": ["https", "postgresql"]})
    for api in start_api(tmp_path, policy=policy):
        details = {api.call("POST", "/v1/data-sources", json=pg(port=port, password="pw"), expect=403).text
                   for port in (22, 6379, 1)}  # open, closed or not: the same answer, nothing connected
        assert len(details) == 1 and "port" in details.pop()
        refused(api, pg(host="10.0.0.5", password="pw"), "config.host")
        refused(api, pg(host="169.254.169.254", password="pw"), "config.host")
        refused(api, pg(host="db.internal", password="pw"), "config.host")
        refused(api, azure(account_url="http://acct.blob.core.windows.net"), "config.account_url")  # scheme
        refused(api, azure(account_url="https://acct.blob.core.windows.net.evil.example"), "config.account_url")
        refused(api, azure(account_url="https://169.254.169.254/metadata"), "config.account_url")
        api.call("POST", "/v1/data-sources", json=azure(account_url="https://acct.blob.core.windows.net"),
                 expect=201)
        api.call("POST", "/v1/data-sources", json=pg(password="pw"), expect=201)


def test_the_number_of_sources_is_capped(tmp_path: Path, secret_store_env: Path, data_root: Path) -> None:
    policy = ApiPolicy.from_mapping({"local_roots": [str(data_root)], "max_sources": 2})
    for api in start_api(tmp_path, policy=policy):
        for source_id in ("a1", "a2"):
            api.call("POST", "/v1/data-sources", json=local_source(data_root, source_id), expect=201)
        assert "at most 2" in api.call("POST", "/v1/data-sources", json=local_source(data_root, "a3"),
                                       expect=403).json()["detail"]


def test_patch_keeps_the_policy_and_removing_a_secret_removes_it_from_the_store(api: Api, canary: str) -> None:
    api.call("POST", "/v1/data-sources", json=pg(password=canary), expect=201)
    store = default_store()
    assert store.get("pg.password") == canary
    for change in ({"allow_privileged_queries": True}, {"password": {"env": "DA_SECRETS_KEY"}},
                   {"password": {"secret": "other.password"}}, {"host": "/tmp"}, {"host": "10.1.1.1"},
                   {"user": {"secret": "pg.password"}}):
        api.call("PATCH", "/v1/data-sources/pg", json={"config": change}, expect=403)
    api.call("PATCH", "/v1/data-sources/pg", json={"config": {"password": {"secret": "pg.password"}}}, expect=200)
    assert store.get("pg.password") == canary  # its own reference, unchanged: allowed
    updated = api.call("PATCH", "/v1/data-sources/pg", json={"config": {"password": None}}, expect=200).json()
    assert "password" not in updated["config"]
    assert store.get("pg.password") is None
    api.assert_nowhere(canary)


def test_the_test_route_never_echoes_a_referenced_root(tmp_path: Path, secret_store_env: Path, canary: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_ROOT", str(tmp_path / "data" / canary))  # an operator's source, its root referenced
    for api in start_api(tmp_path, policy=open_policy(tmp_path)):
        api.operator_add({"id": "docs", "type": "local_file", "name": "d", "config": {"root": {"env": "DA_ROOT"}}})
        result = api.call("POST", "/v1/data-sources/docs/test", key="read", expect=200).json()
        assert not result["ok"] and "config.root" in result["error"]
        api.call("GET", "/v1/data-sources/docs/browse", key="read", expect=404)
        api.assert_nowhere(canary)


def test_a_source_holding_the_operators_references_is_not_changed_through_the_api(
        api: Api, canary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_PG_PASSWORD", canary)
    api.operator_add(pg("op", password={"env": "DA_PG_PASSWORD"}))  # a host change would send it elsewhere
    for change in ({"host": "127.0.0.2"}, {"port": 5433}, {"dbname": "other"}):
        detail = api.call("PATCH", "/v1/data-sources/op", json={"config": change}, expect=403).json()["detail"]
        assert "config.password" in detail
    assert api.call("GET", "/v1/data-sources/op", expect=200).json()["config"]["host"] == "127.0.0.1"
    api.call("PATCH", "/v1/data-sources/op", json={"name": "renamed", "metadata": {"team": "x"}}, expect=200)
    api.call("DELETE", "/v1/data-sources/op", expect=200)
    api.assert_nowhere(canary)


def s3(source_id: str = "lake", **config: Any) -> dict[str, Any]:
    return {"id": source_id, "type": "s3", "name": "lake",
            "config": {"bucket": "b", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "x", **config}}


def test_s3_endpoints_outside_the_allow_list_and_the_servers_aws_identity_are_refused(
        tmp_path: Path, secret_store_env: Path) -> None:
    policy = ApiPolicy.from_mapping({"hosts": ["*.amazonaws.com", "minio.example"], "ports": [443],
                                     "schemes": ["https"]})
    for api in start_api(tmp_path, policy=policy):
        refused(api, s3(endpoint_url="https://169.254.169.254"), "config.endpoint_url")
        refused(api, s3(endpoint_url="http://minio.example"), "config.endpoint_url")  # scheme and port
        refused(api, s3(endpoint_url="https://10.0.0.5"), "config.endpoint_url")
        refused(api, s3(endpoint_url="https://minio.example.evil.example"), "config.endpoint_url")
        keyless = {"id": "p", "type": "s3", "name": "p", "config": {"bucket": "b"}}
        refused(api, {**keyless, "config": {"bucket": "b", "profile": "prod"}}, "config.profile")
        refused(api, {**keyless, "config": {"bucket": "b", "credential": "default"}}, "config.credential")
        api.call("POST", "/v1/data-sources", json=s3(region="eu-west-1"), expect=201)  # AWS's own endpoint
        api.call("POST", "/v1/data-sources", json=s3("lake2", endpoint_url="https://minio.example"), expect=201)
