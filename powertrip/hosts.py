"""Host names as a HIDS and a log provider spell them differently: `Bastion`, `bastion.`,
`bastion.corp.example.com`. One normal form for storing, two ways of comparing."""

from __future__ import annotations

import ipaddress
from enum import StrEnum


class HostMatch(StrEnum):
    """How the match endpoint and the `host` filters compare host names (always ignoring case)."""

    SHORT = "short"
    """`bastion` matches `bastion.corp.example.com` and `BASTION`: the first label decides."""
    FQDN = "fqdn"
    """Only the same full name matches: `bastion` does not match `bastion.corp.example.com`."""


def host_key(host: str) -> str:
    """The stored normal form (search attribute `PowertripHostKey`): lower case, no trailing dot.

    The full name is kept so both kinds of comparison can be answered from one attribute.
    """
    return host.strip().rstrip(".").lower()


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def short_host(host: str) -> str:
    """`bastion.corp.example.com` → `bastion`; an IP address stays whole (`10.0.0.5`)."""
    key = host_key(host)
    return key if is_address(key) else key.split(".", 1)[0]
