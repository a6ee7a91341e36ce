"""The connector contract: source types, source configs, items, and the connector base class.

Example:
    >>> config = DataSourceConfig(id="docs", type=DataSourceType.LOCAL_FILE,
    ...                           name="Docs", config={"root": "/srv/docs"})
    >>> async with LocalFileConnector(config) as connector:
    ...     items = await connector.list_items()
    ...     path = await connector.fetch_data(items[0].path, "/tmp/ws")
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.errors import ConfigurationError, ConnectionError, DataSourceError
from connectors.ids import SOURCE_ID_RULE, check_source_id
from connectors.reach import ReachPolicy
from connectors.settings import ConnectorSettings, check_complete, check_config, describe_errors, resolve_settings
from connectors.type_table import FreeformSettings, known_type_names, settings_model_for, type_name_of


class DataSourceType(Enum):
    """The built-in connector types. Plugins add types by name (see ``connectors.registry``)."""

    AZURE_BLOB = "azure_blob"
    POSTGRESQL = "postgresql"
    LOCAL_FILE = "local_file"
    S3 = "s3"


class DataSourceConfig(BaseModel):
    """One configured source, validated against its type's settings.

    ``config`` may hold secret references (``{"env": NAME}``, ``{"secret": NAME}``)
    in place of any value; literal secrets are kept as masked
    :class:`~connectors.secrets.references.Secret` values, so ``repr``, equality and
    pickling never show them.

    ``id`` follows the source id rule of :mod:`connectors.ids` (letters,
    digits, ``-`` and ``_``, a letter first, at most 63 characters).

    Raises:
        InvalidSourceIdError: the id breaks the rule (a ``ConfigurationError``).
        ConfigurationError: on an unknown type, a missing or unknown key, or a
            value of the wrong type; the message names the source id and the field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    id: str = Field(description=f"Stable identifier, e.g. 'ds-azure-prod'; {SOURCE_ID_RULE}.")
    type: DataSourceType | str = Field(description="Connector type name, e.g. 'azure_blob'.")
    name: str = Field(description="Human-readable name.")
    config: dict[str, Any] = Field(description="Type-specific settings; values may be references.")
    created_at: int = Field(default_factory=lambda: int(time.time()), description="Unix seconds.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form labels.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:  # every error at once: the config's too, not only the first field's
            found = "; ".join(filter(None, [describe_errors(exc, ""), _config_errors(data)]))
            raise ConfigurationError(found, source_id=_id_of(data)) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSourceConfig:
        """Build from a plain mapping (a sources-file entry).

        Args:
            data: ``id``, ``type``, ``name``, ``config`` and optionally ``created_at`` and ``metadata``.

        Returns:
            The validated config.

        Raises:
            ConfigurationError: ``data`` is not a mapping, or a field is missing, unknown or bad
                (an invalid id is an ``InvalidSourceIdError``); the message names the source and fields.
        """
        if not isinstance(data, dict):
            raise ConfigurationError("a source must be a mapping of id, type, name, config")
        return cls(**data)

    @field_validator("id", mode="before")
    @classmethod
    def _check_id(cls, value: Any) -> str:
        # raised as is (not a ValueError): the typed error, before any message quotes the id
        return check_source_id(value)

    @model_validator(mode="after")
    def _check_type_and_config(self) -> DataSourceConfig:
        if isinstance(self.type, str):
            if self.type not in known_type_names():
                raise ConfigurationError(_unknown_type(self.type), source_id=self.id)
            if self.type in {t.value for t in DataSourceType}:
                self.type = DataSourceType(self.type)
        self.config = check_config(settings_model_for(self.type_name), self.config, self.id)
        return self

    @property
    def type_name(self) -> str:
        """The type as a plain string (``"azure_blob"``)."""
        return self.type.value if isinstance(self.type, DataSourceType) else self.type

    def check_complete(self) -> None:
        """Check the config whole, required fields included (done before a source is stored).

        An Azure config may be built incomplete, as DeepAnalyze's own example does
        (``config={"connection_string": ...}``, no container): what is missing fails at ``connect()``.

        Raises:
            ConfigurationError: naming the source and each missing or bad field.
        """
        check_complete(settings_model_for(self.type_name), self.config, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (``type`` as its name); :meth:`from_dict` builds the same config back.

        Literal secrets stay :class:`~connectors.secrets.references.Secret` values: masked in every
        repr, str and JSON form, yet the round trip keeps them. References stay references.

        Returns:
            ``id``, ``type``, ``name``, ``config``, ``created_at`` and ``metadata``.
        """
        return {"id": self.id, "type": self.type_name, "name": self.name, "config": dict(self.config),
                "created_at": self.created_at, "metadata": copy.deepcopy(self.metadata)}


def _config_errors(data: dict[str, Any]) -> str:
    """The errors of ``config`` when the entry failed elsewhere first (the after-validator never ran)."""
    kind, config = data.get("type"), data.get("config")
    kind = kind.value if isinstance(kind, DataSourceType) else kind
    if not isinstance(kind, str) or not isinstance(config, dict):
        return ""
    if kind not in known_type_names():
        return _unknown_type(kind)
    try:
        check_config(settings_model_for(kind), config, "")
    except ConfigurationError as exc:
        return exc.message
    return ""


def _unknown_type(kind: str) -> str:
    known = sorted(known_type_names())
    close = difflib.get_close_matches(kind, known, n=1)
    return f"type: unknown connector type {kind!r} (known: {', '.join(known)})" + (
        f"; did you mean {close[0]!r}?" if close else "")


def _id_of(data: dict[str, Any]) -> str | None:
    value = data.get("id")
    return value if isinstance(value, str) and len(value) <= 63 else None


@dataclass(slots=True)
class DataItem:
    """One item a source offers: a file, a blob, a table.

    ``path`` is the identifier to pass to ``fetch_data``; ``modified_at`` is
    unix seconds; ``metadata`` holds type-specific facts (etag, content type,
    columns...) and always ``version``: a string that changes when the item's
    content changes.
    """

    name: str
    path: str
    size: int
    modified_at: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping of the five fields (an item holds no secret: uris never carry one).

        Returns:
            ``name``, ``path``, ``size``, ``modified_at`` and a copy of ``metadata``.
        """
        return {"name": self.name, "path": self.path, "size": self.size, "modified_at": self.modified_at,
                "metadata": copy.deepcopy(self.metadata)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataItem:
        """The item :meth:`to_dict` gave (``metadata`` optional).

        Args:
            data: A mapping as :meth:`to_dict` returns it.

        Returns:
            The item.
        """
        return cls(name=data["name"], path=data["path"], size=data["size"], modified_at=data["modified_at"],
                   metadata=dict(data.get("metadata") or {}))


class ConnectedState:
    """Whether a connector is connected: true or false as the property ``is_connected``, and callable
    as DeepAnalyze's original interface has it, ``is_connected()``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: bool) -> None:
        self._value = value

    def __bool__(self) -> bool:
        return self._value

    def __call__(self) -> bool:
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool | ConnectedState):
            return self._value == bool(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return repr(self._value)


@dataclass(slots=True)
class FetchResult:
    """The outcome of fetching one item with ``fetch_many``: a path or an error."""

    identifier: str
    path: str | None = None
    error: DataSourceError | None = None

    @property
    def ok(self) -> bool:
        """True when the item landed."""
        return self.error is None


async def collect_results(identifiers: Iterable[str], fetch: Callable[[str], Awaitable[str]]) -> list[FetchResult]:
    """Run ``fetch`` for every identifier at once; per item its path or its error, in the order given.

    Args:
        identifiers: The items to fetch.
        fetch: Lands one item and returns its path; a :class:`DataSourceError` it raises is that item's.

    Returns:
        One result per identifier, in order; other exceptions propagate.
    """

    async def one(identifier: str) -> FetchResult:
        try:
            return FetchResult(identifier, path=await fetch(identifier))
        except DataSourceError as exc:
            return FetchResult(identifier, error=exc)

    return list(await asyncio.gather(*(one(i) for i in identifiers)))


class DataSourceConnector(ABC):
    """Base class of every connector: async, one instance per source.

    Subclasses implement the six abstract methods (DeepAnalyze's original interface, the
    whole contract) and may set :attr:`settings_model` to have their config
    validated. Land files with :func:`connectors.landing.landing` (atomic, with
    the lineage record); callers go through :func:`connectors.checked_fetch.fetch_checked`,
    which checks names first and records a file a connector landed on its own.
    ``async with connector:`` connects on enter and disconnects on exit.
    """

    settings_model: ClassVar[type[ConnectorSettings] | None] = None
    #: where the connector may connect, checked when it connects (set by the HTTP API; None: anywhere)
    reach: ReachPolicy | None = None

    def __init__(self, config: DataSourceConfig) -> None:
        try:
            served: str | None = self.type_name()
        except ConfigurationError:  # not registered (a connector written to the original interface): any type
            served = None
        if served is not None and config.type_name != served:
            raise ConfigurationError(
                f"type: {type(self).__name__} cannot serve type {config.type_name!r}", source_id=config.id
            )
        self.config = config
        self._connected = False
        self._connection: Any = None  # the original interface's: a connector that sets it in connect() is connected

    @classmethod
    def type_name(cls) -> str:
        """The type name this class serves; by default looked up in the registry.

        Returns:
            The name sources files use in ``type:`` (``"azure_blob"``).
        """
        return type_name_of(cls)

    @property
    def source_id(self) -> str:
        """The id of the source this connector serves."""
        return self.config.id

    @property
    def is_connected(self) -> ConnectedState:
        """True between a successful ``connect`` and ``disconnect`` (also callable: ``is_connected()``).

        A connector written to the original interface sets ``self._connection`` in ``connect()`` and
        clears it in ``disconnect()``; that counts too.
        """
        return ConnectedState(self._connected or self._connection is not None)

    def resolve_settings(self) -> Any:
        """The typed settings, with secret references resolved (call at connect time).

        Returns:
            An instance of :attr:`settings_model` (free-form settings when the class sets none).

        Raises:
            ConfigurationError: A bad field, or a secret reference that cannot be resolved.
        """
        model = getattr(self, "settings_model", None) or FreeformSettings  # optional for plugins
        return resolve_settings(model, self.config.config, self.source_id)

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise ConnectionError("not connected; call connect() or use 'async with'", source_id=self.source_id)

    @abstractmethod
    async def connect(self) -> bool:
        """Open clients or pools.

        Returns:
            True once connected.

        Raises:
            AuthenticationError: the credentials were refused.
            ConnectionError: the source cannot be reached.
            ConfigurationError: the config is incomplete or invalid.
        """

    @abstractmethod
    async def disconnect(self) -> None:
        """Close everything ``connect`` opened. Safe to call twice."""

    @abstractmethod
    async def test_connection(self) -> bool:
        """Whether the source answers with these credentials.

        Returns:
            True when it does; False (never an exception) when it does not.
        """

    @abstractmethod
    async def list_items(self, path: str | None = None) -> list[DataItem]:
        """Every item under ``path``.

        Args:
            path: a prefix, folder or schema; None for all items of the source.

        Returns:
            The items, with ``path`` the identifier :meth:`fetch_data` takes.

        Raises:
            DataSourceError: listing failed (a subclass says why).
        """

    async def iter_items(self, path: str | None = None) -> AsyncIterator[DataItem]:
        """Items under ``path`` one at a time; connectors that page override this.

        Args:
            path: as for :meth:`list_items`.

        Returns:
            An async iterator of the items, so a large source is never held whole.
        """
        for item in await self.list_items(path):
            yield item

    @abstractmethod
    async def fetch_data(self, identifier: str, workspace: str) -> str:
        """Land item ``identifier`` in ``workspace``, with its provenance record.

        Args:
            identifier: an item's ``path`` from :meth:`list_items`.
            workspace: the folder to land it in.

        Returns:
            The absolute path of the landed file.

        Raises:
            NotFoundError: no such item (or outside the configured scope).
            UnsafeNameError: the name would land outside ``workspace``.
            IntegrityError: the bytes did not match the source's size or checksum.
            DataFetchError: the fetch failed otherwise; nothing is left behind.
        """

    @abstractmethod
    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        """Facts about one item.

        Args:
            identifier: an item's ``path``.

        Returns:
            Size, version and type-specific keys (columns of a table, content type of a blob).

        Raises:
            NotFoundError: no such item.
        """

    async def fetch_many(
        self, identifiers: Iterable[str], workspace: str, concurrency: int = 8
    ) -> list[FetchResult]:
        """Fetch several items, at most ``concurrency`` at once.

        One failure does not stop or undo the others.

        Args:
            identifiers: the items' paths.
            workspace: the folder to land them in.
            concurrency: fetches in flight at most.

        Returns:
            One result per identifier, in the order given, with its path or its error.
        """
        gate = asyncio.Semaphore(max(1, concurrency))

        async def gated(identifier: str) -> str:
            async with gate:
                return await self.fetch_data(identifier, workspace)

        return await collect_results(identifiers, gated)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "closed"
        return f"{type(self).__name__}(source_id={self.source_id!r}, {state})"
