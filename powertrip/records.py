"""The record, read back: list, show, match and export events for the API and the CLI alike.

Everything comes from Temporal visibility (the `Powertrip*` search attributes narrow the search)
and the workflow's memo `record` (an `EventRecord`). Nothing here queries a workflow: a query on
a closed one needs a worker to replay its history, and the memo already holds what readers need.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, TextIO
from urllib.parse import quote, urlencode

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, BeforeValidator, Field
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from powertrip import temporal as attributes
from powertrip.approvals import Action, EventRecord, TimelineEntry
from powertrip.decisions import signed_click
from powertrip.hosts import HostMatch, host_key, is_address, short_host
from powertrip.identity import same_action, same_address
from powertrip.models import Decision, DecisionKind, EventKind, EventStatus, SecurityEvent
from workflows.approval import ApprovalWorkflow

# `@workflow.defn` without a name registers the class name as the workflow type.
WORKFLOW_TYPE = ApprovalWorkflow.__name__
MAX_PAGE_SIZE = 500
MATCH_LIMIT = 100
MAX_MATCH_WINDOW = timedelta(days=1)


class RecordError(ValueError):
    """A request the record cannot answer as asked; the message says why (a 4xx, not a 5xx)."""


class PageTokenError(RecordError):
    pass


class Refused(RecordError):
    """An override the workflow would ignore; refused up front with the reason."""


# ---------------------------------------------------------------------------------------------
# Visibility queries


def literal(value: str) -> str:
    """A visibility query string literal.

    The dev server (SQLite) cannot match values holding `"` or `\\` even when escaped, and no
    host or unix user contains them: refuse rather than silently find nothing.
    """
    if any(c in value for c in '"\\') or any(ord(c) < 32 for c in value):
        raise RecordError(f"{value!r} contains characters Temporal visibility cannot search for")
    return f'"{value}"'


def aware(at: datetime) -> datetime:
    """Times without a zone are ambiguous between a HIDS, a log provider and Temporal: refuse."""
    if at.tzinfo is None:
        raise RecordError(f"{at.isoformat()} has no time zone; add Z or an offset like +02:00")
    return at


def time_literal(at: datetime) -> str:
    return f'"{aware(at).astimezone(UTC).isoformat()}"'


def host_clause(host: str, match: HostMatch) -> str:
    """Compare against `PowertripHostKey` (lower-cased full name, see powertrip.hosts)."""
    key = host_key(host)
    if not key:
        raise RecordError("host is empty")
    name = attributes.HOST_KEY.name
    if match is HostMatch.FQDN or is_address(key):
        return f"{name} = {literal(key)}"
    short = short_host(key)
    # `bastion`, `bastion.corp.example.com`, `Bastion.other.org`: same first label, same host.
    return f"({name} = {literal(short)} OR {name} STARTS_WITH {literal(short + '.')})"


class EventFilter(BaseModel):
    """Filters of `GET /v1/events` and `powertrip events list`; all optional, combined with AND."""

    status: EventStatus | None = Field(default=None, description="pending, approved, ...")
    actor: str | None = Field(default=None, description="The unix or cloud user, exactly.")
    host: str | None = Field(
        default=None, description="Host name, compared ignoring case (see `host_match`)."
    )
    host_match: HostMatch = Field(
        default=HostMatch.FQDN, description="`fqdn`: full name; `short`: first label decides."
    )
    rule: str | None = Field(default=None, description="Rule id, e.g. `sshd-accepted`.")
    source: str | None = Field(default=None, description="Source adapter, e.g. `papertrail`.")
    since: datetime | None = Field(default=None, description="Event time at or after this.")
    until: datetime | None = Field(default=None, description="Event time before this.")

    def query(self) -> str:
        clauses = [
            f"WorkflowType = {literal(WORKFLOW_TYPE)}",
            # A continued-as-new run is the same event; its successor carries memo and attributes.
            'ExecutionStatus != "ContinuedAsNew"',
        ]
        exact = [
            (attributes.STATUS.name, self.status.value if self.status else None),
            (attributes.ACTOR.name, self.actor),
            (attributes.RULE.name, self.rule),
            (attributes.SOURCE.name, self.source),
        ]
        clauses += [f"{name} = {literal(value)}" for name, value in exact if value is not None]
        if self.host is not None:
            clauses.append(host_clause(self.host, self.host_match))
        if self.since is not None:
            clauses.append(f"{attributes.EVENT_TIME.name} >= {time_literal(self.since)}")
        if self.until is not None:
            clauses.append(f"{attributes.EVENT_TIME.name} < {time_literal(self.until)}")
        if self.since and self.until and self.until <= self.since:
            raise RecordError("`until` must be later than `since`")
        return " AND ".join(clauses)


# ---------------------------------------------------------------------------------------------
# Views


class UiLinks(BaseModel):
    """Where to look in the Temporal Web UI."""

    workflow: str = Field(description="The event's workflow (latest run): status, summary, input.")
    history: str = Field(description="This run's event history: every Slack call and signal.")
    same_actor: str = Field(description="Workflow list: every event of this actor.")
    same_host: str | None = Field(description="Workflow list: every event on this host.")


class Ui(BaseModel):
    """Builds Temporal Web UI links (v2 routes) for one namespace."""

    base_url: str
    namespace: str

    def _ns(self) -> str:
        return f"{self.base_url.rstrip('/')}/namespaces/{quote(self.namespace, safe='')}"

    def list_url(self, query: str) -> str:
        return f"{self._ns()}/workflows?{urlencode({'query': query})}"

    def workflow_url(self, event_id: str) -> str:
        return f"{self._ns()}/workflows/{quote(event_id, safe='')}"

    def links(self, record: EventRecord, run_id: str) -> UiLinks:
        event = record.event
        workflow = self.workflow_url(event.event_id)
        actor = f'{attributes.ACTOR.name} = "{event.actor}"'
        host = f'{attributes.HOST.name} = "{event.host}"' if event.host else None
        return UiLinks(
            workflow=workflow,
            history=f"{workflow}/{quote(run_id, safe='')}/history",
            same_actor=self.list_url(actor),
            same_host=self.list_url(host) if host else None,
        )


class EventView(BaseModel):
    """One event as the API and the CLI show it."""

    event_id: str = Field(description="Readable, stable id; also the Temporal workflow id.")
    status: EventStatus = Field(
        description="pending: nobody with authority answered yet; approved; reported (*Not me*, "
        "awaiting the security team); acknowledged (the team handled the report)."
    )
    actor: str = Field(description="The unix or cloud user who acted.")
    host: str | None = Field(description="Host as the log provider named it.")
    address: str | None = Field(description="Where the session came from (remote address).")
    action: str = Field(description="What happened, e.g. `ssh login (publickey)`.")
    rule_id: str = Field(description="The rule that recognised the log line.")
    source: str = Field(description="The source adapter that received it, e.g. `papertrail`.")
    occurred_at: datetime = Field(description="When it happened (provider time).")
    message: str = Field(description="The original log line.")
    asked: str | None = Field(
        description="Who was asked first: `@name (Slack id)`, the id, or `the security channel`."
    )
    decision: Decision | None = Field(description="Approval or acknowledgement; null until then.")
    report: Decision | None = Field(description="The *Not me* report, if any.")
    contested: Decision | None = Field(
        default=None, description="An approval on the owner's behalf that their *Not me* overruled."
    )
    contest_until: datetime | None = Field(
        default=None,
        description="Approved on the owner's behalf: until then the owner may still say *Not me*.",
    )
    timeline: list[TimelineEntry] = Field(
        description="received, notified, reminded (one per reminder), notify_failed, approved, "
        "reported, acknowledged: what happened, when, by whom."
    )
    workflow_status: str = Field(
        description="Temporal's view: running, completed, or failed/terminated/timed_out if the "
        "workflow ended abnormally (then `status` is the last one recorded)."
    )
    received_at: datetime = Field(description="When Powertrip started the event's workflow.")
    closed_at: datetime | None = Field(description="When the workflow finished, if it has.")
    temporal_url: str = Field(description="The event's workflow in the Temporal Web UI.")
    links: UiLinks = Field(description="Where to investigate it in the Temporal Web UI.")


async def _record(client: Client, info: WorkflowExecutionInfo) -> EventRecord | None:
    """The memo `record`, decoded alone: the SDK's WorkflowExecution would also decode every
    search attribute, a third of the cost of a HIDS lookup."""
    payload = info.memo.fields.get("record")
    if payload is None:  # not an event workflow after all: nothing to show
        return None
    [record] = await client.data_converter.decode([payload], [EventRecord])
    return record if isinstance(record, EventRecord) else None


def _utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


async def _view(client: Client, info: WorkflowExecutionInfo, ui: Ui) -> EventView | None:
    record = await _record(client, info)
    if record is None:
        return None
    event = record.event
    status = WorkflowExecutionStatus(info.status or WorkflowExecutionStatus.RUNNING)
    links = ui.links(record, info.execution.run_id)
    return EventView(
        event_id=event.event_id,
        status=record.status,
        actor=event.actor,
        host=event.host,
        address=event.address,
        action=event.action,
        rule_id=event.rule_id,
        source=event.source,
        occurred_at=event.occurred_at,
        message=event.message,
        asked=record.recipient.asked_label if record.recipient else None,
        decision=record.decision,
        report=record.report,
        contested=record.contested,
        contest_until=record.contest_until,
        timeline=record.timeline,
        workflow_status=status.name.lower(),
        received_at=_utc(info.start_time),
        closed_at=_utc(info.close_time) if info.HasField("close_time") else None,
        temporal_url=links.workflow,
        links=links,
    )


async def _views(client: Client, infos: Iterable[WorkflowExecutionInfo], ui: Ui) -> list[EventView]:
    views = [await _view(client, info, ui) for info in infos]
    return [v for v in views if v is not None]


# ---------------------------------------------------------------------------------------------
# List and show


class EventPage(BaseModel):
    events: list[EventView] = Field(
        description="Open events first (most recently received first), then closed ones, most "
        "recently closed first: Temporal visibility's order, stable across pages."
    )
    next_page_token: str | None = Field(
        description="Pass as `page_token` with the same filters for the next page; null: no more."
    )
    query: str = Field(description="The Temporal visibility query; paste it into the Web UI.")


def _query_digest(query: str) -> bytes:
    return hashlib.sha256(query.encode()).digest()[:6]


# Without a key from the caller, tokens are valid in this process only (the CLI's own paging).
_PROCESS_KEY = secrets.token_bytes(32)
_MAC_BYTES = 16


def page_token_key(secret: str) -> bytes:
    """The key page tokens are signed with, from a secret every API replica shares (the API
    token), so a token from one replica is good on another."""
    return hashlib.sha256(b"powertrip page token\0" + secret.encode()).digest()


def _mac(key: bytes, query: str, token: bytes) -> bytes:
    return hmac.new(key, query.encode() + b"\0" + token, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_page_token(query: str, token: bytes, key: bytes = _PROCESS_KEY) -> str:
    """Opaque to clients, bound to the query it continues and signed: Temporal only ever sees
    page tokens it issued (an altered one made it fail with `Unknown` after ~10 s of retries)."""
    raw = _query_digest(query) + _mac(key, query, token) + token
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(query: str, text: str, key: bytes = _PROCESS_KEY) -> bytes:
    """The Temporal page token inside `text`; `PageTokenError` (a 400) for anything this API
    did not issue for these filters: other filters, altered, truncated, not base64."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PageTokenError("page_token is not a token this API issued") from exc
    digest, mac, token = raw[:6], raw[6 : 6 + _MAC_BYTES], raw[6 + _MAC_BYTES :]
    if digest != _query_digest(query):
        raise PageTokenError("page_token belongs to other filters; repeat the same filters")
    if not token or not hmac.compare_digest(mac, _mac(key, query, token)):
        raise PageTokenError("page_token is not a token this API issued (altered or truncated)")
    return token


async def _page(
    client: Client, query: str, page_size: int, token: bytes | None
) -> tuple[Sequence[WorkflowExecutionInfo], bytes | None]:
    """One ListWorkflowExecutions call: the raw visibility call every read here makes."""
    request = ListWorkflowExecutionsRequest(
        namespace=client.namespace,
        page_size=min(max(page_size, 1), MAX_PAGE_SIZE),
        next_page_token=token or b"",
        query=query,
    )
    try:
        response = await client.workflow_service.list_workflow_executions(request, retry=True)
    except RPCError as exc:
        if token is not None and exc.status is RPCStatusCode.INVALID_ARGUMENT:
            raise PageTokenError(f"Temporal refused the page: {exc.message}") from exc
        raise
    return response.executions, response.next_page_token or None


async def list_events(
    client: Client,
    filters: EventFilter,
    ui: Ui,
    page_size: int = 50,
    page_token: str | None = None,
    key: bytes = _PROCESS_KEY,
) -> EventPage:
    """One page of events; `key` signs the page tokens (`page_token_key`)."""
    query = filters.query()
    token = decode_page_token(query, page_token, key) if page_token else None
    executions, next_token = await _page(client, query, page_size, token)
    return EventPage(
        events=await _views(client, executions, ui),
        next_page_token=encode_page_token(query, next_token, key) if next_token else None,
        query=query,
    )


async def iter_events(
    client: Client, filters: EventFilter, ui: Ui, limit: int | None = None
) -> AsyncIterator[EventView]:
    """Every matching event, page after page (the CLI's list and export)."""
    token: str | None = None
    seen = 0
    while True:
        page = await list_events(client, filters, ui, MAX_PAGE_SIZE, token)
        for view in page.events:
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield view
        token = page.next_page_token
        if token is None:
            return


async def show_event(client: Client, event_id: str, ui: Ui) -> EventView | None:
    """The event's latest run, from `describe` (memo and status; no worker needed)."""
    try:
        description = await client.get_workflow_handle(event_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND and not attributes.namespace_not_found(exc):
            return None
        raise
    return await _view(client, description.raw_description.workflow_execution_info, ui)


# ---------------------------------------------------------------------------------------------
# The HIDS question


class Answer(StrEnum):
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
        default = TOLERANCE_WITH_PORT if self.pinned else TOLERANCE_WITHOUT_PORT
        tolerance = default if self.tolerance is None else self.tolerance
        if tolerance < timedelta(0):
            raise RecordError("tolerance must not be negative")
        return min(tolerance, self.window)

    def filters(self) -> EventFilter:
        if self.window <= timedelta(0) or self.window > MAX_MATCH_WINDOW:
            raise RecordError("window must be more than 0 and at most 1 day")
        return self.around(self.window)

    def around(self, reach: timedelta) -> EventFilter:
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
    reported_by: str | None = Field(description="Who said *Not me*, if anyone.")
    reported_at: datetime | None = Field(description="When *Not me* was said.")
    temporal_url: str = Field(description="The event in the Temporal Web UI.")

    @classmethod
    def of(cls, record: EventRecord, question: MatchQuestion, ui: Ui) -> MatchedEvent:
        # Straight from the memo record, not via EventView: this is the HIDS's hot path.
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
            reported_by=report.by if report else None,
            reported_at=report.at if report else None,
            temporal_url=ui.workflow_url(event.event_id),
        )


class MatchAnswer(BaseModel):
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
        executions, _ = await _page(client, query, size, token=None)
        found += [r for r in [await _record(client, info) for info in executions] if r]
    return found


async def match(client: Client, question: MatchQuestion, ui: Ui) -> MatchAnswer:
    """Answer one HIDS question from visibility and the events' memos (no worker needed)."""
    question.effective_tolerance()  # refuse a bad tolerance before asking Temporal
    executions, next_token = await _page(
        client, question.filters().query(), MATCH_LIMIT, token=None
    )
    records = {r.event.event_id: r for info in executions if (r := await _record(client, info))}
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


# ---------------------------------------------------------------------------------------------
# The audit trail


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


BlankIsNone = Annotated[str | None, BeforeValidator(_blank_is_none)]


class DecisionRow(BaseModel):
    """One decision: who, when, how (slack or cli), why, about which event."""

    event_id: str
    decision: DecisionKind
    by: str
    name: BlankIsNone = None
    at: datetime
    via: str
    reason: BlankIsNone = None
    on_behalf: bool = False
    operator: BlankIsNone = None
    authenticated: bool = False
    actor: str
    host: BlankIsNone = None
    rule_id: str
    source: str
    occurred_at: datetime

    @classmethod
    def rows_of(cls, view: EventView) -> list[DecisionRow]:
        decisions = sorted(
            (d for d in (view.contested, view.report, view.decision) if d is not None),
            key=lambda d: d.at,
        )
        return [
            cls(
                event_id=view.event_id,
                decision=d.kind,
                by=d.by,
                name=d.name,
                at=d.at,
                via=d.via,
                reason=d.reason,
                on_behalf=d.on_behalf,
                operator=d.operator,
                authenticated=d.authenticated,
                actor=view.actor,
                host=view.host,
                rule_id=view.rule_id,
                source=view.source,
                occurred_at=view.occurred_at,
            )
            for d in decisions
        ]


EXPORT_FIELDS = list(DecisionRow.model_fields)


async def decisions(
    client: Client, since: datetime, until: datetime | None, ui: Ui
) -> list[DecisionRow]:
    """Decisions made in [since, until), oldest first.

    A decided event is either still open (reported, awaiting acknowledgement) or closed after
    its last decision, so `open OR closed since` finds every event that can hold one.
    """
    if until is not None:
        aware(until)
    base = EventFilter().query()
    closed = f"CloseTime >= {time_literal(since)}"
    query = f'{base} AND (ExecutionStatus = "Running" OR {closed})'
    rows: list[DecisionRow] = []
    token: bytes | None = None
    while True:
        executions, token = await _page(client, query, MAX_PAGE_SIZE, token)
        for view in await _views(client, executions, ui):
            rows += [
                r
                for r in DecisionRow.rows_of(view)
                if r.at >= since and (until is None or r.at < until)
            ]
        if token is None:
            return sorted(rows, key=lambda r: (r.at, r.event_id))


def write_rows(rows: Iterable[DecisionRow], fmt: ExportFormat, out: TextIO) -> int:
    count = 0
    if fmt is ExportFormat.JSONL:
        for row in rows:
            out.write(row.model_dump_json() + "\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow({k: _csv_value(v) for k, v in data.items()})
        count += 1
    return count


def _csv_value(value: object) -> object:
    """CSV cells as spreadsheets and auditors' scripts read them: `true`/`false` (as in the
    JSONL export), empty for none; Python's `False`/`None` mean nothing outside Python."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def read_rows(text: str, fmt: ExportFormat) -> list[DecisionRow]:
    """Parse an export back (auditors' tooling, and the round-trip test)."""
    if fmt is ExportFormat.JSONL:
        return [DecisionRow.model_validate(json.loads(line)) for line in text.splitlines() if line]
    return [DecisionRow.model_validate(row) for row in csv.DictReader(io.StringIO(text))]


# ---------------------------------------------------------------------------------------------
# Security-team override


async def approve_as_security(
    client: Client,
    event_id: str,
    user: str,
    reason: str,
    security_team: Sequence[str],
    *,
    key: str,
    operator: str,
) -> EventRecord:
    """Deliver an approval from the CLI as the same `decide` signal a Slack click sends, signed
    with the decision key (powertrip.decisions) and recorded as `via: cli` with `operator`
    (`user@host` of the operating-system account that ran it).

    Checked against the authority the workflow published in its memo (the rules it will apply);
    `security_team` from the config stands in while the workflow has not resolved it yet. A
    refusal for lack of authority is also signalled, marked refused, so the event's timeline
    shows the attempt. Raises Refused with the reason.
    """
    if not reason.strip():
        raise Refused("give a --reason: an override is recorded with why it was made")
    handle = client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND and not attributes.namespace_not_found(exc):
            raise Refused(f"no event {event_id!r}") from exc
        raise
    record = await description.memo_value("record", type_hint=EventRecord)
    team = record.authority.security_team if record.authority else list(security_team)
    refused = None
    if user not in team:
        members = ", ".join(record.label(member) for member in team) or "nobody configured"
        refused = (
            f"{user} is not in the security team ({members}); only the security team may "
            "approve from the CLI"
        )
    if record.status is not EventStatus.PENDING:
        raise Refused(f"{event_id} is already {record.status.value}; nothing to approve")
    if description.status is not WorkflowExecutionStatus.RUNNING:
        raise Refused(f"{event_id}'s workflow is {description.status}; it cannot take decisions")
    names = record.authority.names if record.authority else {}
    click = signed_click(
        key,
        event_id,
        Action.APPROVE,
        user,
        via="cli",
        name=names.get(user),
        reason=reason.strip(),
        operator=operator,
        refused=refused,
    )
    await handle.signal(ApprovalWorkflow.decide, click)
    if refused is not None:
        raise Refused(refused)
    return record
