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


def ip_address_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an IP address, one form per host: surrounding blanks and brackets and an IPv6
    zone id (`fe80::1%eth0`) dropped, and an IPv4 address in its IPv6-mapped spelling
    (`::ffff:192.0.2.1`, RFC 4291 section 2.5.5.2, how a dual-stack socket writes an IPv4 peer)
    as that IPv4 address. None when it is not an IP address."""
    try:
        parsed = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    return mapped or parsed


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
