"""The Azure session under a :class:`~connectors.reach.ReachPolicy`: every request and every resolved address checked.

The account URL is checked when the connector connects; then the HTTP
session's resolver checks each address a name resolves to when a connection is
opened (so a name rebound to a private address is refused), and a request hook
checks every request's scheme, host and port (a literal address never reaches
the resolver). Refusals name the setting only.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from connectors.reach import ReachPolicy, ReachRefusedError

WHERE = "config.account_url"


def check_url(url: str | URL, reach: ReachPolicy, where: str = WHERE) -> None:
    """Refuse ``url`` unless its scheme, port and host (or literal address) are allowed.

    Args:
        url: The URL a request would go to.
        reach: The policy.
        where: The setting to name in a refusal (the S3 connector's is ``config.endpoint_url``).

    Raises:
        ReachRefusedError: The URL has no host or port, or the policy does not allow it.
    """
    parsed = URL(url) if isinstance(url, str) else url
    if not parsed.host or parsed.port is None:
        raise ReachRefusedError(f"{where}: not an http(s) URL with a host")
    reach.check_target(parsed.host, parsed.port, parsed.scheme, where=where)
    if _is_address(parsed.host):
        reach.check_addresses(parsed.host, [parsed.host], where=where)


class CheckedResolver(AbstractResolver):
    """aiohttp's threaded resolver, refusing a name whose addresses the policy does not allow."""

    def __init__(self, reach: ReachPolicy, where: str = WHERE) -> None:
        self._reach = reach
        self._where = where
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        self._reach.check_addresses(host, [str(r["host"]) for r in found], where=self._where)
        return found

    async def close(self) -> None:
        await self._inner.close()


def checked_connector(reach: ReachPolicy | None, where: str = WHERE, **kwargs: Any) -> aiohttp.TCPConnector:
    """The session's TCP connector: with the checking resolver under a policy.

    Args:
        reach: The policy; None: no checks.
        where: The setting to name in a refusal.
        **kwargs: Passed to :class:`aiohttp.TCPConnector`.

    Returns:
        A connector whose resolver refuses addresses the policy does not allow.
    """
    if reach is None:
        return aiohttp.TCPConnector(**kwargs)
    return aiohttp.TCPConnector(resolver=CheckedResolver(reach, where), **kwargs)


def trace_configs(reach: ReachPolicy | None, where: str = WHERE) -> list[aiohttp.TraceConfig]:
    """A request hook that checks every request's URL under a policy (none without one).

    Args:
        reach: The policy; None: no hook.
        where: The setting to name in a refusal.

    Returns:
        The trace configs to give the session.
    """
    if reach is None:
        return []

    async def on_start(session: aiohttp.ClientSession, context: SimpleNamespace,
                       params: aiohttp.TraceRequestStartParams) -> None:
        check_url(params.url, reach, where)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    return [config]


def _is_address(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))
    except OSError:
        return False
    return True
