"""A stand-in of DeepAnalyze's API server (ruc-datalab/DeepAnalyze, ``API/``), standard library only.

Run as its own process and OS user, with DeepAnalyze's runtime: no da-sources, only the thin client
(``da_sources_client``) on the path. What it keeps of the real server, from its code (``utils.py``,
``chat_api.py``) and ../shared/DEEPANALYZE.md:

- thread folders ``<workspace>/<thread_id>/`` with ``generated/``, created on demand; a new thread is
  ``thread-`` and 24 hex digits, an unknown ``thread_id`` is a 400;
- the prompt: the last user message becomes ``# Instruction`` then ``# Data`` listing the folder's
  top-level files (``collect_file_info``: ``File N:`` and a JSON ``{"name", "size"}``);
- the tracker (``WorkspaceTracker``): a snapshot of every file under the folder, recursively, taken
  after the prompt is built; after each code run the files new or changed since are reported as
  generated and copied into ``generated/``;
- the model's code (``<Code>...</Code>``) runs with ``os.environ.copy()`` of the server, as its user,
  in the thread's folder, with the server's interpreter;
- the glue of this project (``da_sources_client.deepanalyze.prepare_turn``) where the documented patch
  puts it: after the thread's folder is known, before the prompt is built.

The model is an HTTP server at ``$MODEL_URL`` taking ``{"messages": [...]}`` and answering
``{"content": "..."}``. The chat answer adds what a test needs: ``generated`` (the tracker's reports,
relative to the thread's folder) and ``executions`` (each code run's output).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from da_sources_client.deepanalyze import DataSourcesError, prepare_turn

WORKSPACE_BASE_DIR = os.environ["STANDIN_WORKSPACE"]
MODEL_URL = os.environ["MODEL_URL"]
THREADS: set[str] = set()


def collect_file_info(directory: str) -> str:
    """DeepAnalyze's ``collect_file_info``: the folder's top-level files, numbered, name and size."""
    text = ""
    files = sorted(f for f in Path(directory).iterdir() if f.is_file())
    for index, path in enumerate(files, start=1):
        info = {"name": path.name, "size": f"{os.path.getsize(path) / 1024:.1f}KB"}
        text += f"File {index}:\n{json.dumps(info, indent=4, ensure_ascii=False)}\n\n"
    return text


def prepare_vllm_messages(messages: list[dict[str, Any]], workspace_dir: str) -> list[dict[str, str]]:
    """DeepAnalyze's ``prepare_vllm_messages``: ``# Instruction`` and ``# Data`` in the last user message."""
    result = [{"role": m["role"], "content": str(m.get("content") or "")} for m in messages if m.get("role")]
    users = [i for i, m in enumerate(result) if m["role"] == "user"]
    info = collect_file_info(workspace_dir)
    if users:
        body = result[users[-1]]["content"].strip() or "# Instruction"
        result[users[-1]]["content"] = f"# Instruction\n{body}" + (f"\n\n# Data\n{info}" if info else "")
    return result


class WorkspaceTracker:
    """DeepAnalyze's tracker: files new or changed since the last snapshot, anywhere under the folder."""

    def __init__(self, workspace_dir: str, generated_dir: str) -> None:
        self.workspace_dir = Path(workspace_dir).resolve()
        self.generated_dir = Path(generated_dir).resolve()
        self.before = self._snapshot()

    def _snapshot(self) -> dict[Path, tuple[int, int]]:
        return {p.resolve(): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in self.workspace_dir.rglob("*") if p.is_file()}

    def diff_and_collect(self) -> list[str]:
        after = self._snapshot()
        changed = [p for p, facts in after.items() if self.before.get(p) != facts]
        for path in changed:
            if not str(path).startswith(str(self.generated_dir)):
                shutil.copy2(path, self.generated_dir / path.name)
        self.before = self._snapshot()
        return sorted(str(p.relative_to(self.workspace_dir)) for p in changed)


def execute_code(code: str, workspace_dir: str) -> str:
    """DeepAnalyze's ``execute_code_safe``: a temporary script in the thread's folder, the server's environment."""
    cwd = os.path.abspath(workspace_dir)
    fd, script = tempfile.mkstemp(suffix=".py", dir=cwd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(code)
        env = os.environ.copy()
        env.setdefault("MPLBACKEND", "Agg")
        done = subprocess.run([sys.executable, script], cwd=cwd, capture_output=True, text=True,  # noqa: S603
                              timeout=120, env=env, check=False)
        return (done.stdout or "") + (done.stderr or "")
    finally:
        os.remove(script)


def ask_model(messages: list[dict[str, str]]) -> str:
    request = Request(MODEL_URL, data=json.dumps({"messages": messages}).encode(), method="POST",  # noqa: S310
                      headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=60) as response:  # noqa: S310 (the test's loopback model)
        return str(json.loads(response.read())["content"])


def chat(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``POST /v1/chat/completions`` as DeepAnalyze's non-streaming path runs it."""
    messages: list[dict[str, Any]] = body["messages"]
    thread_id = messages[-1].get("thread_id") if messages else None
    if thread_id and thread_id not in THREADS:
        return 400, {"detail": f"Thread {thread_id} not found"}
    thread_id = thread_id or f"thread-{uuid.uuid4().hex[:24]}"
    THREADS.add(thread_id)
    workspace_dir = os.path.join(WORKSPACE_BASE_DIR, thread_id)
    generated_dir = os.path.join(workspace_dir, "generated")
    os.makedirs(generated_dir, exist_ok=True)
    try:  # the glue, as docs/deepanalyze.md's patch places it
        messages = asyncio.run(prepare_turn(thread_id, messages, body.get("data")))
    except DataSourcesError as exc:
        return exc.http_status, {"detail": str(exc), "thread_id": thread_id}
    vllm_messages = prepare_vllm_messages(messages, workspace_dir)
    tracker = WorkspaceTracker(workspace_dir, generated_dir)
    generated: list[str] = []
    executions: list[str] = []
    reply = ""
    while True:
        segment = ask_model(vllm_messages)
        reply += segment
        code = re.search(r"<Code>(.*?)</Code>", segment, re.DOTALL)
        if "</Answer>" in segment or code is None:
            break
        vllm_messages.append({"role": "assistant", "content": segment})
        output = execute_code(code.group(1).strip(), workspace_dir)
        executions.append(output)
        generated.extend(tracker.diff_and_collect())
        vllm_messages.append({"role": "execute", "content": output})
    return 200, {"thread_id": thread_id, "content": reply, "generated": generated, "executions": executions}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(200, {"status": "healthy", "pid": os.getpid()})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._answer(*chat(body))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
