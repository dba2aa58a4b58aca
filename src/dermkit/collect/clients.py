"""Who sent a request: the peer address, or behind proxies the operator trusts, the address they saw.

``X-Forwarded-For`` is believed only when the peer is a listed proxy, and then read from the right:
each trusted proxy appends the address it received from, so the right-most address that is not a
trusted proxy is the first one nobody trusted could have written. Everything left of it may be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from dermkit.core.errors import InputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_CLIENT_PREFIX = 64  # one IPv6 subscriber usually holds a whole /64: count it as one client


def trusted_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse ``--trusted-proxy`` values: addresses or networks (``10.0.0.0/8``)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise InputError(f"not an IP address or network: {value!r}", field="trusted_proxy") from exc
    return tuple(networks)


def client_id(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address (IPv6 as its /64) for rate limits; ``forwarded_for`` are the XFF headers in order."""
    address = _parse(peer)
    if address is None:
        return peer or "unknown"
    if _is_trusted(address, trusted):
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        for hop in reversed(hops):
            parsed = _parse(hop)
            if parsed is None:
                break  # garbage from the far side of the last proxy: that proxy is the client we know
            address = parsed
            if not _is_trusted(parsed, trusted):
                break
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


def _parse(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    candidates = [address] + ([address.ipv4_mapped] if address.version == 6 and address.ipv4_mapped else [])
    return any(candidate in network for candidate in candidates for network in trusted
               if candidate.version == network.version)
