"""deploy/'s files are valid for the tools that read them, and safe by default (docs/RELIABILITY.md
row 37). The ones installable here are run for real in the other deployment tests; these checks are the
fast, static part."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from tests.harness import REPO

DEPLOY = REPO / "deploy"


def test_the_instance_config_is_valid_for_dagster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "da/source", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert config["run_launcher"] == {"module": "da_pipelines.deploy", "class": "MonitoredRunLauncher"}
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]


def test_compose_runs_three_processes_on_one_image_with_the_workspace_volume() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "code-server", "webserver", "daemon"}
    for name in ("code-server", "webserver", "daemon"):
        assert "workspace:/workspace" in services[name]["volumes"]
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        # the tables exist before any of the three starts: creating them at once races
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["dagster", "instance", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert (REPO / services["code-server"]["build"]["dockerfile"]).exists()
    assert "workspace" in compose["volumes"]


def test_helm_values_use_external_postgres_k8s_launcher_and_a_shared_volume() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["volumes"][0]["persistentVolumeClaim"]["claimName"] == "da-sources-workspace"
    pvc = yaml.safe_load((DEPLOY / "helm" / "workspace-pvc.yaml").read_text())
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_compose_publishes_the_dagster_ui_on_loopback_only() -> None:
    # the webserver has no authentication of its own: never on all interfaces
    services = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]


def test_the_image_runs_as_a_non_root_user() -> None:
    lines = [line.split() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    users = [words[1] for words in lines if words and words[0] == "USER"]
    assert users, "no USER instruction: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    instructions = [words[0] for words in lines if words and not words[0].startswith("#")]
    # nothing after the last USER switches back (a later RUN would still be that user)
    assert "USER" == [i for i in instructions if i == "USER" or i == "FROM"][-1]


def test_helm_values_run_sharded_steps_with_the_k8s_job_executor_from_the_image() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert {"name": "DA_SHARD_EXECUTOR", "value": "k8s"} in deployment["env"]
    assert "DA_SHARD_EXECUTOR=k8s" in values["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
    assert "'.[deploy,k8s]'" in (DEPLOY / "Dockerfile").read_text()  # dagster-k8s is in the image
