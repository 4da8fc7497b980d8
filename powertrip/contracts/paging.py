"""What a workflow and the paging activities (`activities/pagerduty.py`) exchange: the page to
send, the answer to record, the `dedup_key` that makes a retried page one incident, and the
activity options. Pure: workflow code builds its requests here.

Dedup keys. PagerDuty folds every event with the same `dedup_key` (on the same routing key) into
one open alert: a trigger retried after a timeout, or sent again by a replayed workflow, adds a
log entry to the alert instead of opening a second incident. A key therefore names *one page of
one subject* (an event, or later a group of events): `powertrip/<subject>/<page>`, where `<page>`
is `not-me` for the *Not me* page or `step<N>-<occurrence>` for a policy step. A repeat of a
page gets its own key on purpose: PagerDuty sends no new notification for a trigger on an alert
someone has acknowledged, and a repeat exists to notify again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType, ActivityConfig

from powertrip.escalation import DEFAULT_PAGE_SEVERITY, DueStep, Severity, Urgency, format_duration
from powertrip.models import SecurityEvent

# PagerDuty's limits (Events API v2, "Send an Alert Event").
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_DETAIL = 4096
"""Our own bound on one custom detail (the log line), well inside PagerDuty's 512 KB event."""

NOT_ME_PAGE = "not-me"

# Temporal retries every failed call (a page is never lost): 429 waits its Retry-After, 5xx and
# network errors back off up to 5 minutes; a permanent refusal (bad routing key) fails at once.
PAGING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
PAGING_CALL_TIMEOUT = timedelta(seconds=30)
"""One attempt: the HTTP request (the client gives up after 10 s) and the thread around it."""
PAGING_ACTIVITY = ActivityConfig(
    start_to_close_timeout=PAGING_CALL_TIMEOUT, retry_policy=PAGING_RETRY
)
"""Options for every paging activity: `workflow.execute_activity_method(..., **PAGING_ACTIVITY)`.
No schedule-to-close limit: an outage delays a page; it is never given up."""


def paging_call(summary: str) -> ActivityConfig:
    """`PAGING_ACTIVITY` shown in the Web UI as `summary`. Cancelling it waits until the attempt
    in flight has ended (an activity that never heartbeats learns of the cancellation only
    then): whatever PagerDuty may have taken is settled before the workflow sends the next
    event with the same `dedup_key`, so a resolve can never overtake its trigger."""
    return ActivityConfig(
        **PAGING_ACTIVITY,
        summary=summary,
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


PAGERDUTY_PERMANENT = "PagerDutyPermanentError"
"""The ApplicationError type of a refusal no retry can fix (400, bad routing key, bad URL)."""


class PageAction(StrEnum):
    """PagerDuty's `event_action`."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


def dedup_key(subject_id: str, page: str) -> str:
    """`powertrip/<subject_id>/<page>`, hashed to PagerDuty's 255 characters when longer."""
    key = f"powertrip/{subject_id}/{page}"
    if len(key) <= MAX_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"powertrip/h{digest}/{page[: MAX_DEDUP_KEY - 60]}"


def step_page(due: DueStep) -> str:
    """The `<page>` part of a policy step's key: `step2-0` is step 2's first page."""
    return f"step{due.step}-{due.occurrence}"


class PageTrigger(BaseModel):
    """An alert to open (PagerDuty's trigger event, without the routing key)."""

    subject_id: str = Field(description="The event (or group) id: the Temporal UI link, logs.")
    dedup_key: str = Field(max_length=MAX_DEDUP_KEY)
    summary: str = Field(max_length=MAX_SUMMARY)
    source: str = Field(description="The affected system: the event's host.")
    severity: Severity
    component: str | None = None
    group: str | None = None
    event_class: str | None = Field(default=None, description="PagerDuty's `payload.class`.")
    timestamp: str | None = Field(default=None, description="ISO 8601, when it happened.")
    custom_details: dict[str, Any] = Field(default_factory=dict)


class PageUpdate(BaseModel):
    """Acknowledge or resolve the alert opened with `dedup_key`."""

    subject_id: str
    dedup_key: str = Field(max_length=MAX_DEDUP_KEY)


class PageResult(BaseModel):
    """What the timeline records of one page call: PagerDuty's own answer."""

    action: PageAction
    dedup_key: str
    status: str = Field(description="PagerDuty's `status`: `success`; `skipped` when unset.")
    message: str = Field(description="PagerDuty's `message`, e.g. `Event processed`.")
    http_status: int | None = Field(default=None, description="None when nothing was sent.")

    @property
    def sent(self) -> bool:
        return self.http_status is not None

    def describe(self) -> str:
        """For the timeline: `trigger powertrip/…/step1-0: success (Event processed)`."""
        return f"{self.action.value} {self.dedup_key}: {self.status} ({self.message})"


class PageStatus(StrEnum):
    """Where one page of an event stands (`Page.status`)."""

    SENDING = "sending"
    """Due and started; PagerDuty has not taken it yet (Temporal retries through an outage)."""
    OPEN = "open"
    """PagerDuty accepted the trigger: on-call is being notified."""
    SKIPPED = "skipped"
    """Not sent: no routing key is set (`POWERTRIP_PAGERDUTY_ROUTING_KEY`)."""
    FAILED = "failed"
    """PagerDuty refused it for good (a bad routing key, an invalid event)."""
    CANCELLED = "cancelled"
    """The event was decided while PagerDuty was still failing: the trigger was called off
    (and a resolve sent, in case an attempt got through)."""
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Page(BaseModel):
    """One page the workflow sent, or is sending, about its event (`EventRecord.pages`)."""

    dedup_key: str = Field(max_length=MAX_DEDUP_KEY)
    name: str = Field(description="The key's `<page>` part: `not-me` or `step<N>-<occurrence>`.")
    severity: Severity
    why: str = Field(description="What the summary leads with: `Not me`, `Not decided after 1h`.")
    at: datetime = Field(description="When it fell due and was started (UTC).")
    status: PageStatus = PageStatus.SENDING

    @property
    def not_me(self) -> bool:
        return self.name == NOT_ME_PAGE

    @property
    def reached_pagerduty(self) -> bool:
        """PagerDuty may hold an incident for it: accepted, or called off mid-attempt."""
        return self.status in (
            PageStatus.OPEN,
            PageStatus.ACKNOWLEDGED,
            PageStatus.CANCELLED,
        )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_summary(event: SecurityEvent) -> str:
    """`alice: ssh login (publickey) on bastion from 203.0.113.7`."""
    where = f" on {event.host}" if event.host else ""
    origin = f" from {event.address}" if event.address else ""
    return f"{event.actor}: {event.action}{where}{origin}"


def event_details(event: SecurityEvent) -> dict[str, Any]:
    """The event as PagerDuty's `custom_details`: what on-call needs without opening Slack."""
    details: dict[str, Any] = {
        "event id": event.event_id,
        "rule": f"{event.rule_title} ({event.rule_id})",
        "kind": event.kind.value,
        "actor": event.actor,
        "action": event.action,
        "host": event.host,
        "from": event.address if event.port is None else f"{event.address} port {event.port}",
        "occurred at": event.occurred_at.isoformat(),
        "urgency": event.urgency.value,
        "log line": _clip(event.message, MAX_DETAIL),
    }
    # The rule's own details (command, role, ...) never replace the event's fields.
    details.update({k: _clip(v, MAX_DETAIL) for k, v in event.details.items() if k not in details})
    return {k: v for k, v in details.items() if v not in (None, "")}


def event_trigger(
    event: SecurityEvent,
    *,
    page: str,
    severity: Severity,
    why: str,
    extra: dict[str, Any] | None = None,
) -> PageTrigger:
    """The page about one event: `why` leads the summary (`Undecided for 1h`, `Not me`);
    `extra` adds details (who reported it, who was asked)."""
    return PageTrigger(
        subject_id=event.event_id,
        dedup_key=dedup_key(event.event_id, page),
        summary=_clip(f"Powertrip: {why}: {event_summary(event)}", MAX_SUMMARY),
        source=event.host or event.source,
        severity=severity,
        component=event.rule_id,
        group="powertrip",
        event_class=event.kind.value,
        timestamp=event.occurred_at.isoformat(),
        custom_details={"why": why, **event_details(event), **(extra or {})},
    )


GROUP_EVENTS_SHOWN = 10
"""A group's page lists its latest events; the rest are counted."""


def group_trigger(
    group_id: str,
    events: Sequence[SecurityEvent],
    *,
    page: str,
    severity: Severity,
    why: str,
) -> PageTrigger:
    """The page about a group of events (one question for a burst, issue 13): keyed by the
    group's id, summarised as `alice on bastion: 20 events (sudo as root, ...)`, the latest
    `GROUP_EVENTS_SHOWN` listed in the details. Raises ValueError for an empty group."""
    if not events:
        raise ValueError(f"group {group_id!r} has no events to page about")
    ordered = sorted(events, key=lambda e: e.occurred_at)
    first, last = ordered[0], ordered[-1]
    actors = sorted({e.actor for e in ordered})
    hosts = sorted({e.host for e in ordered if e.host})
    actions = list(dict.fromkeys(e.action for e in ordered))
    who = ", ".join(actors)
    where = f" on {', '.join(hosts)}" if hosts else ""
    listed = ", ".join(actions[:3]) + (", ..." if len(actions) > 3 else "")
    summary = f"Powertrip: {why}: {who}{where}: {len(ordered)} events ({listed})"
    latest = ordered[-GROUP_EVENTS_SHOWN:]
    details: dict[str, Any] = {
        "why": why,
        "group id": group_id,
        "events": len(ordered),
        "first at": first.occurred_at.isoformat(),
        "last at": last.occurred_at.isoformat(),
        "urgency": max((e.urgency for e in ordered), key=[Urgency.LOW, Urgency.HIGH].index).value,
        "latest": [
            {
                "event id": e.event_id,
                "at": e.occurred_at.isoformat(),
                "action": e.action,
                "log line": _clip(e.message, 512),
            }
            for e in reversed(latest)
        ],
    }
    if len(ordered) > len(latest):
        details["not listed"] = len(ordered) - len(latest)
    return PageTrigger(
        subject_id=group_id,
        dedup_key=dedup_key(group_id, page),
        summary=_clip(summary, MAX_SUMMARY),
        source=hosts[0] if len(hosts) == 1 else (first.host or first.source),
        severity=severity,
        component=first.rule_id,
        group="powertrip",
        event_class=first.kind.value,
        timestamp=last.occurred_at.isoformat(),
        custom_details=details,
    )


def not_me_trigger(event: SecurityEvent, reported_by: str, reason: str | None) -> PageTrigger:
    """A *Not me*: critical, at once, whatever the policy."""
    extra = {"reported by": reported_by, **({"reason": reason} if reason else {})}
    return event_trigger(
        event, page=NOT_ME_PAGE, severity=Severity.CRITICAL, why="Not me", extra=extra
    )


def undecided_trigger(event: SecurityEvent, due: DueStep, waited: timedelta) -> PageTrigger:
    """A policy step's page: nobody with authority has decided after `waited`."""
    why = f"Not decided after {format_duration(waited)}"
    if due.occurrences != 1:
        why += f" (page {due.describe().removeprefix('page ')})"
    return event_trigger(
        event,
        page=step_page(due),
        severity=due.severity or DEFAULT_PAGE_SEVERITY,
        why=why,
        extra={"deferred to business hours": True} if due.deferred else None,
    )
