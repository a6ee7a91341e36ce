"""The glue for DeepAnalyze's chat route: attach a request's ``data`` before the prompt is built.

Importing this module (from DeepAnalyze's ``chat_api.py``) reads ``$DA_SOURCES_URL`` and
``$DA_SOURCES_API_KEY``, **removes the key from the environment** (DeepAnalyze runs the model's code
with a copy of it) and marks the process non-dumpable, so that code, run as the same OS user, can read
neither ``/proc/<pid>/environ`` nor the process's memory. The key never needs to be in a file.

The route then calls :func:`prepare_turn` after the thread's folder is known and before
``prepare_vllm_messages`` (and so before the turn's ``WorkspaceTracker`` snapshot):

    messages = await prepare_turn(current_thread_id, messages, data)

It attaches the references (all or nothing; a failure raises :class:`DataSourcesError` before the
model runs), appends the manifest to the last user message, and, when ``$DA_SOURCES_AGENT_SOURCES``
lists sources, leaves the agent a thread token (:func:`da_sources_client.token_path`: outside the
workspace, so DeepAnalyze's file server and tracker never see it) with which its code may attach more
from those sources to this thread, and nothing else.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from da_sources_client import TOKEN_DIR_VARIABLE, DataSourcesClient, DataSourcesError, token_path

__all__ = ["DataSourcesError", "add_manifest", "configure", "prepare_turn", "protect_process", "references_in"]

AGENT_SOURCES_VARIABLE = "DA_SOURCES_AGENT_SOURCES"  # comma-separated source ids the agent's code may attach
TOKEN_TTL_VARIABLE = "DA_SOURCES_TOKEN_TTL"  # noqa: S105 (a variable name) seconds
TOKEN_TTL_DEFAULT = 3600  # the server's registry declares it too (connectors.environment); a test compares them
PR_SET_DUMPABLE = 4

_client: DataSourcesClient | None = None


def protect_process() -> bool:
    """Make this process non-dumpable (Linux): same-user processes can no longer read its environ or memory.

    Children get a dumpable process back at ``exec``, so the model's code runs as before.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def configure(client: DataSourcesClient | None = None) -> DataSourcesClient | None:
    """Set the client the glue uses (default: from the environment, when ``$DA_SOURCES_URL`` is set)."""
    global _client
    if client is None and os.environ.get("DA_SOURCES_URL"):
        client = DataSourcesClient.from_env()
        # the model's code runs with a copy of this environment: there it finds its thread's token
        os.environ.setdefault(TOKEN_DIR_VARIABLE, os.path.dirname(token_path("t")))
    _client = client
    return client


def references_in(messages: Sequence[Any], data: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's references: its ``data`` field, then the last message's ``data`` (like its ``file_ids``)."""
    found = list(data or [])
    last = messages[-1] if messages else None
    if isinstance(last, dict) and isinstance(last.get("data"), list):
        found.extend(last["data"])
    return found


def add_manifest(messages: Sequence[Any], manifest: str) -> list[Any]:
    """The messages with ``manifest`` appended to the last user message (DeepAnalyze's ``# Instruction``)."""
    result = [dict(m) if isinstance(m, dict) else m for m in messages]
    for message in reversed(result):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else _text_of(content)
            message["content"] = f"{text.rstrip()}\n\n{manifest}" if text.strip() else manifest
            break
    return result


def _text_of(content: Any) -> str:
    # OpenAI's list form, as DeepAnalyze's _normalize_openai_message_content reads it
    if not isinstance(content, list):
        return str(content or "")
    return "".join(str(part.get("text", {}).get("value", "")) for part in content
                   if isinstance(part, dict) and part.get("type") == "text")


async def prepare_turn(thread_id: str, messages: Sequence[Any],
                       data: Sequence[dict[str, Any]] | None = None,
                       client: DataSourcesClient | None = None) -> list[Any]:
    """Attach the request's references to the thread and add the manifest; leave the agent its token.

    Raises:
        DataSourcesError: an attach or a mint failed (``.http_status`` is the status to answer with);
            nothing of the attach was left in the thread's folder.
    """
    client = client or _client
    references = references_in(messages, data)
    if client is None:
        if references:
            raise DataSourcesError(0, "this request names data, but no da-sources server is configured "
                                      "($DA_SOURCES_URL, $DA_SOURCES_API_KEY)")
        return list(messages)
    if references:
        attachment = await asyncio.to_thread(client.attach, thread_id, references)
        messages = add_manifest(messages, attachment.manifest)
    agent_sources = [s for s in os.environ.get(AGENT_SOURCES_VARIABLE, "").split(",") if s.strip()]
    if agent_sources:
        await asyncio.to_thread(_leave_token, client, thread_id, agent_sources)
    return list(messages)


def _leave_token(client: DataSourcesClient, thread_id: str, sources: list[str]) -> None:
    ttl = int(os.environ.get(TOKEN_TTL_VARIABLE) or TOKEN_TTL_DEFAULT)
    token = client.mint_thread_token(thread_id, [s.strip() for s in sources], ttl_seconds=ttl)
    path = token_path(thread_id)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    facts = {"url": client._http.base_url, "token": token.token, "thread_id": thread_id,
             "sources": token.sources, "expires_at": token.expires_at}
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(facts, file)
    os.replace(temporary, path)


if configure() is not None:  # the key was in the environment: keep it from same-user processes
    protect_process()
