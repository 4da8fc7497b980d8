"""The HIDS question: was *this* login approved? Answered from visibility and the events' memos,
with no worker (`match`); `GET /v1/approvals/match` and the batch form call it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field
from temporalio.client import Client

from powertrip import temporal as attributes
from powertrip.contracts.approval import EventRecord
from powertrip.hosts import HostMatch
from powertrip.identity import same_action, same_address
from powertrip.models import DecisionKind, EventKind, EventStatus, SecurityEvent
from powertrip.services.views import page_of, record_of
from powertrip.visibility import EventFilter, RecordError, literal
from powertrip.webui import WebUi

MATCH_LIMIT = 100
MAX_MATCH_WINDOW = timedelta(days=1)


class Answer(StrEnum):
    """The HIDS's answer about one login."""

    APPROVED = "approved"
    REPORTED = "reported"
    PENDING = "pending"
    AMBIGUOUS = "ambiguous"
    NOT_FOUND = "not_found"


# Without a source port, only an event this close to `at` can be the login asked about: the HIDS
# and the log line read the same clock, and a provider's receive time lags it by a second or two.
TOLERANCE_WITHOUT_PORT = timedelta(seconds=5)
# With address and port, the TCP connection pins the login; the provider's time may lag more.
TOLERANCE_WITH_PORT = timedelta(minutes=2)


class MatchQuestion(BaseModel):
    """One HIDS question: was *this* login approved? See `match` for how it is answered."""

    host: str = Field(description="Host name as the HIDS knows it; case is ignored.")
    user: str = Field(description="The unix user who logged in, exactly.")
    at: datetime = Field(description="When the login happened (the log line's time).")
    window: timedelta = Field(
        default=timedelta(minutes=5),
        description="Events this far either side of `at` are listed, and a *Not me* among them "
        "makes the answer `reported`.",
    )
    host_match: HostMatch = Field(
        default=HostMatch.FQDN, description="`fqdn` (full name) or `short` (first label)."
    )
    kind: EventKind = Field(default=EventKind.LOGIN, description="Only events of this kind answer.")
    address: str | None = Field(
        default=None, description="Source address the HIDS saw; only an event from it answers."
    )
    port: int | None = Field(
        default=None, ge=0, le=65535, description="Source port; only an event with it answers."
    )
    tolerance: timedelta | None = Field(
        default=None,
        description="How far from `at` the event that *is* this login may lie; default 5 s, "
        "or 2 min when `address` and `port` are given. At most `window`.",
    )

    @property
    def pinned(self) -> bool:
        """Address and port given: the question names one TCP connection."""
        return self.address is not None and self.port is not None

    def effective_tolerance(self) -> timedelta:
        """How far from `at` this login may lie (RecordError when negative)."""
        default = TOLERANCE_WITH_PORT if self.pinned else TOLERANCE_WITHOUT_PORT
        tolerance = default if self.tolerance is None else self.tolerance
        if tolerance < timedelta(0):
            raise RecordError("tolerance must not be negative")
        return min(tolerance, self.window)

    def filters(self) -> EventFilter:
        """Every event of this user on this host in the window (RecordError for a window over
        a day)."""
        if self.window <= timedelta(0) or self.window > MAX_MATCH_WINDOW:
            raise RecordError("window must be more than 0 and at most 1 day")
        return self.around(self.window)

    def around(self, reach: timedelta) -> EventFilter:
        """Every event of this user on this host within `reach` of `at`."""
        return EventFilter(
            actor=self.user,
            host=self.host,
            host_match=self.host_match,
            since=self.at - reach,
            until=self.at + reach + timedelta(microseconds=1),
        )

    def is_this_login(self, event: SecurityEvent) -> bool:
        """Kind, address and port as asked (an event that logged no port cannot match a port),
        and close enough in time."""
        if event.kind is not self.kind:
            return False
        if self.address is not None and not same_address(event.address, self.address):
            return False
        if self.port is not None and event.port != self.port:
            return False
        return abs(event.occurred_at - self.at) <= self.effective_tolerance()


class MatchedEvent(BaseModel):
    """One event of the user on the host near `at`, as the HIDS sees it."""

    event_id: str = Field(description="The event (and Temporal workflow) id.")
    status: EventStatus = Field(description="pending, approved, reported or acknowledged.")
    kind: EventKind = Field(description="login, privilege, change or other.")
    this_login: bool = Field(
        description="Kind, address, port and time fit the question: this event may be the login "
        "asked about. Others are listed for context only."
    )
    host: str | None = Field(description="Host as the log provider named it.")
    actor: str = Field(description="The user who logged in.")
    action: str = Field(description="What happened, e.g. `ssh login (publickey)`.")
    address: str | None = Field(description="Source address, if logged.")
    port: int | None = Field(description="Source port, if logged.")
    occurred_at: datetime = Field(description="When it happened.")
    offset_seconds: float = Field(description="`occurred_at` minus the asked `at`, in seconds.")
    approved_by: str | None = Field(description="Slack user id of the approver, if approved.")
    approved_at: datetime | None = Field(description="When it was approved.")
    approved_via: str | None = Field(description="`slack` or `cli` (security-team override).")
    on_behalf: bool = Field(description="Approved by the security team for someone else.")
    approved_step_up: str | None = Field(
        default=None,
        description="`passkey` when the approval was confirmed with the approver's passkey.",
    )
    reported_by: str | None = Field(description="Who said *Not me*, if anyone.")
    reported_at: datetime | None = Field(description="When *Not me* was said.")
    temporal_url: str = Field(description="The event in the Temporal Web UI.")

    @classmethod
    def of(cls, record: EventRecord, question: MatchQuestion, ui: WebUi) -> MatchedEvent:
        # Straight from the memo record, not via EventView: this is the HIDS's hot path.
        """From an event's record (the memo), for `question`."""
        event, decision, report = record.event, record.decision, record.report
        approval = decision if decision and decision.kind is DecisionKind.APPROVED else None
        return cls(
            event_id=event.event_id,
            status=record.status,
            kind=event.kind,
            this_login=question.is_this_login(event),
            host=event.host,
            actor=event.actor,
            action=event.action,
            address=event.address,
            port=event.port,
            occurred_at=event.occurred_at,
            offset_seconds=(event.occurred_at - question.at).total_seconds(),
            approved_by=approval.by if approval else None,
            approved_at=approval.at if approval else None,
            approved_via=approval.via if approval else None,
            on_behalf=approval.on_behalf if approval else False,
            approved_step_up=approval.step_up.value if approval and approval.step_up else None,
            reported_by=report.by if report else None,
            reported_at=report.at if report else None,
            temporal_url=ui.workflow_url(event.event_id),
        )


class MatchAnswer(BaseModel):
    """The answer to one HIDS question, with every event that was considered."""

    approved: bool = Field(
        description="True only when exactly one login fits the question (kind, address and port "
        "as asked, within `tolerance_seconds` of `at`), it was approved, and no event of this "
        "user on this host in the window was reported *Not me*: the HIDS may auto-approve it."
    )
    answer: Answer = Field(
        description="approved; reported (a *Not me* in the window: treat as an incident); "
        "pending (this login is known, not decided yet: ask again later); ambiguous (more than "
        "one login fits: send `address` and `port`); not_found (Powertrip has no record of "
        "this login; `events` may list others nearby)."
    )
    host: str = Field(description="The host asked about.")
    user: str = Field(description="The user asked about.")
    at: datetime = Field(description="The time asked about.")
    kind: EventKind = Field(description="The kind of event asked about.")
    address: str | None = Field(description="The source address asked about, if any.")
    port: int | None = Field(description="The source port asked about, if any.")
    window_seconds: float = Field(description="The window used, in seconds either side of `at`.")
    tolerance_seconds: float = Field(description="How far from `at` this login may lie.")
    host_match: HostMatch = Field(description="The host comparison used.")
    events: list[MatchedEvent] = Field(
        description="Every event of this user on this host in the window (any kind), nearest "
        "to `at` first; `this_login` marks those that fit the question."
    )
    truncated: bool = Field(description=f"More than {MATCH_LIMIT} events matched; narrow it.")


def answer_for(events: Sequence[MatchedEvent], records: dict[str, EventRecord]) -> Answer:
    """A *Not me* anywhere in the window wins: never auto-approve beside a reported login.
    Otherwise the events that fit the question, copies of one action (powertrip.identity)
    counted as one login: none is `not_found`, several `ambiguous`, one is `approved` if any
    copy of it was approved, else `pending`."""
    if any(e.status in (EventStatus.REPORTED, EventStatus.ACKNOWLEDGED) for e in events):
        return Answer.REPORTED
    fitting = [e for e in events if e.this_login]
    logins: list[list[MatchedEvent]] = []
    for event in fitting:
        for login in logins:
            if same_action(records[event.event_id].event, records[login[0].event_id].event):
                login.append(event)
                break
        else:
            logins.append([event])
    if not logins:
        return Answer.NOT_FOUND
    if len(logins) > 1:
        return Answer.AMBIGUOUS
    [login] = logins
    return (
        Answer.APPROVED
        if any(e.status is EventStatus.APPROVED for e in login)
        else (Answer.PENDING)
    )


async def _beyond_the_page(client: Client, question: MatchQuestion) -> list[EventRecord]:
    """More events matched than one page holds, in visibility's order (not nearness): the page
    may lack a *Not me* or an event that fits the question. Two narrow lookups find any event
    that would change the answer."""
    status = attributes.STATUS.name
    reported = (
        f"{question.filters().query()} AND "
        f"{status} IN ({literal(EventStatus.REPORTED)}, {literal(EventStatus.ACKNOWLEDGED)})"
    )
    near = question.around(question.effective_tolerance()).query()
    found = []
    for query, size in ((reported, 1), (near, MATCH_LIMIT)):
        executions, _ = await page_of(client, query, size, token=None)
        found += [r for r in [await record_of(client, info) for info in executions] if r]
    return found


async def match(client: Client, question: MatchQuestion, ui: WebUi) -> MatchAnswer:
    """Answer one HIDS question from visibility and the events' memos (no worker needed)."""
    question.effective_tolerance()  # refuse a bad tolerance before asking Temporal
    executions, next_token = await page_of(
        client, question.filters().query(), MATCH_LIMIT, token=None
    )
    records = {r.event.event_id: r for info in executions if (r := await record_of(client, info))}
    if next_token is not None:
        for extra in await _beyond_the_page(client, question):
            records.setdefault(extra.event.event_id, extra)
    # Nearest first; on a tie the undecided one first.
    events = sorted(
        (MatchedEvent.of(r, question, ui) for r in records.values()),
        key=lambda m: (abs(m.offset_seconds), m.status is EventStatus.APPROVED, m.event_id),
    )
    answer = answer_for(events, records)
    return MatchAnswer(
        approved=answer is Answer.APPROVED,
        answer=answer,
        host=question.host,
        user=question.user,
        at=question.at,
        kind=question.kind,
        address=question.address,
        port=question.port,
        window_seconds=question.window.total_seconds(),
        tolerance_seconds=question.effective_tolerance().total_seconds(),
        host_match=question.host_match,
        events=events,
        truncated=next_token is not None,
    )
