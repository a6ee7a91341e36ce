"""The thin client of a da-sources server, for DeepAnalyze's side (Python 3.10+, standard library only).

da-sources runs beside DeepAnalyze as its own service and OS user, alone holding the credentials;
DeepAnalyze talks to it over HTTP with an API key, through this module:

    >>> client = DataSourcesClient("http://da-sources:8300", api_key)
    >>> attachment = client.attach("thread-1a2b", [{"source_id": "lake", "glob": "exports/2026-*.csv"}])
    >>> prompt += attachment.manifest
    >>> client.list_sources(); client.list_items("lake", "exports/")
    >>> client.upload("lake", "thread-1a2b", ["chart.png"])          # files of the thread's generated/
    >>> token = client.mint_thread_token("thread-1a2b", ["lake"], ttl_seconds=900)

Agent code gets a :class:`ThreadClient` (a thread-scoped, read-only, expiring token that attaches
data to its own thread and does nothing else): ``ThreadClient.from_workspace()`` in the thread's
folder finds the token the glue left for it (:func:`token_path`).
:mod:`da_sources_client.deepanalyze` is the glue for DeepAnalyze's chat route.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TOKEN_DIR_VARIABLE", "AttachedFile", "Attachment", "DataSourcesClient", "DataSourcesError", "ThreadClient",
           "ThreadToken", "token_path"]

TOKEN_DIR_VARIABLE = "DA_SOURCES_TOKEN_DIR"  # noqa: S105 (a variable's name)


def token_path(thread_id: str) -> str:
    """Where the glue leaves a thread's token: ``$DA_SOURCES_TOKEN_DIR/<thread_id>.json``.

    The default, ``~/.da-sources/thread-tokens``, is outside DeepAnalyze's workspace, so its file
    server never serves a token and its tracker never reports one.
    """
    folder = os.environ.get(TOKEN_DIR_VARIABLE) or os.path.join(os.path.expanduser("~"), ".da-sources",
                                                                "thread-tokens")
    if not thread_id or os.sep in thread_id or thread_id.startswith("."):
        raise DataSourcesError(0, f"not a thread id: {thread_id!r}")
    return os.path.join(folder, f"{thread_id}.json")


class DataSourcesError(Exception):
    """The server refused or failed a call: ``status`` (HTTP, 0 when unreachable) and its ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"da-sources: {detail} (HTTP {status})" if status else f"da-sources: {detail}")
        self.status = status
        self.detail = detail

    @property
    def http_status(self) -> int:
        """The status to answer DeepAnalyze's own caller with: the server's 4xx, else 502 (a dependency failed)."""
        return self.status if 400 <= self.status < 500 and self.status not in (401, 403) else 502


@dataclass(frozen=True)
class AttachedFile:
    """A file now at the top level of the thread's folder, and where it came from."""

    name: str
    source_id: str
    item: str
    version: str | None
    size: int
    row_count: int | None = None


@dataclass(frozen=True)
class Attachment:
    """What an attach landed: the files and the manifest text for the prompt."""

    thread_id: str
    files: list[AttachedFile]
    manifest: str


@dataclass(frozen=True)
class ThreadToken:
    """A thread-scoped token: attaches data from ``sources`` to ``thread_id`` until ``expires_at`` (unix s)."""

    token: str = field(repr=False)
    thread_id: str
    sources: list[str]
    expires_at: int


class _Http:
    """JSON over HTTP with a bearer credential that never shows in a repr or an error."""

    def __init__(self, base_url: str, credential: str, timeout: float) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self._credential = credential
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 (http(s) only)
            "Authorization": f"Bearer {self._credential}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise DataSourcesError(exc.code, _detail(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataSourcesError(0, f"cannot reach {self.base_url}: {reason}") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list):  # a validation error: where and what, one line
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail
                           if isinstance(d, dict))
    return str(detail or exc.reason)


def _attachment(thread_id: str, answer: dict[str, Any]) -> Attachment:
    files = [AttachedFile(name=f["name"], source_id=f["source_id"], item=f["item"], version=f.get("version"),
                          size=int(f["size"]), row_count=f.get("row_count")) for f in answer.get("data", [])]
    return Attachment(thread_id, files, str(answer.get("manifest", "")))


def _attach_path(thread_id: str) -> str:
    return f"/v1/threads/{urllib.parse.quote(thread_id, safe='')}/data"


class DataSourcesClient:
    """DeepAnalyze's client: attach, list sources and items, upload results, mint thread tokens.

    Args:
        base_url: the server, e.g. ``http://da-sources:8300``.
        api_key: a key made with ``da-sources api-keys create`` (``--can-mint`` to mint thread tokens).
        timeout: seconds to wait for one answer (an attach waits for its fetches).
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 600.0) -> None:
        self._http = _Http(base_url, api_key, timeout)

    def __repr__(self) -> str:
        return f"DataSourcesClient({self._http.base_url!r})"

    @classmethod
    def from_env(cls, url_variable: str = "DA_SOURCES_URL", key_variable: str = "DA_SOURCES_API_KEY",
                 keep_key_in_environment: bool = False) -> DataSourcesClient:
        """A client from the environment; the key is removed from it (so code run with a copy of it lacks the key).

        Raises:
            DataSourcesError: a variable is not set.
        """
        url, key = os.environ.get(url_variable), os.environ.get(key_variable)
        if not url or not key:
            raise DataSourcesError(0, f"set ${url_variable} and ${key_variable} to reach the da-sources server")
        if not keep_key_in_environment:
            os.environ.pop(key_variable, None)
        return cls(url, key)

    def attach(self, thread_id: str, references: Sequence[dict[str, Any]], **options: Any) -> Attachment:
        """Fetch ``references`` to the top level of the thread's folder, all or nothing; the files and manifest.

        A reference is ``{"source_id", "path" | "glob" | "table"}`` or ``{"source_id", "query", "name"}``.
        ``options`` go into the request body as they are (fields the server's attach route takes).
        """
        answer = self._http.call("POST", _attach_path(thread_id), {"references": list(references), **options})
        return _attachment(thread_id, answer)

    def list_sources(self) -> list[dict[str, Any]]:
        """Every source the key may see (id, type, name, config without secrets, metadata)."""
        return self._pages("/v1/data-sources", {})

    def list_items(self, source_id: str, path: str = "", delimiter: str = "/") -> list[dict[str, Any]]:
        """Folders and items under ``path`` (``delimiter=""``: every item below, flat)."""
        return self._pages(f"/v1/data-sources/{urllib.parse.quote(source_id, safe='')}/browse",
                           {"path": path or None, "delimiter": delimiter})

    def upload(self, source_id: str, thread_id: str, files: Sequence[str], prefix: str | None = None,
               overwrite: bool = False) -> list[dict[str, Any]]:
        """Upload files of the thread's ``generated/`` folder to a blob source; per file, where it went."""
        body = {"thread_id": thread_id, "files": list(files), "prefix": prefix, "overwrite": overwrite}
        answer = self._http.call("POST", f"/v1/data-sources/{urllib.parse.quote(source_id, safe='')}/upload", body)
        return list(answer["data"])

    def mint_thread_token(self, thread_id: str, sources: Sequence[str], ttl_seconds: int = 900) -> ThreadToken:
        """A token for the agent's code: read-only, this thread, these sources, expiring after ``ttl_seconds``."""
        answer = self._http.call("POST", f"/v1/threads/{urllib.parse.quote(thread_id, safe='')}/tokens",
                                 {"sources": list(sources), "ttl_seconds": ttl_seconds})
        return ThreadToken(answer["token"], answer["thread_id"], list(answer["sources"]), int(answer["expires_at"]))

    def _pages(self, path: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            answer = self._http.call("GET", path, query={**query, "after": after})
            found.extend(answer["data"])
            after = answer.get("next_cursor")
            if not answer.get("has_more") or not after:
                return found


class ThreadClient:
    """The agent's client: attaches more data to its own thread with a thread token, and nothing else."""

    def __init__(self, base_url: str, token: str, thread_id: str, timeout: float = 600.0) -> None:
        self._http = _Http(base_url, token, timeout)
        self.thread_id = thread_id

    def __repr__(self) -> str:
        return f"ThreadClient({self._http.base_url!r}, thread {self.thread_id!r})"

    @classmethod
    def from_workspace(cls, folder: str = ".") -> ThreadClient:
        """The client the glue prepared for the thread whose folder is ``folder`` (the code's working folder).

        Raises:
            DataSourcesError: no token was left for this thread, or it has expired.
        """
        thread_id = os.path.basename(os.path.abspath(folder))
        try:
            with open(token_path(thread_id), encoding="utf-8") as file:
                facts = json.load(file)
        except (OSError, ValueError):
            raise DataSourcesError(0, "no thread token for this thread: it may not ask for data") from None
        if int(facts.get("expires_at", 0)) <= time.time():
            raise DataSourcesError(401, "the thread token has expired; it is renewed at the next turn")
        return cls(str(facts["url"]), str(facts["token"]), str(facts["thread_id"]))

    def attach(self, references: Sequence[dict[str, Any]]) -> Attachment:
        """Fetch ``references`` (from the token's sources) to the top level of this thread's folder."""
        answer = self._http.call("POST", _attach_path(self.thread_id), {"references": list(references)})
        return _attachment(self.thread_id, answer)
