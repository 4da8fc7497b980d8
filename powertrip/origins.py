"""Where a login came from, in words: a known-network label from the config (`networks:`) and,
when enabled, the address's reverse-DNS name. Runs inside activities only (it does I/O)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class Origins:
    def __init__(
        self, networks: dict[str, str], reverse_dns: bool = False, timeout: float = 2.0
    ) -> None:
        # Most specific network first, so `10.8.1.0/24: build farm` beats `10.0.0.0/8: corp`.
        parsed = [
            (ipaddress.ip_network(cidr, strict=False), label) for cidr, label in networks.items()
        ]
        self._networks = sorted(parsed, key=lambda pair: pair[0].prefixlen, reverse=True)
        self._reverse_dns = reverse_dns
        self._timeout = timeout
        self._names: dict[str, str | None] = {}

    def label(self, address: str) -> str | None:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return None
        for network, label in self._networks:
            if ip.version == network.version and ip in network:
                return label
        return None

    async def reverse_name(self, address: str) -> str | None:
        if not self._reverse_dns:
            return None
        if address in self._names:
            return self._names[address]
        name: str | None
        try:
            host, _ = await asyncio.wait_for(
                asyncio.get_running_loop().getnameinfo((address, 0), socket.NI_NAMEREQD),
                self._timeout,
            )
            name = host if host != address else None
        except (OSError, TimeoutError, ValueError):
            name = None  # no PTR record, or DNS slow: say nothing rather than delay the message
        self._names[address] = name
        return name

    async def describe(self, address: str | None) -> str | None:
        """`office VPN · vpn-7.example.com`, or None when nothing is known."""
        if not address:
            return None
        parts = [self.label(address), await self.reverse_name(address)]
        known = [p for p in parts if p]
        return " · ".join(known) if known else None
