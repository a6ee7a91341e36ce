"""The reach rules as pure decisions: which names, addresses, ports and schemes pass.

Row 30 of docs/RELIABILITY.md (the fault matrix).
"""

from __future__ import annotations

import asyncio

import pytest

from connectors.reach import ReachPolicy, ReachRefusedError

CLOUD = ReachPolicy(hosts=("*.blob.core.windows.net", "db.example.com", "10.1.2.0/24"))


@pytest.mark.parametrize("host", ["acct.blob.core.windows.net", "ACCT.Blob.Core.Windows.Net.", "db.example.com",
                                  "10.1.2.7"])
def test_listed_names_and_addresses_pass(host: str) -> None:
    CLOUD.check_target(host, 443, "https", where="config.host")


@pytest.mark.parametrize(("host", "port", "scheme"), [
    ("evil.example", 443, "https"), ("acct.blob.core.windows.net.evil.example", 443, "https"),
    ("127.0.0.1", 443, "https"), ("169.254.169.254", 443, "https"), ("10.1.3.1", 443, "https"),
    ("acct.blob.core.windows.net", 22, "https"), ("acct.blob.core.windows.net", 443, "http"),
    ("::ffff:127.0.0.1", 443, "https"),
])
def test_anything_else_is_refused_naming_the_field_only(host: str, port: int, scheme: str) -> None:
    with pytest.raises(ReachRefusedError) as caught:
        CLOUD.check_target(host, port, scheme, where="config.host")
    assert "config.host" in str(caught.value) and host not in str(caught.value)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "169.254.169.254", "100.100.100.200",
                                     "::1", "fd00:ec2::254", "::ffff:10.0.0.1", "0.0.0.0"])
def test_a_listed_name_resolving_to_an_internal_address_is_refused(address: str) -> None:
    with pytest.raises(ReachRefusedError) as caught:
        CLOUD.check_addresses("db.example.com", [address], where="config.host")
    assert address not in str(caught.value)


def test_a_listed_name_may_resolve_to_public_or_listed_addresses_only() -> None:
    assert CLOUD.check_addresses("db.example.com", ["20.60.1.2", "10.1.2.9"], where="h") == ["20.60.1.2", "10.1.2.9"]
    with pytest.raises(ReachRefusedError):
        CLOUD.check_addresses("db.example.com", ["20.60.1.2", "127.0.0.1"], where="h")  # one bad address is enough
    with pytest.raises(ReachRefusedError):
        CLOUD.check_addresses("db.example.com", [], where="h")
    with pytest.raises(ReachRefusedError):  # an unlisted literal address is refused whatever its range
        CLOUD.check_addresses("20.60.1.2", ["20.60.1.2"], where="h")


def test_resolution_is_ours_and_checked() -> None:
    loopback_name = ReachPolicy(hosts=("localhost",), ports=None)
    with pytest.raises(ReachRefusedError):
        asyncio.run(loopback_name.resolve("localhost", 5432, where="config.host"))
    listed = ReachPolicy(hosts=("localhost", "127.0.0.0/8", "::1"), ports=None)
    assert asyncio.run(listed.resolve("localhost", 5432, where="config.host"))
    with pytest.raises(ReachRefusedError):
        asyncio.run(listed.resolve("no-such-host.invalid", 5432, where="config.host"))
