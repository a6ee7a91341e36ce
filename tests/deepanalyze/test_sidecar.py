"""DeepAnalyze (a stand-in, its own OS user) with da-sources beside it (another user), glued by the thin client.

The request's data reaches the model's prompt with its manifest; DeepAnalyze's tracker never reports
a file of ours as generated; the model's code, run as DeepAnalyze runs it, finds no secret in its
environment and can read neither da-sources' state (sources file, keys, credential store, its key in
the service's environment) nor DeepAnalyze's own key, and with its thread token it may attach more
data to its own thread only (docs/RELIABILITY.md rows 33 and 42).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import urllib.request
from typing import Any

import pytest

from tests.deepanalyze.conftest import DEEPANALYZE_USER, SERVICE_USER, SHARED_GROUP, Sidecar

pytestmark = pytest.mark.root  # two OS users, created when absent

PROBE = '''
import json, os
from da_sources_client import DataSourcesError, ThreadClient

def read(path):
    try:
        with open(path, "rb") as file:
            return "READ " + file.read(300).decode("latin-1")
    except OSError as exc:
        return "DENIED " + type(exc).__name__

report = {"env": dict(os.environ), "reads": {name: read(path) for name, path in PATHS.items()}}
report["reads"]["deepanalyze environ"] = read(f"/proc/{os.getppid()}/environ")
report["reads"]["deepanalyze memory"] = read(f"/proc/{os.getppid()}/mem")
report["attached"] = read("a.csv")
client = ThreadClient.from_workspace()
report["own thread"] = client.attach([{"source_id": "docs", "path": "b.csv"}]).manifest
token = client._http._credential
for name, thread, source in (("other thread", "thread-other", "docs"), ("other source", client.thread_id, "other")):
    try:
        ThreadClient(client._http.base_url, token, thread).attach([{"source_id": source, "path": "a.csv"}])
        report[name] = "ALLOWED"
    except DataSourcesError as exc:
        report[name] = exc.status
with open("result.csv", "w") as file:
    file.write("total\\n7\\n")
print("REPORT" + json.dumps(report))
'''


def _chat(sidecar: Sidecar, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{sidecar.standin_url}/v1/chat/completions", method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return dict(json.loads(response.read()))
    except OSError as exc:
        raise AssertionError(f"the stand-in failed: {exc}\n{sidecar.logs()}") from exc


def _probe_code(sidecar: Sidecar) -> str:
    assert sidecar.service is not None
    paths = {name: str(path) for name, path in sidecar.protected.items()}
    paths["service environ"] = f"/proc/{sidecar.service.pid}/environ"
    paths["service memory"] = f"/proc/{sidecar.service.pid}/mem"
    return f"PATHS = {paths!r}\n" + PROBE


def _turn(sidecar: Sidecar) -> tuple[dict[str, Any], dict[str, Any]]:
    sidecar.model.replies = [f"<Code>\n{_probe_code(sidecar)}\n</Code>", "<Answer>done</Answer>"]
    answer = _chat(sidecar, {"model": "DeepAnalyze-8B", "messages": [
        {"role": "user", "content": "Which region sold most?"}], "data": [{"source_id": "docs", "path": "a.csv"}]})
    output = answer["executions"][0]
    found = re.search(r"^REPORT(.*)$", output, re.MULTILINE)
    assert found, output
    return answer, json.loads(found.group(1))


def test_the_manifest_and_the_attached_file_reach_the_prompt(sidecar: Sidecar) -> None:
    answer, _ = _turn(sidecar)
    prompt = sidecar.model.prompts[0][-1]["content"]
    instruction, data = prompt.split("\n# Data\n")
    assert instruction.startswith("# Instruction\nWhich region sold most?")
    assert "- a.csv: a.csv from source docs" in instruction  # the manifest, in the user's message
    assert '"name": "a.csv"' in data  # DeepAnalyze's own listing of the thread's top level
    assert answer["thread_id"].startswith("thread-")


def test_no_file_of_ours_is_reported_as_generated(sidecar: Sidecar) -> None:
    answer, _ = _turn(sidecar)
    # the agent's own result, and b.csv which its code attached mid-turn (documented: the tracker sees it new)
    assert sorted(answer["generated"]) == ["b.csv", "result.csv"], answer["generated"]


def test_the_agents_code_finds_no_secret_and_reads_none_of_ours(sidecar: Sidecar) -> None:
    answer, report = _turn(sidecar)
    everything = json.dumps(answer) + json.dumps(sidecar.model.prompts)
    for secret in (sidecar.secret, sidecar.secrets_key, sidecar.api_key):
        assert secret not in everything
    assert not {"DA_SECRETS_KEY", "DA_SECRETS_FILE", "DA_SOURCES_API_KEY"} & set(report["env"])
    denied = {name: text for name, text in report["reads"].items() if not text.startswith("DENIED")}
    assert denied == {}
    assert report["attached"].startswith("READ region,total")  # the data it was given, it reads


def test_the_agents_token_attaches_to_its_own_thread_only(sidecar: Sidecar) -> None:
    _, report = _turn(sidecar)
    assert "- b.csv: b.csv from source docs" in report["own thread"]
    assert report["other thread"] == 403 and report["other source"] == 403


def test_attached_files_are_for_the_shared_group_not_the_world(sidecar: Sidecar) -> None:
    answer, _ = _turn(sidecar)
    info = os.stat(sidecar.workspace / answer["thread_id"] / "a.csv")
    assert pwd.getpwuid(info.st_uid).pw_name == SERVICE_USER
    assert grp.getgrgid(info.st_gid).gr_name == SHARED_GROUP
    assert info.st_mode & 0o007 == 0 and info.st_mode & 0o040  # group-readable, nothing for others
    assert DEEPANALYZE_USER in grp.getgrnam(SHARED_GROUP).gr_mem
