"""`ExpectationWorkflow`'s contract: an expectation (expected work, pre-approved on the record),
its revocation, and what `ApprovalWorkflow` asks before it notifies anyone.

An expectation says: this actor (optionally on these hosts, for these rules) is expected to act
until a time, for a reason. It is a decision like a click: signed by the component that verified
its creator (the API's key after Slack's signature or its API token, the CLI's key for the
security team) and verified again by the worker before it approves anything, so a workflow
started straight through Temporal pre-approves nothing. Readers (API, CLI) list active ones from
visibility and the memo (`EXPECTATION_MEMO`), no worker needed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from powertrip.contracts.slack import NoticeMessage
from powertrip.hosts import host_key
from powertrip.models import SecurityEvent
from powertrip.zones import CLOCK_SKEW, UTC_OFFSETS

EXPECTATION_WORKFLOW = "ExpectationWorkflow"
REVOKE_SIGNAL = "revoke"
"""A signed `Revocation`: ends the expectation once the worker verified it."""
EXPECTATION_MEMO = "expectation"
"""Memo key of the `Expectation`, published at start and on every change."""
DEFAULT_MAX_EXPECTATION = timedelta(hours=24)
ID_PREFIX = "powertrip-expect-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ExpectationStatus(StrEnum):
    """`PowertripStatus` of an expectation's workflow."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def expectation_id(actor: str) -> str:
    """A readable, unique workflow id: `powertrip-expect-<actor>-<8 hex>`."""
    return f"{ID_PREFIX}{_UNSAFE.sub('_', actor)[:64]}-{secrets.token_hex(4)}"


class Expectation(BaseModel):
    """Expected work, pre-approved: events of `actor` (on one of `hosts`, of one of `rules`,
    when given) that happen between `created_at` and `until` are approved without asking
    anyone, if they are asked about while it is in force (`covers`)."""

    id: str = Field(description="The workflow id, `powertrip-expect-<actor>-<hex>`.")
    actor: str = Field(description="The account as events name it (`alice`, `deploy`).")
    hosts: list[str] = Field(default_factory=list, description="Empty: any host.")
    rules: list[str] = Field(default_factory=list, description="Rule ids; empty: any rule.")
    until: datetime = Field(description="When it expires (UTC).")
    reason: str
    created_by: str = Field(description="Slack user id of whoever created it.")
    created_at: datetime
    via: str = Field(description="`api`, `slack` or `cli`.")
    operator: str | None = Field(default=None, description="CLI: `user@host` that ran it.")
    nonce: str | None = None
    signature: str | None = Field(default=None, description="`v1=<hex HMAC-SHA256>`.")
    # Set by the workflow, outside the signature.
    status: ExpectationStatus = ExpectationStatus.ACTIVE
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    def covers(self, event: SecurityEvent, at: datetime) -> bool:
        """The event is this actor's, on one of the hosts and of one of the rules (when
        given); it happened within the expectation's span (`happened_within`); and the
        expectation is still in force at `at` (when it is asked about, timezone-aware): active
        and before `until`. Hosts match by their normal form, case-insensitively
        (`powertrip.hosts.host_key`)."""
        if self.status is not ExpectationStatus.ACTIVE or at >= self.until:
            return False
        if not self.happened_within(event, at):
            return False
        if event.actor != self.actor:
            return False
        if self.hosts and (
            event.host is None or host_key(event.host) not in {host_key(h) for h in self.hosts}
        ):
            return False
        return not self.rules or event.rule_id in self.rules

    def happened_within(self, event: SecurityEvent, at: datetime) -> bool:
        """Whether every time `event` may have happened lies within this expectation's span,
        `created_at` to `until`, give or take CLOCK_SKEW (the sender's clock against ours).
        Work expected from now on covers nothing from before (a login three days old, posted
        now), nor anything stamped after `until` or after `at` (when it is asked about) beyond
        the skew: no event is received before it happens, so such a stamp cannot be trusted.

        A stamp without a zone (`time_without_zone`, taken as UTC) is a wall clock in some
        zone (`powertrip.zones.UTC_OFFSETS`, UTC-12 to UTC+14): it may have happened up to
        14 h before it says, or up to 12 h after (but not after `at`). It is covered only
        when all of that lies within the span, so an expectation shorter than about 14 h
        never covers one: its owner is asked."""
        earliest = latest = event.occurred_at
        if event.time_without_zone:
            # The wall clock is UTC + offset: the true time is the stamp minus the offset.
            earliest = event.occurred_at - max(UTC_OFFSETS)
            latest = min(event.occurred_at - min(UTC_OFFSETS), at)
        return (
            self.created_at - CLOCK_SKEW <= earliest <= at + CLOCK_SKEW
            and latest <= self.until + CLOCK_SKEW
        )


def scope_refusal(hosts: Sequence[str], rules: Sequence[str]) -> str | None:
    """Why these `hosts` and `rules` (as given, before any are dropped) would widen an
    expectation by accident, or None. An empty list means any host (any rule): a creator says
    so by giving none, never by giving names that come to nothing, so a blank name (or one whose
    normal form, `powertrip.hosts.host_key`, is empty, like `.`) is refused, not dropped."""
    if any(not host_key(h) for h in hosts):
        return "a host is blank: give host names, or none at all for any host"
    if any(not r.strip() for r in rules):
        return "a rule id is blank: give rule ids, or none at all for any rule"
    return None


def same_here_refusal(event: SecurityEvent) -> str | None:
    """Why "Approve, and expect the same from me here" cannot be offered for `event`, or None.
    "Here" is the event's host: an event that names none (or only a blank one) has no "here",
    and its expectation would cover every host. The DM leaves the button off such an event and
    `services.expectations.expect_the_same` refuses a click on an older message with this."""
    if event.host is None or not host_key(event.host):
        return (
            'the event names no host, so there is no "here" to expect the same on (it would '
            "cover every host): use `/powertrip expect` and name the hosts"
        )
    return scope_refusal([event.host], [event.rule_id])


class Revocation(BaseModel):
    """The `revoke` signal: who ends an expectation, signed like the expectation itself."""

    by: str
    at: datetime
    via: str
    nonce: str | None = None
    signature: str | None = None


class ExpectedApproval(BaseModel):
    """The answer to "is this event expected?": the expectation that approves it."""

    expectation: Expectation
    signer: str = Field(description="Whose key signed it (`api` or `cli`).")


class RevocationCheck(BaseModel):
    """`verify_revocation`'s request."""

    expectation_id: str
    revocation: Revocation


APPROVED_SIGNAL = "approved"
"""An `ExpectedEvent`: `ApprovalWorkflow` tells the expectation which event it approved (for the
security channel's notice and the audit; the event's own record names the expectation too)."""
NOTICE_LISTED = 20
"""Approved events an expectation's notice lists; the rest are counted."""


class ExpectedEvent(BaseModel):
    """One event an expectation approved."""

    event_id: str
    action: str
    host: str | None = None
    at: datetime


class ExpectationNotice(BaseModel):
    """The security channel's one message about an expectation: posted when it starts, updated
    in place (paced) as it approves events, and when it ends."""

    expectation: Expectation
    approved: list[ExpectedEvent] = Field(
        default_factory=list, description=f"The latest {NOTICE_LISTED}."
    )
    total: int = 0
    message: NoticeMessage | None = None
