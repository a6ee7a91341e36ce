"""The documented patch (docs/deepanalyze/chat_api.patch) applies to DeepAnalyze's chat route as published.

``upstream_chat_api.py.txt`` is ``API/chat_api.py`` of ruc-datalab/DeepAnalyze at commit
0b54741848df5c157303eb82f80a8dca1afb438f (MIT licence), kept verbatim to check the patch against.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from tests.harness import REPO

PATCH = REPO / "docs" / "deepanalyze" / "chat_api.patch"


def _patched(tmp_path: Path) -> str:
    (tmp_path / "API").mkdir()
    (tmp_path / "API" / "chat_api.py").write_text((Path(__file__).parent / "upstream_chat_api.py.txt").read_text())
    subprocess.run(["git", "apply", "--unsafe-paths", str(PATCH)], cwd=tmp_path, check=True)
    return (tmp_path / "API" / "chat_api.py").read_text()


def test_the_patch_applies_and_attaches_before_the_prompt_and_the_tracker(tmp_path: Path) -> None:
    source = _patched(tmp_path)
    ast.parse(source)
    route = source[source.index("async def chat_completions"):]
    attach = route.index("await prepare_turn(current_thread_id, messages, data)")
    assert route.index("current_thread_id = temp_thread.id") < attach < route.index("prepare_vllm_messages(")
    assert attach < route.index("WorkspaceTracker(")
    assert "data: Optional[List[Dict[str, Any]]] = Body(None)" in route


def test_the_stand_in_calls_the_glue_as_the_patch_does() -> None:
    standin = (Path(__file__).parent / "standin.py").read_text()
    assert "prepare_turn(thread_id, messages, body.get(\"data\"))" in standin
    chat = standin[standin.index("def chat("):]
    assert chat.index("prepare_turn(") < chat.index("= prepare_vllm_messages(") < chat.index("= WorkspaceTracker(")
