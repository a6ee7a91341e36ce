"""da-sources beside a stand-in of DeepAnalyze, each as its own OS user, sharing only the workspace.

Users (made with ``useradd`` when absent; the tests run as root): ``dasources`` runs ``da-sources
serve`` and alone owns the state folder (sources file, API keys, credential store) and the company
data; ``deepanalyze`` runs the stand-in (tests/deepanalyze/standin.py) with the system Python and
only ``clients/python`` on its path. Both are in ``dashared``, the group of the workspace folder
(mode 2770: setgid, so everything made inside belongs to that group). The model is a fake
OpenAI-like server in the test process that records every prompt and answers from a script.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.api.api_keys import KeyStore
from connectors.registry import SourceRegistry
from connectors.secrets.store import FernetFileStore
from tests.harness import REPO, free_port, stop_process_group, wait_for_port

SERVICE_USER, DEEPANALYZE_USER, SHARED_GROUP = "dasources", "deepanalyze", "dashared"
# the system's interpreter: the test venv's links into /root, which other users cannot enter
SYSTEM_PYTHON = "/usr/bin/python3"
SITE_PACKAGES = REPO / ".venv" / "lib" / "python3.11" / "site-packages"
# `da-sources serve` with the test venv's packages (editable: this worktree's connectors)
SERVE = ("import site, sys; site.addsitedir(sys.argv.pop(1)); from connectors.cli import main; "
         "sys.exit(main(sys.argv[1:]))")


def ensure_accounts() -> None:
    """The two users and their shared group (created when absent; another test run may race us)."""
    if os.geteuid() != 0:
        raise RuntimeError("these tests run two OS users: run them as root")
    if not _exists(grp.getgrnam, SHARED_GROUP):
        subprocess.run(["groupadd", "--system", SHARED_GROUP], check=False)
    for user in (SERVICE_USER, DEEPANALYZE_USER):
        if not _exists(pwd.getpwnam, user):
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", user], check=False)
        if user not in grp.getgrnam(SHARED_GROUP).gr_mem:
            subprocess.run(["usermod", "-aG", SHARED_GROUP, user], check=True)


def _exists(lookup: Any, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


@dataclass
class FakeModel:
    """An OpenAI-like model: answers each call with the next scripted reply; records every prompt."""

    replies: list[str] = field(default_factory=list)
    prompts: list[list[dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def start(self) -> ThreadingHTTPServer:
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model.prompts.append(body["messages"])
                reply = model.replies.pop(0) if model.replies else "<Answer>done</Answer>"
                data = json.dumps({"content": reply}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class Sidecar:
    """The deployment: folders, secrets, the two processes and the model."""

    root: Path
    state: Path
    data: Path
    workspace: Path
    secret: str
    secrets_key: str
    api_key: str
    model: FakeModel
    service: subprocess.Popen[bytes] | None = None
    standin: subprocess.Popen[bytes] | None = None
    standin_url: str = ""

    def logs(self) -> str:
        """The two services' output, for a failing test's message."""
        return "".join(f"--- {name}\n{(self.root / name).read_text(errors='replace')[-4000:]}\n"
                       for name in ("service.log", "standin.log") if (self.root / name).exists())

    @property
    def protected(self) -> dict[str, Path]:
        """What DeepAnalyze's side must never read."""
        return {"sources file": self.state / "sources.yaml", "keys file": self.state / "api-keys.json",
                "credential store": self.state / "secrets.fernet", "company data": self.data / "a.csv"}


def _prepare(root: Path, secret: str) -> Sidecar:
    state, data, workspace = root / "state", root / "data", root / "workspace"
    for folder in (state, data, workspace):
        folder.mkdir()
    (data / "a.csv").write_text("region,total\nnorth,3\nsouth,4\n")
    (data / "b.csv").write_text("id\n1\n")
    key = FernetFileStore.generate_key()
    FernetFileStore(state / "secrets.fernet", key).set("warehouse.password", secret)
    registry = SourceRegistry(state / "sources.yaml")
    for source_id in ("docs", "other"):
        registry.add({"id": source_id, "type": "local_file", "name": source_id, "config": {"root": str(data)}})
    registry.add({"id": "warehouse", "type": "postgresql", "name": "Warehouse", "config": {
        "host": "127.0.0.1", "port": free_port(), "dbname": "w", "user": "w",
        "password": {"secret": "warehouse.password"}}})
    _, api_key = KeyStore(state / "api-keys.json").create("deepanalyze", read_only=True, can_mint=True)
    # the operator's policy: the company data folder and the loopback warehouse (closed by default)
    (state / "api-policy.yaml").write_text(f"local_roots: [{str(data)!r}]\nhosts: [127.0.0.1]\nports: any\n")
    for path in (state, data, *state.iterdir(), *data.iterdir()):
        shutil.chown(path, SERVICE_USER, SERVICE_USER)
    state.chmod(0o700)
    data.chmod(0o700)
    shutil.chown(workspace, DEEPANALYZE_USER, SHARED_GROUP)
    workspace.chmod(0o2770)
    return Sidecar(root, state, data, workspace, secret, key, api_key, FakeModel())


def _start_service(sidecar: Sidecar) -> int:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(sidecar.state), "DA_SOURCES_FILE": str(sidecar.state / "sources.yaml"),
           "DA_SECRETS_FILE": str(sidecar.state / "secrets.fernet"), "DA_SECRETS_KEY": sidecar.secrets_key,
           "DA_SECRETS_BACKEND": "file", "DA_WORKSPACE": str(sidecar.workspace), "PYTHONDONTWRITEBYTECODE": "1"}
    log = open(sidecar.root / "service.log", "wb")  # noqa: SIM115 (kept open by the process)
    sidecar.service = subprocess.Popen(
        [SYSTEM_PYTHON, "-I", "-c", SERVE, str(SITE_PACKAGES), "serve", "--port", str(port)],
        cwd=sidecar.state, env=env, user=SERVICE_USER, group=SERVICE_USER, extra_groups=[SHARED_GROUP],
        stdout=log, stderr=log, start_new_session=True)
    wait_for_port(port, sidecar.service, 60, "da-sources serve")
    return port


def _start_standin(sidecar: Sidecar, service_port: int) -> None:
    port = free_port()
    home = sidecar.root / "home-deepanalyze"  # the thread tokens go to ~/.da-sources/thread-tokens
    home.mkdir()
    shutil.chown(home, DEEPANALYZE_USER, DEEPANALYZE_USER)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO / "clients" / "python"),
           "PYTHONDONTWRITEBYTECODE": "1", "STANDIN_WORKSPACE": str(sidecar.workspace), "MODEL_URL": sidecar.model.url,
           "DA_SOURCES_URL": f"http://127.0.0.1:{service_port}", "DA_SOURCES_API_KEY": sidecar.api_key,
           "DA_SOURCES_AGENT_SOURCES": "docs"}
    log = open(sidecar.root / "standin.log", "wb")  # noqa: SIM115
    sidecar.standin = subprocess.Popen(
        [SYSTEM_PYTHON, "-P", str(Path(__file__).with_name("standin.py")), str(port)], cwd=sidecar.root, env=env,
        user=DEEPANALYZE_USER, group=DEEPANALYZE_USER, extra_groups=[SHARED_GROUP], umask=0o007,
        stdout=log, stderr=log, start_new_session=True)
    wait_for_port(port, sidecar.standin, 30, "the DeepAnalyze stand-in")
    sidecar.standin_url = f"http://127.0.0.1:{port}"


@pytest.fixture
def sidecar(canary: str) -> Iterator[Sidecar]:
    ensure_accounts()
    root = Path(tempfile.mkdtemp(prefix="da-sidecar-"))  # under /tmp, not pytest's root-only folder
    root.chmod(0o755)
    sidecar = _prepare(root, canary)
    model_server = sidecar.model.start()
    try:
        _start_standin(sidecar, _start_service(sidecar))
        yield sidecar
    finally:
        for process in (sidecar.standin, sidecar.service):
            if process is not None:
                stop_process_group(process)
        model_server.shutdown()
        shutil.rmtree(root, ignore_errors=True)
