"""deploy/deepanalyze: da-sources in its own container and user beside DeepAnalyze, sharing only the workspace."""

from __future__ import annotations

from typing import Any

import yaml

from tests.harness import REPO

FOLDER = REPO / "deploy" / "deepanalyze"


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load((FOLDER / "docker-compose.yaml").read_text())["services"])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return dict(volume.split(":")[:2] for volume in service.get("volumes", []))


def test_only_the_sidecar_holds_the_state_and_the_secrets_key() -> None:
    services = _services()
    sidecar, deepanalyze = services["da-sources"], services["deepanalyze"]
    assert "state" in _mounts(sidecar) and "state" not in _mounts(deepanalyze)
    assert "DA_SECRETS_KEY" in sidecar["environment"]
    assert not [name for name in deepanalyze["environment"] if name.startswith("DA_SECRETS")]
    assert sidecar["user"].split(":")[0] != deepanalyze["user"].split(":")[0] != "0"
    assert "ports" not in sidecar  # reachable on the compose network only


def test_the_workspace_is_shared_through_a_setgid_group_folder() -> None:
    services = _services()
    assert services["da-sources"]["group_add"] == services["deepanalyze"]["group_add"] == ["2000"]
    assert "chmod 2770 /workspace" in " ".join(services["workspace-init"]["command"])
    assert "umask 007" in " ".join(services["deepanalyze"]["command"])
    assert _mounts(services["deepanalyze"])["workspace"] == "/app/API/workspace"  # DeepAnalyze's workspace folder


def test_the_sidecar_image_installs_the_api_without_dagster() -> None:
    dockerfile = (FOLDER / "Dockerfile").read_text()
    [install] = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert "'.[api]'" in install and "dagster" not in install and "deploy" not in install
    assert "USER dasources" in dockerfile
