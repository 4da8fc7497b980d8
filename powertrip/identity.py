"""Natural identity: one action is one event, whichever route delivered it.

A provider's own id makes a retried delivery a duplicate, but the same ssh login can reach
Powertrip by two routes with unrelated ids (a Papertrail webhook, then a raw auth.log backfill
whose line carries sshd's pid and no id; CloudWatch and a journald shipper). Every route builds
the same `SecurityEvent` from it, so the identity is computed from the event:

- **the key**: kind, host (`powertrip.hosts.host_key`: case and trailing dot ignored), actor
  (exactly), source address (normalised) and source port, and what the action is: for an event
  with a source port, the action its rule built from the line (`ssh login (publickey)`: two
  logins from one address and port with two auth methods are two connections), not the line,
  whose formatting is the route's; for one without (sudo, su, a break-glass line) the message
  text (whitespace collapsed), or what its rule says tells its actions apart (`identity`: the su
  pack's `su to root`, so the two lines one su writes are one action).
  An event with neither a port nor a message (a JSON-only record) has no natural identity: only
  its provider id names it. So does a CloudTrail record, whose `eventID` already names it on every
  route.
- **the time**: two events with the same key are the same action when their times are within
  the tolerance: `TOLERANCE_WITH_PORT` (2 minutes: delivery lag between a provider's receive time
  and the line's own stamp) when the key has a port, `TOLERANCE_WITHOUT_PORT` (5 seconds)
  otherwise, since a repeated `sudo` of the same command a minute later is a new action.
- **a time without a zone** (an RFC 3164 stamp, taken as UTC): for keys with a port, a zone-less
  copy and a zoned copy may also differ by a UTC offset some zone uses
  (`powertrip.zones.UTC_OFFSETS`: UTC-12 to UTC+14, in whole hours and the half and quarter hours
  real zones use) within the tolerance, so a local-time auth.log line matches the provider's
  zoned copy. The offset has a sign: the zone-less stamp is the local wall clock, `UTC + offset`.
  Two zone-less copies get no such allowance: the key names one host, whose stamps share its one
  zone, so two zone-less logins an hour apart are two logins. Nor does a zoned copy whose time
  is after the zone-less copy arrived (`Occurrence.arrived`, beyond the tolerance): no line is
  received before it is written, so a zone-less `05:00` line received at 05:00Z is no copy of a
  login at 08:00Z, though UTC-3 is a real offset. Nor does any zoned copy an offset away from a
  zone-less copy whose stamp, read as UTC, is its own arrival time (within the tolerance): that
  line was written in UTC and delivered at once, so a zone-less `10:00` line received at 10:00Z
  is no copy of a login at 08:00Z; a line of a UTC+2 host would have to have been delivered
  exactly two hours late. Keys without a port get no allowance either: a command repeated every
  15 minutes by cron would otherwise be taken for one action.

The hash of the key is the search attribute `PowertripIdentity`; before a start, one visibility
query per 100 events (`powertrip.known.find_known`) looks for an event of the same identity
within the tolerance (and of its `legacy_identity`, the hash events recorded before a login's
key named its action carry, compared by the key their memo gives now), and `RecentStarts` covers
what visibility does not show yet (it lags a start by about a second) for concurrent deliveries
and members of one batch in this process.
Across API replicas, two copies of one action arriving within that lag can both start
(documented in the README).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import TTLCache

from powertrip.hosts import host_key, ip_address_of
from powertrip.models import SecurityEvent
from powertrip.zones import UTC_OFFSETS

TOLERANCE_WITH_PORT = timedelta(minutes=2)
TOLERANCE_WITHOUT_PORT = timedelta(seconds=5)
MAX_UTC_OFFSET = timedelta(hours=14)


def same_address(a: str | None, b: str | None) -> bool:
    """Addresses compared as addresses (`2001:db8::1` is `2001:DB8:0::1`, `::ffff:192.0.2.1` is
    `192.0.2.1`, brackets and zone ids ignored); anything else ignoring case. None matches
    nothing."""
    return a is not None and b is not None and _address(a) == _address(b)


def _address(address: str | None) -> str:
    if not address:
        return ""
    parsed = ip_address_of(address)
    return address.strip().strip("[]").lower() if parsed is None else str(parsed)


def identity_key(event: SecurityEvent) -> str | None:
    """The documented key (see the module), as canonical JSON; None: no natural identity."""
    if event.port is None:
        what = _collapse(event.identity_text or event.message)
        if not what:
            return None
    else:
        # What the rule read from the line (the auth method), not the line: a route may frame
        # or trim a message, never change what sshd said it was.
        what = _collapse(event.action)
    return _key(event, what)


def legacy_identity_key(event: SecurityEvent) -> str | None:
    """The key an event with a source port had before it named its action (None: the event
    has no port, and its key never changed): what events recorded before carry."""
    return None if event.port is None else _key(event, "")


def _key(event: SecurityEvent, what: str) -> str:
    parts = [
        event.kind.value,
        host_key(event.host or ""),
        event.actor,
        _address(event.address),
        "" if event.port is None else str(event.port),
        what,
    ]
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def identity_of(event: SecurityEvent) -> str | None:
    """`PowertripIdentity`: `n` + 32 hex digits of the key's SHA-256; None without one."""
    return _hashed(identity_key(event))


def legacy_identity_of(event: SecurityEvent) -> str | None:
    """The `PowertripIdentity` an event with a source port was recorded under before its key
    named its action; None for an event without a port (its identity is unchanged)."""
    return _hashed(legacy_identity_key(event))


def _hashed(key: str | None) -> str | None:
    return None if key is None else "n" + hashlib.sha256(key.encode()).hexdigest()[:32]


def content_digest(event: SecurityEvent) -> str:
    """What a record said, for telling a retry (same) from a conflict (same record id, other
    content; a CloudTrail addendum is another record of its event: `services.starts`): the facts
    read from it (actor, host, source address and port, the message), not how it travelled: the
    same record by two routes that share its id (CloudTrail's eventID by EventBridge and
    CloudWatch, a Papertrail event by webhook and by the search API) carries other transport
    fields but says the same. Not its time: a record without a time of its own
    takes its arrival time, which a retry changes."""
    facts = [
        event.actor,
        host_key(event.host or ""),
        _address(event.address),
        event.port,
        " ".join(event.message.split()),
    ]
    canonical = json.dumps(facts, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Occurrence:
    """What identity comparison needs of an event."""

    event_id: str
    identity: str
    at: datetime
    zoneless: bool
    has_port: bool
    arrived: datetime | None = None
    """When Powertrip received this copy (a workflow's start time), if known."""
    legacy_identity: str | None = None
    """The identity events recorded before a login's key named its action carry (to look
    them up by); None where it never changed."""

    @classmethod
    def of(cls, event: SecurityEvent, arrived: datetime | None = None) -> Occurrence | None:
        """`event`'s occurrence (`arrived`: when Powertrip received it); None without an
        identity."""
        identity = identity_of(event)
        if identity is None:
            return None
        return cls(
            event_id=event.event_id,
            identity=identity,
            at=event.occurred_at,
            zoneless=event.time_without_zone,
            has_port=event.port is not None,
            arrived=arrived,
            legacy_identity=legacy_identity_of(event),
        )

    @property
    def tolerance(self) -> timedelta:
        return TOLERANCE_WITH_PORT if self.has_port else TOLERANCE_WITHOUT_PORT

    @property
    def reach(self) -> timedelta:
        """How far apart in time a same-action event can be recorded."""
        return self.tolerance + (MAX_UTC_OFFSET if self.has_port else timedelta(0))

    def same_action(self, other: Occurrence) -> bool:
        if self.identity != other.identity:
            return False
        delta = self.at - other.at
        if abs(delta) <= self.tolerance:
            return True
        # Both zoned: the times say it all. Both zone-less: one host wrote both in its one zone.
        if not self.has_port or self.zoneless == other.zoneless:
            return False
        zoneless, zoned = (self, other) if self.zoneless else (other, self)
        if zoneless.arrived is not None:
            # Written at the zoned copy's time, the zone-less copy cannot have arrived before it.
            if zoned.at > zoneless.arrived + self.tolerance:
                return False
            # Stamped (as UTC) when it arrived: written in UTC and delivered at once. Another
            # zone would need a delivery exactly its offset late; a second login is likelier,
            # and a second question costs less than a login nobody is asked about.
            if abs(zoneless.at - zoneless.arrived) <= self.tolerance:
                return False
        # The zone-less stamp is the local wall clock: the true (zoned) time plus the offset.
        offset = zoneless.at - zoned.at
        return any(abs(offset - zone) <= self.tolerance for zone in UTC_OFFSETS)


def same_action(a: SecurityEvent, b: SecurityEvent) -> bool:
    """Whether two recorded events are one action (the module's rule)."""
    first, second = Occurrence.of(a), Occurrence.of(b)
    return first is not None and second is not None and first.same_action(second)


class RecentStarts:
    """Events this process started lately, by identity, and a lock per identity.

    Visibility shows a started workflow only after a moment, so two deliveries of one action
    arriving together (two members of one batch, two concurrent requests to this API process)
    would both find nothing there. Starts of one identity are serialised here, and each checks
    what this process started in the last `ttl` seconds. Bounded: at most `maxsize` identities.
    """

    def __init__(self, ttl: float = 600.0, maxsize: int = 100_000) -> None:
        self._started: TTLCache[str, list[Occurrence]] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, identity: str) -> asyncio.Lock:
        held = self._locks.get(identity)
        if held is None:
            held = self._locks[identity] = asyncio.Lock()
        return held

    def find(self, occurrence: Occurrence) -> str | None:
        for other in self._started.get(occurrence.identity, []):
            if other.event_id != occurrence.event_id and occurrence.same_action(other):
                return other.event_id
        return None

    def remember(self, occurrence: Occurrence) -> None:
        self._started[occurrence.identity] = [
            *self._started.get(occurrence.identity, []),
            occurrence,
        ]
