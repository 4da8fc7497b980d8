"""`ApprovalWorkflow`'s contract: the event record it keeps (its memo, query answer and result),
who may decide, the decision signal, and what its activities are asked and answer.

The record is read by the API, the CLI and the HIDS from the memo (`RECORD_MEMO`) with no worker;
the same model is what the Slack activities render. Clients reach the workflow by the names
below (`APPROVAL_WORKFLOW`, `DECIDE_SIGNAL`, `STATE_QUERY`), never by importing the class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from powertrip.config import DEFAULT_CONTEST_WINDOW
from powertrip.contracts.paging import Page, PageResult
from powertrip.directory import Identity
from powertrip.escalation import TakenStep
from powertrip.models import (
    CredentialRef,
    Decision,
    DecisionKind,
    EventStatus,
    SecurityEvent,
    StepUpMethod,
    user_label,
)

APPROVAL_WORKFLOW = "ApprovalWorkflow"
DECIDE_SIGNAL = "decide"
"""A `Click`: durable even with no worker running; it counts once verified."""
STATE_QUERY = "state"
"""The `EventRecord` (needs a worker; readers use the memo instead)."""
SIGNALS_PER_RUN = 2_000
"""`ApprovalInput.signals_per_run`'s default: a fifth of the per-run signal limit past which
Temporal refuses signals (`history.maximumSignalsPerExecution`, 10,000 by default on the dev
server and a self-hosted cluster), so a run that keeps up with a flood continues as new long
before it. Temporal's own suggestion to continue (`limit.historyCount.suggestContinueAsNew`,
4,096 history events) is honoured as well."""
RECORD_MEMO = "record"
"""Memo key of the `EventRecord`, published on every change."""
CONTENT_MEMO = "content"
"""Memo key of the record's content digest (`powertrip.identity.content_digest`), set at start."""


class TimelineKind(StrEnum):
    """What a timeline entry records (`TimelineEntry.what`)."""

    RECEIVED = "received"
    NOTIFIED = "notified"
    """The first question was posted (`detail`: to whom)."""
    REMINDED = "reminded"
    NOTIFY_FAILED = "notify_failed"
    """A Slack call failed for good this cycle (`detail`: which and why)."""
    APPROVED = "approved"
    REPORTED = "reported"
    """*Not me*: the owner (or the team) reported the event."""
    ACKNOWLEDGED = "acknowledged"
    REFUSED = "refused"
    """A decision by someone without authority: changed nothing."""
    REJECTED = "rejected"
    """A decision that failed verification (unsigned, forged, replayed): changed nothing."""
    TRACES_CAPPED = "traces_capped"
    STALE = "stale"
    """Found by a backfill long after it happened: no DM, no reminders."""
    CONTEST_CLOSED = "contest_closed"
    """The owner did not report an approval on their behalf within the contest window."""
    PAGED = "paged"
    """PagerDuty took a page (`page`: its answer; `detail`: why the page was sent)."""
    PAGE_SKIPPED = "page_skipped"
    """A page fell due but was not sent: no routing key is set."""
    PAGE_FAILED = "page_failed"
    """PagerDuty refused a page, an acknowledgement or a resolve for good (`detail`: why)."""
    PAGE_CANCELLED = "page_cancelled"
    """The event was decided before PagerDuty (failing until then) took the page."""
    PAGE_ACKNOWLEDGED = "page_acknowledged"
    """The security team acknowledged a *Not me* in Slack; PagerDuty's answer in `page`."""
    PAGE_RESOLVED = "page_resolved"
    """The event was decided; PagerDuty's answer in `page`."""
    GROUPED = "grouped"
    """The event joined a group's one question (`detail`: `group: <id>`); the group asks,
    reminds and forwards its decision."""


class Action(StrEnum):
    """What a button (or the CLI) asks the workflow to do."""

    APPROVE = "approve"
    REPORT = "not_me"
    """*Not me*: report the event (the status becomes `reported`). The value is the wire form
    of Slack's `action_id` on buttons already posted and of signed decisions: it stays."""
    ACKNOWLEDGE = "acknowledge"


class Authority(BaseModel):
    """Who may decide an event. Resolved once by the workflow, published in its memo so the API
    can refuse a click at once without a worker."""

    actor_slack_user: str | None = None
    approvers: list[str] = Field(default_factory=list, description="Besides the security team.")
    security_team: list[str] = Field(default_factory=list)
    names: dict[str, str] = Field(
        default_factory=dict,
        description="Slack user id -> user name, for the people above whose name Slack gave.",
    )
    contest_window_seconds: float | None = Field(
        default=None,
        description="How long the owner may still report an approval on their behalf as *Not "
        "me* (the config's `contest_window`); None: DEFAULT_CONTEST_WINDOW.",
    )

    @property
    def contest_window(self) -> timedelta:
        if self.contest_window_seconds is None:
            return DEFAULT_CONTEST_WINDOW
        return timedelta(seconds=self.contest_window_seconds)

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
        """Slack mrkdwn: a mention Slack shows as the person's name."""
        return f"<@{self.slack_user}>" if self.slack_user else "the security channel"

    @property
    def asked_label(self) -> str:
        """Plain text for the CLI and the API: `@alice (U0ALICE)` when Slack gave a name."""
        if self.slack_user is None:
            return "the security channel"
        return label(self.slack_user, self.authority.names)


def label(user: str, names: dict[str, str]) -> str:
    """A Slack user as plain text: `@name (id)` when the name is known, else the id."""
    return user_label(user, names.get(user))


class Click(BaseModel):
    """A decision request delivered to the workflow as the `decide` signal.

    Signed by the component that verified the human (the API after Slack's signature, the CLI
    with the decision key): `powertrip.signing.sign` sets `nonce` and `signature` over every
    field but `signature` and `response_url`. The workflow verifies it before it counts.
    """

    action: Action
    user: str = Field(description="Slack user id of whoever clicked (or the CLI operator's).")
    at: datetime = Field(description="When the API or CLI signed it (UTC).")
    via: str = Field(default="slack", description="`slack` or `cli`.")
    reason: str | None = None
    response_url: str | None = None
    name: str | None = Field(default=None, description="The clicker's Slack user name.")
    operator: str | None = Field(
        default=None, description="CLI: the operating-system user and host, `user@host`."
    )
    refused: str | None = Field(
        default=None,
        description="Refused by the API or CLI (why, in words): recorded in the timeline, "
        "changes nothing.",
    )
    nonce: str | None = Field(default=None, description="Random; the workflow takes each once.")
    signature: str | None = Field(default=None, description="`v1=<hex HMAC-SHA256>`.")
    step_up: StepUpMethod | None = Field(
        default=None,
        description="`passkey`: the API checked the approver's passkey on the step-up page "
        "(powertrip.services.stepup) before signing this approval.",
    )
    credential: CredentialRef | None = Field(
        default=None, description="The passkey the approver stepped up with."
    )
    shown: int | None = Field(
        default=None,
        description="A group's question: how many events the clicked message listed (its "
        "decision block's id, `decision_block_id`). An approval is refused while more have "
        "joined: nobody approves a login they were not shown.",
    )

    @property
    def stepped_up(self) -> str:
        """`with passkey 'MacBook' (id)` for the record, or '' for a plain click."""
        if self.step_up is None:
            return ""
        if self.credential is None:
            return f"with {self.step_up.value}"
        return (
            f"with {self.step_up.value} {self.credential.label!r} "
            f"({self.credential.credential_id[:16]})"
        )


DECISION_BLOCK = "decision"


def decision_block_id(shown: int | None) -> str:
    """The block id of a message's decision buttons: `decision`, or on a group's question
    `decision-<n>`, `n` the events the message lists. Slack sends it back with each click
    (`block_actions`' `actions[].block_id`), so the click says what its message showed."""
    return DECISION_BLOCK if shown is None else f"{DECISION_BLOCK}-{shown}"


def shown_in(block_id: object) -> int | None:
    """The events a clicked group question listed, from its decision block's id; None for any
    other block id (an event's own question, a message from before the count was kept)."""
    prefix = f"{DECISION_BLOCK}-"
    if isinstance(block_id, str) and block_id.startswith(prefix):
        count = block_id.removeprefix(prefix)
        if count.isascii() and count.isdigit() and len(count) <= 6:
            return int(count)
    return None


def unseen_refusal(unseen: int, click: Click) -> str:
    """Why an approval of a group's question is refused: `unseen` events joined after the
    message it was pressed on was drawn (`EventRecord.shown_refusal`)."""
    events = "event" if unseen == 1 else "events"
    return (
        f"{unseen} more {events} joined this question after the message you pressed listed "
        f"{click.shown}"
    )


class MessageKind(StrEnum):
    """What a message the workflow posted is (`PostedMessage.kind`)."""

    FIRST = "first"
    """The question: a DM to the owner, or the security channel."""
    REMINDER = "reminder"
    REPORT = "incident"
    """The alert to the security channel after a report (*Not me*). The value is what memos
    and histories hold: it stays."""


class PostedMessage(BaseModel):
    """Where Slack put a message the workflow posted (to update it later, and to check that a
    click came from one of the event's own messages)."""

    kind: MessageKind
    channel: str = Field(description="The channel id Slack answered with (a D… id for a DM).")
    ts: str
    in_security_channel: bool = False


class TimelineEntry(BaseModel):
    """One line of the event's timeline: what happened, when (UTC), by whom (a Slack user id)."""

    what: TimelineKind = Field(
        description="received, notified, reminded, notify_failed, approved, reported, "
        "acknowledged, refused (a click without authority), rejected (a decision that failed "
        "verification), traces_capped, stale, contest_closed; paged, page_skipped, "
        "page_failed, page_cancelled, page_acknowledged, page_resolved (PagerDuty)."
    )
    at: datetime
    by: str | None = None
    detail: str | None = None
    name: str | None = Field(default=None, description="`by`'s Slack user name, when known.")
    page: PageResult | None = Field(
        default=None, description="PagerDuty's answer, for the page_* kinds and paged."
    )

    @property
    def who(self) -> str | None:
        return user_label(self.by, self.name) if self.by else None


@dataclass(frozen=True)
class Refusal:
    """Why a click does not count, naming who may do it."""

    text: str
    """For Slack: people as mentions, which Slack shows as their names."""
    plain: str
    """For the timeline, the CLI and the API: people as `@name (id)`."""
    stale: bool = False
    """The event is past this action (already decided), rather than the clicker lacking it."""


_DOING = {
    Action.APPROVE: "approve this event",
    Action.REPORT: "report this event as “Not me”",
    Action.ACKNOWLEDGE: "acknowledge this incident",
}


def slack_mention(user: str) -> str:
    return f"<@{user}>"


class Member(BaseModel):
    """One event of a group, as the group's message lists it."""

    event_id: str
    action: str
    detail: str | None = Field(
        default=None, description="What it did beyond the action (a sudo command), if known."
    )
    occurred_at: datetime
    address: str | None = Field(
        default=None,
        description="Where it came from (the event's `address`), if known; None also for a "
        "member recorded before members kept it.",
    )

    @classmethod
    def of(cls, event: SecurityEvent) -> Member:
        """`event` as its group's message lists it: the action, the first detail the rule
        extracted (a sudo command), when, and from where."""
        return cls(
            event_id=event.event_id,
            action=event.action,
            detail=next(iter(event.details.values()), None),
            occurred_at=event.occurred_at,
            address=event.address,
        )


class Burst(BaseModel):
    """The events that joined a group's question: how many, since when, the latest few."""

    members: int = 0
    since: datetime | None = Field(default=None, description="When the first one happened.")
    latest: list[Member] = Field(default_factory=list, description="The latest few, oldest first.")


class EventRecord(BaseModel):
    """Everything a reader needs about one event; the workflow's query answer, memo and result."""

    event: SecurityEvent
    status: EventStatus = EventStatus.PENDING
    recipient: Recipient | None = Field(default=None, description="Who was asked first.")
    decision: Decision | None = None
    report: Decision | None = Field(default=None, description="The *Not me*, if any.")
    contested: Decision | None = Field(
        default=None, description="The approval on behalf that the owner's *Not me* overruled."
    )
    contest_until: datetime | None = Field(
        default=None,
        description="Approved on the owner's behalf: until then the owner may still say *Not "
        "me* (the workflow stays open and their DM keeps the button).",
    )
    timeline: list[TimelineEntry] = Field(default_factory=list)
    messages: list[PostedMessage] = Field(default_factory=list)
    nonces: list[str] = Field(
        default_factory=list, description="Nonces of the verified decisions taken (each once)."
    )
    asked_at: datetime | None = Field(
        default=None,
        description="When the escalation policy's clock started: the question was asked (or "
        "the channel told, for a stale event). None: before policies drove the workflow.",
    )
    taken: list[TakenStep] = Field(
        default_factory=list,
        description="Every step of the escalation policy taken so far (reminders and pages).",
    )
    pages: list[Page] = Field(
        default_factory=list,
        description="Every page sent, or being sent, about the event, and where each stands.",
    )
    group: str | None = Field(
        default=None,
        description="The group (its workflow id) whose one question this event joined: the "
        "group's decision, signed for the group, decides it. None: asked on its own.",
    )
    burst: Burst | None = Field(
        default=None,
        description="A group's own record: the events that joined its question (the message "
        "shows them). None for an event's record.",
    )

    @property
    def authority(self) -> Authority | None:
        return self.recipient.authority if self.recipient else None

    def needs_step_up(self, click: Click) -> bool:
        """An approval of a step-up event (`event.step_up`) without the step-up: it does not
        count (the API answers *Approve* with a one-time link instead). *Not me* and
        *Acknowledge* never need one: reporting stays one click."""
        return (
            self.event.step_up is not None
            and click.action is Action.APPROVE
            and click.step_up is None
        )

    @property
    def asked(self) -> str:
        return self.recipient.asked if self.recipient else "nobody yet"

    @property
    def finished(self) -> bool:
        return self.status in (EventStatus.APPROVED, EventStatus.ACKNOWLEDGED)

    def label(self, user: str) -> str:
        """A Slack user as plain text for the record (`@alice (U0ALICE)` or the id)."""
        return label(user, self.authority.names if self.authority else {})

    def contestable_by(self, user: str) -> bool:
        """The owner may still say *Not me* about an approval made on their behalf."""
        authority = self.authority
        return (
            self.contest_until is not None
            and authority is not None
            and user == authority.actor_slack_user
        )

    def may(self, action: Action, user: str) -> bool:
        """Whether `user` may take `action` now: the authority's rules, and the owner's *Not me*
        during the contest window after an approval on their behalf."""
        authority = self.authority
        if authority is None:
            return False
        if authority.may(action, self.status, user):
            return True
        return action is Action.REPORT and self.contestable_by(user)

    def shown_refusal(self, click: Click) -> str | None:
        """Why the Slack approval `click` of this group's question is refused for what its
        message listed, or None: the message must say how many events it listed
        (`Click.shown`, from `decision_block_id`), and that must be every event that has joined.
        A click on a message drawn before the count was kept, or naming more events than ever
        joined, approves nothing it cannot show. Not a group's question, not an approval, or the
        security team's CLI override (which approves the group as it is): None."""
        if self.burst is None or click.action is not Action.APPROVE or click.via != "slack":
            return None
        members = self.burst.members
        if click.shown is None:
            return (
                "the message you pressed does not say how many events it listed (it was drawn "
                "before Powertrip counted them)"
            )
        if click.shown > members:
            return (
                f"the message you pressed cannot have listed {click.shown} events: {members} joined"
            )
        if click.shown < members:
            return unseen_refusal(members - click.shown, click)
        return None

    def refusal(self, action: Action, user: str) -> Refusal | None:
        """None if `user` may take `action` now; otherwise what to tell them, naming who may."""
        if self.may(action, user):
            return None
        text, stale = self._refused(action, user, slack_mention)
        return Refusal(text=text, plain=self._refused(action, user, self.label)[0], stale=stale)

    def _refused(
        self, action: Action, user: str, mention: Callable[[str], str]
    ) -> tuple[str, bool]:
        authority = self.authority or Authority()
        doing = _DOING[action]
        if action is Action.ACKNOWLEDGE and self.status is EventStatus.REPORTED:
            reporter = self.report is not None and self.report.by == user
            return (
                "Only the security team can acknowledge this incident"
                + ("; you reported it, and they have been alerted." if reporter else "."),
                False,
            )
        if action is Action.ACKNOWLEDGE and self.status is EventStatus.PENDING:
            return "There is no incident to acknowledge: nobody has reported this event.", True
        if action is Action.REPORT and self.contest_until is not None:
            owner = authority.actor_slack_user
            return f"Only {mention(owner) if owner else 'the owner'} can still {doing}.", False
        if self.status is not EventStatus.PENDING:
            text = f"This event is already {self.status.value}."
            if (
                action is Action.REPORT
                and user == authority.actor_slack_user
                and self.decision is not None
                and self.decision.on_behalf
            ):
                text += (
                    " It was approved on your behalf and the time to report it has passed: if it "
                    "was not you, tell the security team at once."
                )
            return text, True
        people = [mention(u) for u in [authority.actor_slack_user, *authority.approvers] if u]
        who = ", ".join(people[:-1]) + f" or {people[-1]}" if len(people) > 1 else "".join(people)
        who = f"{who} or the security team" if who else "the security team"
        return f"You are not allowed to {doing}: only {who} can.", False

    def apply(self, click: Click, received_at: datetime | None = None) -> Decision:
        """Record `click` as the decision. `received_at`: the workflow's time of receipt of a
        verified click, which becomes the decision's time (None: an unverified click of a
        workflow started before decisions were signed, recorded as it always was)."""
        kind = {
            Action.APPROVE: DecisionKind.APPROVED,
            Action.REPORT: DecisionKind.REPORTED,
            Action.ACKNOWLEDGE: DecisionKind.ACKNOWLEDGED,
        }[click.action]
        on_behalf = (
            click.action is Action.APPROVE
            and self.authority is not None
            and click.user != self.authority.actor_slack_user
        )
        verified = received_at is not None
        at = received_at or click.at
        decision = Decision(
            kind=kind,
            by=click.user,
            at=at,
            via=click.via,
            reason=click.reason,
            on_behalf=on_behalf,
            name=click.name if verified else None,
            operator=click.operator if verified else None,
            requested_at=click.at if verified else None,
            authenticated=verified,
            step_up=click.step_up if verified else None,
            credential=click.credential if verified else None,
        )
        self.status = EventStatus(kind.value)
        if click.action is Action.REPORT:
            if self.decision is not None and self.contest_until is not None:
                # The owner contests an approval made on their behalf: it no longer stands.
                self.contested, self.decision = self.decision, None
            self.contest_until = None
            self.report = decision
        else:
            self.decision = decision
        run_by = f"run by {click.operator}" if verified and click.operator else None
        stepped_up = click.stepped_up if verified else None
        self.timeline.append(
            TimelineEntry(
                what=TimelineKind(kind.value),
                at=at,
                by=click.user,
                name=decision.name,
                detail="; ".join(d for d in (click.reason, run_by, stepped_up) if d) or None,
            )
        )
        return decision


class ApprovalInput(BaseModel):
    """`ApprovalWorkflow`'s input: the event, and what continue-as-new hands over."""

    event: SecurityEvent
    carried: EventRecord | None = Field(
        default=None, description="State handed over by continue-as-new."
    )
    stale: bool = Field(
        default=False,
        description="Found by a backfill long after it happened: no DM and no reminders; the "
        "security channel hears of it once, in the backfill's digest.",
    )
    signals_per_run: int = Field(
        default=SIGNALS_PER_RUN,
        gt=0,
        description="Continue as new once this run has received this many signals (and Temporal "
        "has not suggested it sooner): below the server's per-run signal limit, so a flood of "
        "`decide` signals can never make Temporal refuse the owner's *Not me*.",
    )
    next_reminder_at: datetime | None = Field(
        default=None,
        description="Handed over by continue-as-new: when the next reminder is due (None: "
        "`renotify_after` from the start of the run), so a run continued early by a flood of "
        "signals does not put the reminder off.",
    )
    handed_off: str | None = Field(
        default=None,
        description="Handed over by continue-as-new: the cycle of the reminder last handed to "
        "the digest, so the digest's answer to post it after all still counts.",
    )


class PostRequest(BaseModel):
    """The Slack activity `post_notification`: a first question, reminder or incident alert
    about `record` (`to_user`: a DM; None: the security channel)."""

    record: EventRecord
    kind: MessageKind
    to_user: str | None = None
    waited_seconds: float = 0.0
    thread_ts: str | None = None
    broadcast: bool = False
    note: str | None = None
    key: str | None = Field(
        default=None,
        description="Names this post in its message's metadata, the same in every attempt "
        "(None: the scheduled activity's own id). A local activity's id changes when its "
        "retry waits on a timer, so a post made as one names itself.",
    )
    scheduled_at: datetime | None = Field(
        default=None,
        description="The workflow's time in the task that scheduled this post: the same in "
        "every attempt, and in a rerun of that task. None: the activity's own scheduled time "
        "(a local activity's changes when its retry waits on a timer).",
    )
    look_first: bool = Field(
        default=False,
        description="The task that scheduled it is being tried again, and a lost run of it may "
        "have posted it: look for it before posting, on the first attempt too.",
    )
    give_up_at: datetime | None = Field(
        default=None,
        description="When the post as a whole gives up: a local activity's, which goes on as "
        "an activity when its own short schedule-to-close runs out. A post waiting for its "
        "channel's turn is made late rather than given up, counting from this. None: from "
        "this activity's own schedule-to-close timeout.",
    )


class UpdateRequest(BaseModel):
    """The Slack activity `update_message`: show `record`'s outcome on `message`."""

    record: EventRecord
    message: PostedMessage


class VerifyRequest(BaseModel):
    """What the workflow asks its worker to check: a click, for the event it was sent to."""

    event_id: str = Field(description="The workflow's own id, never one the click names.")
    click: Click


class VerifyBatch(BaseModel):
    """What the workflow asks its worker to check at once (the local activity
    `verify_decisions`): the signed clicks waiting, for the event they were sent to."""

    event_id: str = Field(description="The workflow's own id, never one a click names.")
    clicks: list[Click]


class Verdict(BaseModel):
    """The local activity `verify_decision`'s answer (recorded in history; the key is not)."""

    authentic: bool
    reason: str | None = Field(default=None, description="Why not, when not authentic.")
    signer: str | None = Field(
        default=None,
        description="Whose key signed it, when authentic: `api` or `cli` (None in verdicts "
        "recorded before each signer had its own key).",
    )


class Verdicts(BaseModel):
    """`verify_decisions`' answer: one verdict per click, in the batch's order."""

    verdicts: list[Verdict]
