"""The approval domain shared by the workflow, its activities and the API: who was asked, who may
decide, what happened when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from powertrip.directory import Identity
from powertrip.models import Decision, DecisionKind, EventStatus, SecurityEvent


class Action(StrEnum):
    """What a button (or the CLI) asks the workflow to do."""

    APPROVE = "approve"
    NOT_ME = "not_me"
    ACKNOWLEDGE = "acknowledge"


class Authority(BaseModel):
    """Who may decide an event. Resolved once by the workflow, published in its memo so the API
    can refuse a click at once without a worker."""

    actor_slack_user: str | None = None
    approvers: list[str] = Field(default_factory=list, description="Besides the security team.")
    security_team: list[str] = Field(default_factory=list)

    def may(self, action: Action, status: EventStatus, user: str) -> bool:
        team = user in self.security_team
        if action is Action.ACKNOWLEDGE:
            return team and status is EventStatus.REPORTED
        if status is not EventStatus.PENDING:
            return False
        return (
            team
            or user in self.approvers
            or (self.actor_slack_user is not None and user == self.actor_slack_user)
        )


class Recipient(BaseModel):
    """Whom the first notification goes to."""

    identity: Identity
    slack_user: str | None = Field(default=None, description="DM target; None: security channel.")
    authority: Authority
    note: str | None = Field(default=None, description="Why the channel was asked, if it was.")

    @property
    def asked(self) -> str:
        return f"<@{self.slack_user}>" if self.slack_user else "the security channel"


class Click(BaseModel):
    """A decision request delivered to the workflow as a signal."""

    action: Action
    user: str = Field(description="Slack user id of whoever clicked (or the CLI operator's).")
    at: datetime
    via: str = "slack"
    reason: str | None = None
    response_url: str | None = None


class MessageKind(StrEnum):
    FIRST = "first"
    REMINDER = "reminder"
    INCIDENT = "incident"


class PostedMessage(BaseModel):
    kind: MessageKind
    channel: str = Field(description="The channel id Slack answered with (a D… id for a DM).")
    ts: str
    in_security_channel: bool = False


class TimelineEntry(BaseModel):
    what: str = Field(description="notified, reminded, notify_failed, approved, reported, ...")
    at: datetime
    by: str | None = None
    detail: str | None = None


class EventRecord(BaseModel):
    """Everything a reader needs about one event; the workflow's query answer, memo and result."""

    event: SecurityEvent
    status: EventStatus = EventStatus.PENDING
    recipient: Recipient | None = Field(default=None, description="Who was asked first.")
    decision: Decision | None = None
    report: Decision | None = Field(default=None, description="The *Not me*, if any.")
    timeline: list[TimelineEntry] = Field(default_factory=list)
    messages: list[PostedMessage] = Field(default_factory=list)

    @property
    def authority(self) -> Authority | None:
        return self.recipient.authority if self.recipient else None

    @property
    def asked(self) -> str:
        return self.recipient.asked if self.recipient else "nobody yet"

    @property
    def finished(self) -> bool:
        return self.status in (EventStatus.APPROVED, EventStatus.ACKNOWLEDGED)

    def apply(self, click: Click) -> Decision:
        kind = {
            Action.APPROVE: DecisionKind.APPROVED,
            Action.NOT_ME: DecisionKind.REPORTED,
            Action.ACKNOWLEDGE: DecisionKind.ACKNOWLEDGED,
        }[click.action]
        on_behalf = (
            click.action is Action.APPROVE
            and self.authority is not None
            and click.user != self.authority.actor_slack_user
        )
        decision = Decision(
            kind=kind,
            by=click.user,
            at=click.at,
            via=click.via,
            reason=click.reason,
            on_behalf=on_behalf,
        )
        self.status = EventStatus(kind.value)
        if click.action is Action.NOT_ME:
            self.report = decision
        else:
            self.decision = decision
        self.timeline.append(
            TimelineEntry(what=kind.value, at=click.at, by=click.user, detail=click.reason)
        )
        return decision


class ApprovalInput(BaseModel):
    event: SecurityEvent
    carried: EventRecord | None = Field(
        default=None, description="State handed over by continue-as-new."
    )
    stale: bool = Field(
        default=False,
        description="Found by a backfill long after it happened: no DM and no reminders; the "
        "security channel hears of it once, in the backfill's digest.",
    )
