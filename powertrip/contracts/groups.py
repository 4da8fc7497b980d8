"""`GroupWorkflow`'s contract (issue 13 §1): a burst of like events asked as one question.

Events of the same actor, host, kind and authority shape (who may approve, where the question
goes, step-up) within a grouping window join one group: a `GroupWorkflow` per key, window-sized
time bucket and *slot*, `powertrip-group-<key>-<bucket>-<slot>`, joined by update-with-start
(`JOIN_UPDATE`, conflict policy USE_EXISTING, ids never reused). The update's validator refuses
once the group is decided, full or past its window; the joiner then tries the next slot, up to
`GROUP_SLOTS`, and past them is asked on its own. Every event stays its own `ApprovalWorkflow`
and record; the group asks, reminds and forwards its signed decision to each member.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from pydantic import BaseModel, Field

from powertrip.contracts.approval import ApprovalInput, Recipient
from powertrip.hosts import host_key
from powertrip.models import SecurityEvent

GROUP_WORKFLOW = "GroupWorkflow"
JOIN_UPDATE = "join"
"""A `JoinRequest`; answers `Joined`. Refused (validator) when the group is decided, full, or
past its window: the joiner tries the next slot."""
GROUP_SLOTS = 8
"""Groups per key and time bucket before an event is asked on its own (a decided group is not
joined again: a burst decided early and going on takes the next slot)."""
MAX_MEMBERS = 500
"""A group takes at most this many events: its forward of the decision stays a few hundred
signals (workflow commands), far below Temporal's per-task limits."""
LISTED = 5
"""The latest events the group's message lists; the rest are counted."""
REFRESH_AFTER = timedelta(seconds=3)
"""Joins within this long of each other are shown by one `chat.update` (debounce)."""


class JoinRequest(BaseModel):
    """An event asking to join a group: the event, and whom its workflow resolved to ask."""

    event: SecurityEvent
    recipient: Recipient


class Joined(BaseModel):
    """The group an event joined (`group_id`), or None: asked on its own (grouping off, every
    slot busy)."""

    group_id: str | None = None


class GroupInput(ApprovalInput):
    """`GroupWorkflow`'s input: `event` is its first member's, with the group's id as
    `event_id` (the id every button of its message names); `recipient`: whom its first member
    resolved to ask; `members`: every member's workflow id (handed over by continue-as-new)."""

    recipient: Recipient
    window_seconds: float = Field(gt=0)
    members: list[str] = Field(default_factory=list)


def group_key(event: SecurityEvent, recipient: Recipient, task_queue: str) -> str:
    """The key of the events one answer may decide together: kind (the rule), actor, host,
    and the authority shape (whom the question goes to, who may approve, step-up, urgency and
    escalation policy), on one task queue (the group runs where its members' worker does). 24
    hex digits of its SHA-256."""
    authority = recipient.authority
    shape = {
        "task_queue": task_queue,
        "rule": event.rule_id,
        "kind": event.kind.value,
        "actor": event.actor,
        "host": host_key(event.host) if event.host else None,
        "source": event.source,
        "to": recipient.slack_user,
        "owner": authority.actor_slack_user,
        "approvers": sorted(authority.approvers),
        "actor_may_approve": event.actor_may_approve,
        "extra": sorted(event.extra_approvers),
        "routing": event.routing.value,
        "step_up": event.step_up.value if event.step_up else None,
        "urgency": event.urgency.value,
        "policy": event.escalation_policy().model_dump(mode="json"),
    }
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def group_workflow_id(key: str, bucket: int, slot: int) -> str:
    """`powertrip-group-<key>-<bucket>-<slot>`: never reused, so it names one group."""
    return f"powertrip-group-{key}-{bucket}-{slot}"
