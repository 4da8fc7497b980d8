"""Where a login came from, in words: a known-network label from the config (`networks:`) and,
when enabled, the address's reverse-DNS name. Runs inside activities only (it does I/O)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import TTLCache

from powertrip.hosts import ip_address_of

# (address) -> PTR name; (name) -> the addresses it resolves to. Injectable for tests.
ReverseLookup = Callable[[str], Awaitable[str | None]]
ForwardLookup = Callable[[str], Awaitable[list[str]]]

NAMES_CACHED = 4096
NAME_TTL_SECONDS = 3600.0


async def ptr_name(address: str) -> str | None:
    host, _ = await asyncio.get_running_loop().getnameinfo((address, 0), socket.NI_NAMEREQD)
    return str(host)


async def resolve(name: str) -> list[str]:
    infos: list[Any] = await asyncio.get_running_loop().getaddrinfo(
        name, None, type=socket.SOCK_STREAM
    )
    return [str(info[4][0]) for info in infos]


def _same_address(a: str, b: str) -> bool:
    ip = ip_address_of(a)
    return ip is not None and ip == ip_address_of(b)


class Origins:
    def __init__(
        self,
        networks: dict[str, str],
        reverse_dns: bool = False,
        timeout: float = 2.0,
        reverse: ReverseLookup = ptr_name,
        forward: ForwardLookup = resolve,
    ) -> None:
        # Most specific network first, so `10.8.1.0/24: build farm` beats `10.0.0.0/8: corp`.
        parsed = [
            (ipaddress.ip_network(cidr, strict=False), label) for cidr, label in networks.items()
        ]
        self._networks = sorted(parsed, key=lambda pair: pair[0].prefixlen, reverse=True)
        self._reverse_dns = reverse_dns
        self._timeout = timeout
        self._reverse = reverse
        self._forward = forward
        # Bounded in size and age: addresses are attacker-chosen, and PTR records change.
        self._names: TTLCache[str, str | None] = TTLCache(NAMES_CACHED, NAME_TTL_SECONDS)

    def label(self, address: str) -> str | None:
        ip = ip_address_of(address)
        if ip is None:
            return None
        for network, label in self._networks:
            if ip.version == network.version and ip in network:
                return label
        return None

    async def reverse_name(self, address: str) -> str | None:
        """The address's PTR name, only when that name resolves forward to the same address
        (forward-confirmed reverse DNS): whoever controls an address's reverse zone can name it
        `vpn.corp.example.com`, but cannot make corp's own zone point that name back at it.
        None when off, unconfirmed, or DNS is slow or fails."""
        ip = ip_address_of(address)
        if not self._reverse_dns or ip is None:
            return None
        address = str(ip)  # one spelling per host: `::ffff:192.0.2.1` has 192.0.2.1's PTR record
        if address in self._names:
            return self._names[address]
        name: str | None
        try:
            async with asyncio.timeout(self._timeout):
                name = await self._reverse(address)
                if name and name != address:
                    addresses = await self._forward(name)
                    name = name if any(_same_address(a, address) for a in addresses) else None
                else:
                    name = None
        except (OSError, TimeoutError, ValueError, UnicodeError):
            name = None  # say nothing rather than delay the message or show an unchecked name
        self._names[address] = name
        return name

    async def describe(self, address: str | None) -> str | None:
        """`office VPN · vpn-7.example.com`, or None when nothing is known."""
        if not address:
            return None
        parts = [self.label(address), await self.reverse_name(address)]
        known = [p for p in parts if p]
        return " · ".join(known) if known else None
