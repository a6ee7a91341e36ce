"""An ``inline`` connector: serves the files given in its config (a test fixture plugin).

Config: ``files`` (name -> text) and an optional ``token`` secret; when
``expected_token`` is set, connecting checks the resolved token against it,
which lets the tests prove a ``{secret: NAME}`` reference reaches a plugin.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

# only the documented public paths (DESIGN.md): a plugin written against them must keep
# working whatever moves inside the package
from connectors import AuthenticationError, DataItem, DataSourceConnector, NotFoundError, Secret
from connectors.landing import landing, report_progress
from connectors.settings import ConnectorSettings


class InlineSettings(ConnectorSettings):
    """Settings of an ``inline`` source."""

    files: dict[str, str] = Field(description="File name -> text content.")
    token: Secret | None = Field(None, description="A secret, checked against expected_token.")
    expected_token_sha256: str | None = Field(None, description="sha256 hex of the token to accept.")


class InlineConnector(DataSourceConnector):
    """Serves ``config["files"]``; identifiers are the file names."""

    settings_model = InlineSettings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._files: dict[str, bytes] = {}
        self.connects = 0

    async def connect(self) -> bool:
        settings: InlineSettings = self.resolve_settings()
        if settings.expected_token_sha256 is not None:
            given = settings.token.reveal().encode() if settings.token else b""
            if hashlib.sha256(given).hexdigest() != settings.expected_token_sha256:
                raise AuthenticationError("the token was refused", source_id=self.source_id)
        self._files = {name: text.encode() for name, text in settings.files.items()}
        self.connects += 1
        self._connected = True
        return True

    async def disconnect(self) -> None:
        self._connected = False

    async def test_connection(self) -> bool:
        return self._connected

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        self._require_connected()
        return [
            DataItem(name=name.rsplit("/", 1)[-1], path=name, size=len(data), modified_at=0,
                     metadata={"version": hashlib.sha256(data).hexdigest()})
            for name, data in sorted(self._files.items())
            if path is None or name.startswith(path.rstrip("/") + "/")
        ]

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        data = self._data(identifier)
        with landing(workspace, identifier, source_id=self.source_id) as land:
            land.write(data)
            report_progress(identifier, len(data), len(data))
            landed = land.commit(provenance=self._provenance(identifier, data), expected_size=len(data))
        return str(landed.path)

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        data = self._data(identifier)
        return {"size": len(data), "version": hashlib.sha256(data).hexdigest()}

    def _data(self, identifier: str) -> bytes:
        self._require_connected()
        if identifier not in self._files:
            raise NotFoundError(f"no file {identifier!r}", source_id=self.source_id)
        return self._files[identifier]

    def _provenance(self, identifier: str, data: bytes) -> dict[str, Any]:
        return {
            "source_type": "inline",
            "source_uri": f"inline://{self.source_id}/{identifier}",
            "source_version": hashlib.sha256(data).hexdigest(),
        }
