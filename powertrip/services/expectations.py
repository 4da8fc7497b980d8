"""Expectations (issue 13 §2): expected work, pre-approved on the record.

Creating one is a decision: whoever verified the human (the API after Slack's signature or its
API token, the CLI with its key for the security team) checks the limits (`refusal`), signs it
(`powertrip.signing.sign_expectation`) and starts its `ExpectationWorkflow`, which holds it until
it expires (a Temporal timer) or a signed revocation ends it. The worker checks the signature and
the same limits again before an expectation approves an event
(`activities.expectations.ExpectationActivities.find_expectation`). Listing reads visibility and
the memo: no worker needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
from pydantic import BaseModel, Field
from slack_sdk.errors import SlackApiError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from powertrip import temporal as attributes
from powertrip.config import PowertripConfig
from powertrip.contracts.approval import APPROVAL_WORKFLOW, RECORD_MEMO, Action, EventRecord
from powertrip.contracts.expectations import (
    APPROVED_SIGNAL,
    EXPECTATION_MEMO,
    EXPECTATION_WORKFLOW,
    ID_PREFIX,
    REVOKE_SIGNAL,
    Expectation,
    ExpectationStatus,
    ExpectedEvent,
    Revocation,
    expectation_id,
    same_here_refusal,
    scope_refusal,
)
from powertrip.directory import Directory, Identity, SlackDirectory
from powertrip.models import EventStatus
from powertrip.services.decisions import event_record
from powertrip.services.views import EventView, show_event
from powertrip.signing import sign_expectation, sign_revocation
from powertrip.visibility import RecordError, literal
from powertrip.webui import WebUi

MAX_REASON = 500
MAX_LISTED = 500


class ExpectationRefused(RecordError):
    """An expectation (or its revocation) that the limits forbid: the message says why."""


class NoSuchExpectation(RecordError):
    """No expectation with that id."""


class Limits:
    """What may be pre-approved, from the config: who is on the security team (the configured
    ids and, with `slack`, the members of `security_team_group`), who owns an account (the
    directory's `slack:` id or, with `slack`, its `email:` resolved in Slack), which rules need
    a step-up, and the longest an expectation may last (`max_duration`).

    Both Slack answers come from `powertrip.directory.SlackDirectory`, the same path (and
    cache) that decides who may press an event's buttons. Without `slack` (a test, a tool with
    no Slack) only the configured ids count. When Slack cannot answer, the checks raise
    `LimitsUnchecked`: nothing is pre-approved on a guess."""

    def __init__(self, config: PowertripConfig, slack: SlackDirectory | None = None) -> None:
        self.directory = Directory(config)
        self.slack = slack
        self.configured_team = frozenset(config.security_team)
        self.team_group = config.security_team_group
        self.step_up_rules = frozenset(
            r.id for r in config.rule_set().rules if r.step_up is not None
        )
        self.max_duration = config.max_expectation

    @classmethod
    def from_config(cls, config: PowertripConfig, slack: SlackDirectory | None = None) -> Limits:
        """The limits of `config`, asking Slack through `slack` (see the class)."""
        return cls(config, slack)

    async def on_team(self, user: str) -> bool:
        """Whether `user` (a Slack user id) is on the security team. Raises LimitsUnchecked
        when Slack cannot say whether they are in the team's user group."""
        if user in self.configured_team:
            return True
        if not self.team_group or self.slack is None:
            return False
        try:
            return await self.slack.is_security_team(user)
        except SLACK_FAILURES as exc:
            raise LimitsUnchecked(
                f"Slack did not say whether {user} is in the security team's user group "
                f"{self.team_group} ({_failure(exc)}): try again"
            ) from exc

    async def owner_of(self, actor: str) -> str | None:
        """The Slack user the account `actor` is mapped to, or None (bot, shared, unmapped, an
        email Slack does not know). Raises LimitsUnchecked when Slack cannot answer."""
        entry = self.directory.lookup(actor)
        if entry.identity is not Identity.MAPPED:
            return None
        if entry.slack_user or self.slack is None:
            return entry.slack_user
        try:
            return await self.slack.slack_user_of(entry)
        except SLACK_FAILURES as exc:
            raise LimitsUnchecked(
                f"Slack did not say who {actor!r} ({entry.email}) is ({_failure(exc)}): try again"
            ) from exc

    async def refusal(self, expectation: Expectation) -> str | None:
        """Why `expectation` may not pre-approve anything, or None. The security team may
        create one for anyone; the owner of an actor (the Slack user it is mapped to) only for
        that actor and never for a step-up rule; nobody for longer than `max_duration`.
        Raises LimitsUnchecked when Slack cannot answer who is who."""
        span = expectation.until - expectation.created_at
        if span <= timedelta(0):
            return "it ends before it starts: give a `for` or an `until` in the future"
        # A second of slack: the API computes `until` from `for` a moment before it signs.
        if span > self.max_duration + timedelta(seconds=1):
            return (
                f"it lasts {_human(span)}, longer than the {_human(self.max_duration)} "
                "an expectation may (the config's `max_expectation`)"
            )
        if await self.on_team(expectation.created_by):
            return None
        if expectation.via == "cli":
            return "only the security team may create expectations from the CLI"
        if await self.owner_of(expectation.actor) != expectation.created_by:
            return (
                f"{expectation.created_by} may create expectations only for their own accounts, "
                f"not for {expectation.actor!r} (the security team may for anyone)"
            )
        step_up = sorted(set(expectation.rules) & self.step_up_rules)
        if step_up:
            return (
                f"{', '.join(step_up)} need{'s' if len(step_up) == 1 else ''} a step-up: only "
                "the security team may pre-approve it"
            )
        return None

    async def may_revoke(self, expectation: Expectation, user: str) -> bool:
        """Its creator, the actor's owner, or the security team."""
        return (
            user == expectation.created_by
            or await self.on_team(user)
            or await self.owner_of(expectation.actor) == user
        )


class LimitsUnchecked(ExpectationRefused):
    """Slack did not answer who is on the security team or who owns an account, so the limits
    could not be checked: refused for now (the API answers 503), never allowed on a guess."""


SLACK_FAILURES = (SlackApiError, aiohttp.ClientError, TimeoutError, OSError)
"""What a Slack Web API call raises when Slack (or the way to it) fails."""


def _failure(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack answered {exc.response.get('error')!r}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def new_expectation(
    *,
    actor: str,
    hosts: Sequence[str],
    rules: Sequence[str],
    until: datetime,
    reason: str,
    created_by: str,
    via: str,
    operator: str | None = None,
    now: datetime | None = None,
) -> Expectation:
    """An unsigned expectation with a new id; `until` must be timezone-aware. Empty `hosts`
    (`rules`) means any host (rule); a blank name among them is refused, never dropped
    (`scope_refusal`): what comes to nothing must not widen it to everything. Raises
    ExpectationRefused."""
    if (widened := scope_refusal(hosts, rules)) is not None:
        raise ExpectationRefused(widened)
    if not reason.strip():
        raise ExpectationRefused("give a reason: an expectation is recorded with why")
    if len(reason) > MAX_REASON:
        raise ExpectationRefused(f"the reason is over {MAX_REASON} characters")
    if not actor.strip():
        raise ExpectationRefused("give the actor (the account as events name it)")
    if until.tzinfo is None:
        raise ExpectationRefused("`until` needs a timezone (e.g. 2026-12-01T18:00:00Z)")
    return Expectation(
        id=expectation_id(actor),
        actor=actor.strip(),
        hosts=[h.strip() for h in hosts],
        rules=[r.strip() for r in rules],
        until=until.astimezone(UTC),
        reason=reason.strip(),
        created_by=created_by,
        created_at=now or datetime.now(UTC),
        via=via,
        operator=operator,
    )


async def create_expectation(
    client: Client, key: str, task_queue: str, expectation: Expectation, limits: Limits
) -> Expectation:
    """Check `expectation` against `limits`, sign it with `key` (the API's or the CLI's) and
    start its workflow. Raises ExpectationRefused with the reason; RPCError when Temporal
    fails."""
    if (refused := await limits.refusal(expectation)) is not None:
        raise ExpectationRefused(refused)
    signed = sign_expectation(key, expectation)
    pairs = [
        SearchAttributePair(attributes.STATUS, ExpectationStatus.ACTIVE.value),
        SearchAttributePair(attributes.ACTOR, signed.actor[:1024]),
    ]
    await client.start_workflow(
        EXPECTATION_WORKFLOW,
        signed,
        id=signed.id,
        task_queue=task_queue,
        memo={EXPECTATION_MEMO: signed},
        search_attributes=TypedSearchAttributes(pairs),
        static_summary=f"expect {signed.actor} until {signed.until:%Y-%m-%d %H:%M} UTC",
    )
    return signed


def active_query(actor: str | None = None) -> str:
    """The visibility query for running expectations (of `actor`)."""
    query = f"WorkflowType = {literal(EXPECTATION_WORKFLOW)} AND ExecutionStatus = 'Running'"
    if actor is not None:
        query += f" AND {attributes.ACTOR.name} = {literal(actor[:1024])}"
    return query


async def list_expectations(client: Client, actor: str | None = None) -> list[Expectation]:
    """Active expectations (of `actor`), from visibility and their memos, soonest ending
    first (at most MAX_LISTED)."""
    found, _ = await _listed(client, active_query(actor), MAX_LISTED)
    return found


async def _listed(client: Client, query: str, limit: int) -> tuple[list[Expectation], bool]:
    """The active expectations among the first `limit` workflows `query` lists, soonest ending
    first, and whether that was every workflow it matches."""
    found: list[Expectation] = []
    seen = 0
    async for execution in client.list_workflows(query, limit=limit + 1):
        seen += 1
        if seen > limit:
            break
        expectation = await execution.memo_value(EXPECTATION_MEMO, None, type_hint=Expectation)
        if expectation is not None and expectation.status is ExpectationStatus.ACTIVE:
            found.append(expectation)
    return sorted(found, key=lambda e: (e.until, e.id)), seen <= limit


class ActiveExpectations:
    """The active expectations as visibility lists them, shared by one worker's lookups: one
    visibility call per `ttl` seconds (and no more than one at a time), whatever the event
    rate. Temporal allows a namespace 10 visibility calls a second by default
    (`frontend.namespaceRPS.visibility`): one call per event made that the ceiling of the
    whole notification rate (10,000 pending: 15 DMs/s, each lookup 0.6 s, issue 16).

    What it lists are candidates. A match must be confirmed with `get_expectation` (a point
    read of the expectation's own workflow, not visibility) before it approves anything, so a
    revocation counts at once; an expectation created in the last `ttl` seconds may be missed
    (its event is asked about, the safe side), except on the worker that posts its notice,
    which calls `forget`. With more than MAX_LISTED active, each lookup asks visibility for its
    actor's alone, as before. Raises RPCError as `Client.list_workflows` does."""

    def __init__(
        self, client: Client, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._listing: list[Expectation] = []
        self._complete = False
        self._at = float("-inf")
        """When the listing was asked for (`clock()`); -inf: never, or forgotten."""

    def forget(self) -> None:
        """The next lookup lists again (an expectation was just created)."""
        self._at = float("-inf")

    async def of(self, actor: str) -> list[Expectation]:
        """`actor`'s active expectations, soonest ending first: from the shared listing when it
        is at most `ttl` seconds old and complete."""
        async with self._lock:
            if self._clock() - self._at > self._ttl:
                began = self._clock()
                self._listing, self._complete = await _listed(
                    self._client, active_query(), MAX_LISTED
                )
                self._at = began
            listing, complete = self._listing, self._complete
        if not complete:
            return await list_expectations(self._client, actor)
        return [e for e in listing if e.actor == actor]


async def get_expectation(client: Client, expectation_id: str) -> Expectation:
    """One expectation as its memo says (active or ended). Raises NoSuchExpectation."""
    if not expectation_id.startswith(ID_PREFIX):
        raise NoSuchExpectation(f"no expectation {expectation_id!r}")
    try:
        description = await client.get_workflow_handle(expectation_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise NoSuchExpectation(f"no expectation {expectation_id!r}") from exc
        raise
    expectation = await description.memo_value(EXPECTATION_MEMO, None, type_hint=Expectation)
    if expectation is None:
        raise NoSuchExpectation(f"no expectation {expectation_id!r}")
    if description.status is not WorkflowExecutionStatus.RUNNING:
        if expectation.status is ExpectationStatus.ACTIVE:
            expectation.status = ExpectationStatus.EXPIRED
    return expectation


MAX_APPROVED_LISTED = 500
"""`approved_by` shows at most this many events (`truncated` says there were more)."""


class ExpectationAudit(BaseModel):
    """An expectation and the events it approved: the audit's other direction (each event's
    own decision names the expectation)."""

    expectation: Expectation
    approved: list[EventView] = Field(
        description="The events it approved, in the order they were approved (each one's "
        "decision time, then event id); each one's own "
        "record says `via: expectation` with this expectation's id."
    )
    truncated: bool = Field(description=f"More than {MAX_APPROVED_LISTED}: the rest are left off.")


async def approved_by(
    client: Client, expectation_id: str, ui: WebUi, limit: int = MAX_APPROVED_LISTED
) -> ExpectationAudit:
    """The expectation (active or ended) and the events it approved, read from Temporal with no
    worker running: the `approved` signals in the expectation's history name the candidates,
    and an event is listed only if its own record says it was approved by this expectation (a
    signal anyone could send is never the proof). Raises NoSuchExpectation."""
    expectation = await get_expectation(client, expectation_id)
    candidates: dict[str, None] = {}  # event ids, first-signalled first, each once
    async for event in client.get_workflow_handle(expectation_id).fetch_history_events():
        if not event.HasField("workflow_execution_signaled_event_attributes"):
            continue
        signal = event.workflow_execution_signaled_event_attributes
        if signal.signal_name != APPROVED_SIGNAL or not signal.input.payloads:
            continue
        try:
            [item] = await client.data_converter.decode(signal.input.payloads[:1], [ExpectedEvent])
        except Exception:  # a signal that is not an ExpectedEvent names no candidate
            continue
        if isinstance(item, ExpectedEvent):
            candidates.setdefault(item.event_id)
    approved: list[EventView] = []
    # Read in small batches; a history flooded with forged names costs at most a bounded read.
    checked = list(candidates)[: limit * 4]
    for start in range(0, len(checked), 20):
        views = await asyncio.gather(
            *(show_event(client, i, ui) for i in checked[start : start + 20])
        )
        approved += [
            view
            for view in views
            if view is not None
            and view.decision is not None
            and view.decision.via == "expectation"
            and view.decision.expectation == expectation_id
        ]
    # The signals' order is the order the events told the expectation, which two events
    # approved together can do either way round: their own records say when.
    approved.sort(key=_approval_order)
    truncated = len(approved) > limit or len(candidates) > len(checked)
    return ExpectationAudit(expectation=expectation, approved=approved[:limit], truncated=truncated)


def _approval_order(view: EventView) -> tuple[datetime, str]:
    """When `view` was approved, then its event id (only approved events are listed)."""
    assert view.decision is not None
    return view.decision.at, view.event_id


async def revoke_expectation(
    client: Client, key: str, expectation_id: str, by: str, via: str, limits: Limits
) -> Expectation:
    """Revoke: checked (`Limits.may_revoke`), signed with `key`, signalled (durable with no
    worker running). Returns the expectation as it was. Raises NoSuchExpectation,
    ExpectationRefused (not allowed, already ended)."""
    expectation = await get_expectation(client, expectation_id)
    if expectation.status is not ExpectationStatus.ACTIVE:
        raise ExpectationRefused(f"{expectation_id} is already {expectation.status.value}")
    if not await limits.may_revoke(expectation, by):
        raise ExpectationRefused(
            f"{by} may not revoke {expectation_id}: only its creator, the owner of "
            f"{expectation.actor!r} or the security team may"
        )
    revocation = sign_revocation(
        key, expectation_id, Revocation(by=by, at=datetime.now(UTC), via=via)
    )
    try:
        await client.get_workflow_handle(expectation_id).signal(REVOKE_SIGNAL, revocation)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise ExpectationRefused(f"{expectation_id} has just ended") from exc
        raise
    return expectation


# What waits for whom (the `/powertrip pending` command) ---------------------------------------

MAX_WAITING_LISTED = 200


async def waiting_for(client: Client, user: str, on_team: bool) -> list[EventRecord]:
    """The events waiting for `user`'s decision (pending ones they may approve; for the
    security team, `on_team` (`Limits.on_team`) or named so by an event's own record, every
    pending event and every unacknowledged *Not me*), newest first, at most
    MAX_WAITING_LISTED. From visibility and the memos: no worker needed."""
    query = (
        f"WorkflowType = {literal(APPROVAL_WORKFLOW)} AND ExecutionStatus = 'Running' AND "
        f"{attributes.STATUS.name} IN ('pending', 'reported')"
    )
    found: list[EventRecord] = []
    async for execution in client.list_workflows(query, limit=MAX_WAITING_LISTED):
        record = await execution.memo_value(RECORD_MEMO, None, type_hint=EventRecord)
        if record is None or record.authority is None:
            continue
        team = on_team or user in record.authority.security_team
        if record.status is EventStatus.REPORTED and team:
            found.append(record)
        elif record.status is EventStatus.PENDING and (
            team or record.authority.may(Action.APPROVE, record.status, user)
        ):
            found.append(record)
    return found


EXPECT_THE_SAME_FOR = timedelta(hours=1)
"""How long "Approve, and expect the same from me here for 1 h" expects the same."""


# How long "expect the same" waits for the click's approval to be recorded: the workflow takes a
# delivered signal in well under a second while a worker runs.
APPROVAL_RECORDED_WITHIN = 10.0


async def _approved_by(client: Client, event_id: str, user: str) -> EventRecord:
    """The event's record once it shows the approval by `user` (its memo). A click delivered is
    not yet an approval that counted: a group refuses one pressed on a message that did not list
    every event. Raises NoSuchExpectation for an unknown event, ExpectationRefused when the
    approval was not recorded within APPROVAL_RECORDED_WITHIN s or the event was decided
    otherwise."""
    deadline = asyncio.get_running_loop().time() + APPROVAL_RECORDED_WITHIN
    while True:
        record = await event_record(client, event_id)
        if record is None:
            raise NoSuchExpectation(f"no event {event_id!r}")
        decision = record.decision
        if record.status is EventStatus.APPROVED and decision is not None and decision.by == user:
            return record
        if record.status is not EventStatus.PENDING:
            raise ExpectationRefused(f"the event is {record.status.value}, not approved by you")
        if asyncio.get_running_loop().time() > deadline:
            raise ExpectationRefused("your approval is not recorded (yet), so nothing is expected")
        await asyncio.sleep(0.25)


async def expect_the_same(
    client: Client,
    key: str,
    task_queue: str,
    event_id: str,
    user: str,
    limits: Limits,
    shown: int | None = None,
) -> Expectation:
    """After `user` approved `event_id` with "Approve, and expect the same from me here": an
    expectation by them for the event's actor on its host and of its rule, for
    EXPECT_THE_SAME_FOR, `via: slack`, once the event's record shows that approval (a click
    delivered is not yet one that counted; for a group's question, `shown`, the clicked
    message's count, must be every event). Raises NoSuchExpectation for an unknown event,
    ExpectationRefused when the limits forbid it (not their account, a step-up rule) or the
    event has no host to be "here" (`same_here_refusal`: a click on a message from before the
    button was left off such events)."""
    record = await _approved_by(client, event_id, user)
    # A group's question: the approval that counted listed every event (`shown`, the clicked
    # message's count), and none joins after the decision. Another click's approval of the
    # group, after this one was refused, is not this one.
    if record.burst is not None and record.burst.members != shown:
        raise ExpectationRefused(
            f"the message you pressed listed {shown} of the {record.burst.members} events"
        )
    event = record.event
    if (nowhere := same_here_refusal(event)) is not None:
        raise ExpectationRefused(nowhere)
    assert event.host is not None  # same_here_refusal refuses an event without one
    now = datetime.now(UTC)
    expectation = new_expectation(
        actor=event.actor,
        hosts=[event.host],
        rules=[event.rule_id],
        until=now + EXPECT_THE_SAME_FOR,
        reason=f"approved {event_id} and expected the same for {_human(EXPECT_THE_SAME_FOR)}",
        created_by=user,
        via="slack",
        now=now,
    )
    if event.step_up is not None and not await limits.on_team(user):
        raise ExpectationRefused(f"{event.rule_id} needs a step-up: it cannot be pre-approved")
    return await create_expectation(client, key, task_queue, expectation, limits)
