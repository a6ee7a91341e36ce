"""Where a connector may connect: the operator's allow-list of hosts, ports and schemes, checked at connect time.

A :class:`ReachPolicy` is given to a connector by whoever runs it on behalf of
someone else (the HTTP API: :mod:`connectors.api.policy`); the CLI and Dagster
run the operator's own sources and give none. Each connector checks the name
of the host first, then resolves it itself and checks every address it would
connect to, and connects to those addresses only (PostgreSQL through
``hostaddr``, Azure through a resolver of the HTTP session), so a name that
resolves elsewhere by the time of the connect (DNS rebinding) cannot pass.

An entry of ``hosts`` is a host name pattern (``*.blob.core.windows.net``,
matched case-insensitively), an address (``127.0.0.1``) or a network
(``10.0.0.0/8``). A name that matches a pattern may resolve only to public
addresses, or to addresses inside a listed network: loopback, link-local (the
cloud metadata services), private and other special ranges are refused unless
listed. Refusals name the setting, never the host or address, so they neither
echo a referenced value nor tell open ports from closed ones.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.errors import ConfigurationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ReachRefusedError(ConfigurationError):
    """The operator's policy does not let this source reach where its settings point."""


@dataclass(frozen=True)
class ReachPolicy:
    """Hosts, ports and schemes a connector may reach; see the module docstring."""

    hosts: tuple[str, ...] = ()
    """Host name patterns (``*.blob.core.windows.net``), addresses or networks sources may reach; none: no host."""
    ports: frozenset[int] | None = field(default_factory=lambda: frozenset({443, 5432}))
    """Ports sources may reach; None (``any`` in the policy file): every port."""
    schemes: frozenset[str] = field(default_factory=lambda: frozenset({"https", "postgresql"}))
    """URL schemes sources may use (add ``http`` for an emulator)."""
    postgres_require_auth: str | None = "scram-sha-256"
    """libpq ``require_auth`` for PostgreSQL: a server asking for a cleartext password is refused; None: any."""

    def networks(self) -> list[Network]:
        """The entries of ``hosts`` that are addresses or networks.

        Returns:
            Each as an IP network (a single address is a /32 or /128).
        """
        return [net for entry in self.hosts if (net := _network(entry)) is not None]

    def patterns(self) -> list[str]:
        """The entries of ``hosts`` that are name patterns.

        Returns:
            Each lower-cased, as an ``fnmatch`` pattern (``*.blob.core.windows.net``).
        """
        return [entry.lower() for entry in self.hosts if _network(entry) is None]

    def check_target(self, host: str, port: int, scheme: str, *, where: str) -> None:
        """Refuse ``scheme://host:port`` unless the name (or literal address) and the port are listed.

        Args:
            host: The host a source's settings point at (hostile input).
            port: Its port.
            scheme: ``https`` or ``postgresql``.
            where: What the message names as the setting (never the host itself).

        Raises:
            ReachRefusedError: The scheme, port or host is not allowed.
        """
        if scheme.lower() not in self.schemes:
            raise ReachRefusedError(f"{where}: the operator's policy does not allow this scheme")
        if self.ports is not None and port not in self.ports:
            raise ReachRefusedError(f"{where}: the operator's policy does not allow this port")
        if not self._listed(host):
            raise ReachRefusedError(f"{where}: the operator's policy does not allow this host")

    def check_addresses(self, host: str, addresses: Iterable[str], *, where: str) -> list[str]:
        """``addresses`` when each may be reached for ``host``; refused when any may not, or none is given.

        A public address is allowed for a listed name; any other (loopback, private, link-local,
        metadata) only when its network is listed.

        Args:
            host: The name or literal address the settings gave.
            addresses: What it resolved to.
            where: What the message names as the setting.

        Returns:
            The addresses, to connect to exactly these.

        Raises:
            ReachRefusedError: None given, or one that may not be reached.
        """
        checked = list(addresses)
        if not checked or not all(self._address_allowed(host, a) for a in checked):
            raise ReachRefusedError(f"{where}: the operator's policy does not allow the address this host "
                                    "resolves to (loopback, link-local, private and metadata ranges need "
                                    "listing)")
        return checked

    async def resolve(self, host: str, port: int, *, where: str) -> list[str]:
        """The host's addresses (resolved now, by us), each checked; refused before any connection.

        Args:
            host: The name or literal address the settings gave.
            port: Its port.
            where: What the message names as the setting.

        Returns:
            The checked addresses, to connect to exactly these.

        Raises:
            ReachRefusedError: The name does not resolve, or to an address that may not be reached.
        """
        if _address(host) is not None:
            return self.check_addresses(host, [host], where=where)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise ReachRefusedError(f"{where}: the host name does not resolve") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return self.check_addresses(host, found, where=where)

    def _listed(self, host: str) -> bool:
        address = _address(host)
        if address is not None:
            return any(address in net for net in self.networks() if net.version == address.version)
        name = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns())

    def _address_allowed(self, host: str, text: str) -> bool:
        address = _address(text)
        if address is None:
            return False
        if any(address in net for net in self.networks() if net.version == address.version):
            return True
        return address.is_global and _address(host) is None and self._listed(host)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None
