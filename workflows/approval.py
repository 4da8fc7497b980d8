"""One durable workflow per security event: ask the right human, keep asking the security channel
until someone with authority decides, then mark every message with the decision."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    RetryState,
)
from temporalio.exceptions import TimeoutError as FailureTimeout

with workflow.unsafe.imports_passed_through():
    from activities import metrics
    from activities.decisions import DecisionActivities
    from activities.expectations import ExpectationActivities
    from activities.groups import GroupActivities
    from activities.reminders import ReminderActivities
    from activities.slack import SlackActivities
    from powertrip import temporal as attributes
    from powertrip.contracts.approval import (
        APPROVAL_WORKFLOW,
        DECIDE_SIGNAL,
        RECORD_MEMO,
        STATE_QUERY,
        Action,
        ApprovalInput,
        Authority,
        Click,
        EventRecord,
        MessageKind,
        PostedMessage,
        PostRequest,
        Recipient,
        TimelineEntry,
        TimelineKind,
        UpdateRequest,
        Verdict,
        VerifyBatch,
        VerifyRequest,
    )
    from powertrip.contracts.expectations import APPROVED_SIGNAL, ExpectedApproval, ExpectedEvent
    from powertrip.contracts.groups import JoinRequest
    from powertrip.contracts.reminders import (
        DUE_SIGNAL,
        HANDED_OFF,
        SLOT_SIGNAL,
        SLOT_TIMEOUT,
        DigestLine,
        DueReminder,
        HandOff,
        ReminderSlot,
        reminder_collector_id,
        reminder_digest_id,
    )
    from powertrip.contracts.slack import (
        LOCAL_GIVE_UP,
        SLACK_PERMANENT,
        slack_call,
        slack_in_task,
    )
    from powertrip.messages import visible
    from powertrip.models import Decision, DecisionKind, EventStatus
    from workflows.escalation import Escalation
    from workflows.patches import (
        BOUNDED_LOCAL_SLACK,
        CONTEST_APPROVAL,
        CONTINUE_BEFORE_SIGNAL_LIMIT,
        ESCALATION_SCHEDULE,
        EXPECTATION_APPROVALS,
        GROUPED_QUESTIONS,
        LOCAL_FIRST_QUESTION,
        LOCAL_LOOKUPS,
        LOCAL_MESSAGE_UPDATES,
        NOT_ME_FIRST,
        PAGE_NOT_ME,
        PAGES_FOLLOW_DECISIONS,
        PUBLISH_INCIDENT_MESSAGE,
        RECHECK_TEAM,
        REMINDER_DIGEST,
        REMINDERS_HANDED_OFF,
        REMINDERS_VIA_COLLECTORS,
        STALE_NO_DM,
        STEP_UP_APPROVALS,
        VERIFY_DECISIONS,
        VERIFY_IN_BATCHES,
        approval_baseline,
        patched,
    )

_Result = TypeVar("_Result")

FIRST_TASK_HISTORY = 3
"""A run's history as its first workflow task starts, the first time: WorkflowExecutionStarted,
WorkflowTaskScheduled, WorkflowTaskStarted. A first task tried again (its worker killed, its
deadline passed) starts with its failure and a new schedule and start: longer. (Not so a task the
SDK completed once while a local activity ran long, rerun after that: the rerun replays the
first batch, at this length; `_post` covers it by time.)"""
VERIFY_TIMEOUT = timedelta(seconds=10)
UPDATE_GIVE_UP = timedelta(hours=24)
"""A message's update to show the outcome is retried this long (either way it runs), then
recorded as failed."""
EXPECTATION_LOOKUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=3,
)
"""The expectation lookup's local activity: three 10 s attempts at most, about half a minute
(patch `bounded-local-slack-calls`; before it, with the default policy, a visibility that did
not answer held the first question back for two minutes and more)."""
HAND_OFF_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
)
"""Handing a due reminder to the digest (one signal, 5 s at most an attempt): three attempts,
then the reminder is posted on its own (patch `reminders-handed-off`). The workflow task is
kept alive meanwhile by the SDK's heartbeat."""
JOIN_TIMEOUT = timedelta(seconds=30)
"""One attempt to join a group (a few Temporal calls); retried until it succeeds."""
VERIFY_BATCH = 100
"""Signed clicks verified by one local activity: its marker stays far below Temporal's payload
limits (a verdict is a few hundred bytes)."""
# Refused and rejected decisions each leave a timeline entry, up to this many: a flood of forged
# signals must not grow the memo without bound (the history still holds every signal).
MAX_TRACES = 50
TRACES = (TimelineKind.REFUSED, TimelineKind.REJECTED, TimelineKind.TRACES_CAPPED)


@dataclass(frozen=True)
class _Received:
    click: Click
    at: datetime
    """The workflow's time of receipt: the decision's time once the click is verified."""
    seq: int
    """Arrival order in this run."""


class _Queue:
    """The decisions received and not yet handled, in arrival order. *Not me* ones wait in a
    queue of their own, so taking the oldest *Not me* ahead of older approvals costs the same
    as taking the oldest click, however many thousands of (forged) signals wait."""

    def __init__(self) -> None:
        self._reports: deque[_Received] = deque()
        self._others: deque[_Received] = deque()
        self.received = 0
        """Decisions received in this run."""

    def __bool__(self) -> bool:
        return bool(self._reports or self._others)

    def __len__(self) -> int:
        return len(self._reports) + len(self._others)

    def add(self, click: Click, at: datetime) -> None:
        queue = self._reports if click.action is Action.REPORT else self._others
        queue.append(_Received(click=click, at=at, seq=self.received))
        self.received += 1

    def take_many(self, most: int, not_me_first: Callable[[], bool]) -> list[_Received]:
        """Up to `most` clicks, in the order `take` would give them one by one."""
        return [self.take(not_me_first) for _ in range(min(most, len(self)))]

    def take(self, not_me_first: Callable[[], bool]) -> _Received:
        """The oldest click, or the oldest *Not me* when one waits behind other clicks and
        `not_me_first()` (asked only then: it stands for the patch that ordered it so)."""
        reports, others = self._reports, self._others
        if reports and (not others or reports[0].seq < others[0].seq or not_me_first()):
            return reports.popleft()
        return others.popleft()


@workflow.defn(name=APPROVAL_WORKFLOW)
class ApprovalWorkflow(Escalation):
    """One security event: ask the right human, keep asking until someone with authority
    decides, then mark every message with the decision. Input `ApprovalInput`; state, memo
    (`record`) and result: `EventRecord`.

    States (`record.status`) and what moves between them:

        received --resolve_recipient--> pending (DM the owner, or the security channel;
                                                 a stale event is asked nowhere)
        pending --the escalation policy's steps--> pending (a reminder: in the digest, or its
                    own post; a PagerDuty page; workflows/escalation.py)
        pending --approve (owner, approver, team)--> approved --> messages updated, done
        pending --approve on the owner's behalf--> approved, open for the contest window:
                    --window ends--> done;  --owner's Not me--> reported
        pending --Not me--> reported (incident alert to the channel and a page, at once)
        reported --the policy's reminders--> reported (reminder: incident unacknowledged)
        reported --team's acknowledge--> acknowledged --> messages updated, done

    Decisions arrive as the `decide` signal (`Click`): each is verified (a local activity
    checks its signature, its nonce is taken once) and checked against `record.may` before it
    counts; refused and rejected ones are recorded in the timeline and change nothing. A queued
    *Not me* is taken before a queued approval. The record is published to the memo and the
    `PowertripStatus` search attribute on every change. The workflow continues as new when
    Temporal suggests it after a reminder, and, once every decision waiting is handled, after
    `signals_per_run` signals: a flood of forged signals never reaches Temporal's per-run signal
    limit through which the owner's *Not me* must pass. Every change to the commands is a patch
    (`workflows/patches.py`); a run of today's code records them all as one baseline marker
    (`APPROVAL_BASELINES`, asked first in `run`).
    """

    @workflow.init
    def __init__(self, input: ApprovalInput) -> None:
        self.input = input
        self.record = input.carried or EventRecord(event=input.event)
        self.clicks = _Queue()
        self.slot: ReminderSlot | None = None
        self.handed_off: str | None = input.handed_off
        """The cycle of the reminder handed to the digest last (`_hand_off`): its answer, if
        it comes, says to post it after all."""
        self.signals = 0
        """Signals this run received: Temporal refuses them past its per-run limit."""
        self.traces = sum(entry.what in TRACES for entry in self.record.timeline)
        self.nonces = set(self.record.nonces)
        self.forwarded: set[str] = set()
        """GROUPS: nonces of decisions verified as signed for this member's group."""
        self.baseline: frozenset[str] = frozenset()
        """The patches the run's baseline marker stands for: it takes them without asking
        (`workflows.patches.approval_baseline`, `workflows.patches.patched`)."""
        self.bounded = False
        """Patch `bounded-local-slack-calls`, decided first thing in the run (`_slack`)."""
        self.crowded = False
        """The last batch of clicks handled held more than one: the workflow task that decided
        may be the rerun of one Temporal refused to complete because a click came in while it
        ran (`_update_messages`)."""

    @workflow.signal(name=DECIDE_SIGNAL)
    def decide(self, click: Click) -> None:
        """Durable even with no worker running: the click waits in history. It counts only once
        verified (powertrip.signing): anyone who can reach Temporal can send this signal."""
        self.signals += 1
        self.clicks.add(click, workflow.now())

    @workflow.signal(name=SLOT_SIGNAL)
    def reminder_slot(self, slot: ReminderSlot) -> None:
        """The digest workflow's answer: post your own reminder, or you are in the digest."""
        self.signals += 1
        self.slot = slot

    @workflow.query(name=STATE_QUERY)
    def state(self) -> EventRecord:
        """The record (needs a worker; readers use the memo `record`)."""
        return self.record

    @workflow.run
    async def run(self, input: ApprovalInput) -> EventRecord:
        """Ask, remind until decided, keep the contest window, then update every message."""
        # First thing in the run, before any patch is asked: a run of older code replays
        # without the marker and asks each patch as it did.
        self.baseline = approval_baseline()
        # Asked here, before any local activity, so no later task's order can change its answer.
        self.bounded = patched(BOUNDED_LOCAL_SLACK)
        event = self.record.event
        renotify = timedelta(seconds=event.renotify_after_seconds)
        if self.record.recipient is None:
            self.record.timeline.append(
                TimelineEntry(what=TimelineKind.RECEIVED, at=workflow.now())
            )
            self.record.recipient = await self._resolve_recipient()
            self._publish()
        elif not self._delivered(MessageKind.FIRST) and patched(LOCAL_FIRST_QUESTION):
            # A run continued as new before its first question went out looks up expectations
            # and asks as a first run does: the same patches decided before its local activities.
            _patches_before_lookups()
        # `and` short-circuits: histories of events that were never stale record no marker.
        stale = input.stale and patched(STALE_NO_DM)
        if stale:
            self._note_stale()
        elif (
            self.record.group is None
            and not self._delivered(MessageKind.FIRST)
            and await self._approved_by_expectation()
        ):
            # EXPECTATIONS (issue 13 §2): expected work is approved before anyone is asked.
            return self.record
        # GROUPS (issue 13 §1): a member of a burst's group is asked by the group.
        elif not await self._joined_group() and not self._delivered(MessageKind.FIRST):
            await self._notify_first(renotify)
        while True:
            if self.record.group is not None:  # GROUPS (issue 13 §1)
                await self._wait_for_group(renotify)
            else:
                # ESCALATION (issue 14): the policy's steps, or the old fixed reminder loop.
                await self._wait_for_decision(renotify, stale)
            # Only the contest-approval-on-behalf branch sets contest_until.
            if self.record.contest_until is None or not await self._contest(renotify):
                break
        await self._update_messages()
        # ESCALATION (issue 14): PagerDuty's answers to the pages' last calls are in the record.
        await self._pages_settled()
        return self.record

    async def _resolve_recipient(self) -> Recipient:
        """Whom to ask and who may decide: a local activity (patch `local-lookups`), else, for
        runs that began before it, an activity of its own."""
        event = self.record.event
        local = patched(LOCAL_LOOKUPS)
        if local:
            _patches_before_lookups()
        return await self._slack(
            SlackActivities.resolve_recipient,
            [event],
            f"who to ask about {visible(event.actor)}",
            None,
            local,
        )

    # --- GROUPS (issue 13 §1): a member of a burst's one question ----------------------------

    async def _joined_group(self) -> bool:
        """Whether this event is a member of a group (`record.group`), joining its key's open
        group first (patch `grouped-questions`) when its rule groups events and it was asked
        nothing yet. Events recorded before groups have no window and record no marker."""
        if self.record.group is not None:
            return True
        recipient = self.record.recipient
        if (
            not self.record.event.group_window_seconds
            or recipient is None
            or self.record.asked_at is not None
            or self.record.messages
            or not patched(GROUPED_QUESTIONS)
        ):
            return False
        joined = await workflow.execute_activity_method(
            GroupActivities.join_group,
            JoinRequest(event=self.record.event, recipient=recipient),
            start_to_close_timeout=JOIN_TIMEOUT,
            summary=f"join the group of {visible(self.record.event.actor)}'s like events",
        )
        if joined.group_id is None:
            return False
        self.record.group = joined.group_id
        self._note(TimelineKind.GROUPED, f"group: {joined.group_id}")
        return True

    async def _wait_for_group(self, renotify: timedelta) -> None:
        """Until decided by the group's forwarded decision: no question, reminder or page of
        its own (the group asks, reminds and pages once for all its members)."""
        while not self.record.finished:
            await workflow.wait_condition(lambda: bool(self.clicks))
            await self._handle_clicks(renotify)
            if not self.record.finished:
                self._continue_before_signal_limit(None)

    async def _verify_for_group(
        self, clicks: list[Click], verdicts: list[Verdict]
    ) -> list[Verdict]:
        """A member's verdicts: a click not signed for this event may be its group's decision,
        forwarded, which is signed for the group (`record.group`): verified for it by a second
        local activity, and its nonce kept in `forwarded` (the decision names the group)."""
        others = [c for c, v in zip(clicks, verdicts, strict=True) if not v.authentic]
        if not others:
            return verdicts
        reply = await workflow.execute_local_activity_method(
            DecisionActivities.verify_decisions,
            VerifyBatch(event_id=self.record.group or "", clicks=others),
            start_to_close_timeout=VERIFY_TIMEOUT,
            summary=f"verify {len(others)} decision(s) of the group",
        )
        for_group = iter(reply.verdicts)
        combined = []
        for click, verdict in zip(clicks, verdicts, strict=True):
            if not verdict.authentic:
                verdict = next(for_group)
                if verdict.authentic and click.nonce is not None:
                    self.forwarded.add(click.nonce)
            combined.append(verdict)
        return combined

    def _owner_asked_by_group(self) -> bool:
        """A member of a group that asked the owner: an approval on their behalf stays open to
        their *Not me* for the contest window, as the group's does, so a *Not me* the group
        forwards later still reports this event."""
        recipient = self.record.recipient
        return (
            self.record.group is not None
            and recipient is not None
            and recipient.slack_user is not None
            and recipient.slack_user == recipient.authority.actor_slack_user
        )

    # --- end GROUPS ---------------------------------------------------------------------------

    async def _until_decided(self, renotify: timedelta, stale: bool) -> None:
        """Remind until someone with authority approves or acknowledges."""
        # A run continued early (a flood of signals) keeps the reminder that was due.
        next_reminder = self.input.next_reminder_at or workflow.now() + renotify
        self.input.next_reminder_at = None
        while not self.record.finished:
            try:
                await workflow.wait_condition(
                    lambda: bool(self.clicks) or self._owed_reminder(),
                    timeout=None if stale else max(next_reminder - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                await self._remind(renotify, next_reminder)
                next_reminder = workflow.now() + renotify
                if (
                    workflow.info().is_continue_as_new_suggested()
                    and not self.clicks
                    and not self._owed_reminder()
                    and self._pages_idle()
                ):
                    self._continue_as_new(next_reminder)
                continue
            await self._handle_clicks(renotify)
            if not self.record.finished:
                await self._pay_owed_reminder(renotify)
                self._continue_before_signal_limit(next_reminder)

    async def _contest(self, renotify: timedelta) -> bool:
        """Approved on the owner's behalf: every copy shows it, and the owner's DM keeps *Not
        me* until `contest_until`. True if the owner reported it (the event is reopened)."""
        await self._update_messages()
        while self.record.contest_until is not None:
            try:
                await workflow.wait_condition(
                    lambda: bool(self.clicks),
                    timeout=max(self.record.contest_until - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                self.record.contest_until = None
                self._note(
                    TimelineKind.CONTEST_CLOSED,
                    "the owner did not report the approval on their behalf",
                )
                return False
            await self._handle_clicks(renotify)
            if self.record.contest_until is not None:
                self._continue_before_signal_limit(None)
        return self.record.status is EventStatus.REPORTED

    def _continue_as_new(self, next_reminder: datetime | None) -> NoReturn:
        """Hand over the record (with the nonces taken, and the escalation's state: when the
        policy's clock started, the steps taken, the pages and where each stands), the stale
        flag, the signal budget and when the next reminder of the fixed loop is due; and the
        memo as it is now, so readers (the API's check of a click against the event's
        messages, the content digest of duplicates) see no gap. Called with no click waiting
        (every decision received was verified and counted, or rejected, first) and no PagerDuty
        call in flight (its answer would be lost with this run)."""
        carried = self.input.model_copy(
            update={
                "carried": self.record,
                "next_reminder_at": next_reminder,
                "handed_off": self.handed_off,
            }
        )
        workflow.continue_as_new(carried, memo={**workflow.memo(), RECORD_MEMO: self.record})

    def _continue_before_signal_limit(self, next_reminder: datetime | None) -> None:
        """Temporal refuses a run's signals past its per-run limit (10,000 by default), the
        owner's *Not me* among them: continue as new well before, once `signals_per_run`
        signals arrived or Temporal suggests it, with nothing waiting to be handled and every
        PagerDuty call answered (a page's trigger or resolve in flight belongs to this run)."""
        if (
            self.clicks
            or self._owed_reminder()
            or not self._pages_idle()
            or (
                self.signals < self.input.signals_per_run
                and not workflow.info().is_continue_as_new_suggested()
            )
        ):
            return
        if patched(CONTINUE_BEFORE_SIGNAL_LIMIT):
            workflow.logger.info("continuing as new after %d signals in this run", self.signals)
            self._continue_as_new(next_reminder)

    def _note_stale(self) -> None:
        if not any(entry.what is TimelineKind.STALE for entry in self.record.timeline):
            self._note(
                TimelineKind.STALE,
                "found by backfill long after it happened: listed in the security channel's "
                "digest instead of a DM, no reminders",
            )

    def _delivered(self, kind: MessageKind) -> bool:
        return any(m.kind is kind for m in self.record.messages)

    def _waited(self) -> float:
        return (workflow.now() - self.record.timeline[0].at).total_seconds()

    def _note(self, what: TimelineKind, detail: str) -> None:
        """A timeline entry at the workflow's time, published at once."""
        self.record.timeline.append(TimelineEntry(what=what, at=workflow.now(), detail=detail))
        self._publish()

    def _publish(self) -> None:
        """Readers (API, CLI, HIDS) get the record from the memo: no worker needed, even after
        the workflow has closed."""
        workflow.upsert_memo({RECORD_MEMO: self.record})
        workflow.upsert_search_attributes([attributes.STATUS.value_set(self.record.status.value)])

    async def _post(
        self,
        request: PostRequest,
        give_up_after: timedelta,
        summary: str,
        first_question: str | None = None,
    ) -> PostedMessage:
        """Post `request`, retried until `give_up_after` (at least a minute), and record the
        message. Raises ActivityError when Slack refused or time ran out.

        An activity of its own, except the first question (`first_question`: its name, in its
        message's metadata; patch `local-first-question`): a local activity in the workflow task
        that decided to ask, so asking costs no activity task and no second workflow task. A
        local activity leaves no trace in history until its task completes: a task lost after
        it posted (a killed worker) is run again, and the rerun must not ask twice. So the post
        carries this task's time, and the activity looks for it first when this task is a retry
        (`FIRST_TASK_HISTORY`) or when it starts long after this task did
        (`activities.slack.LOST_TASK_AFTER`: a rerun of a task the SDK had completed once while
        the post ran, which replays with this task's history)."""
        give_up = max(give_up_after, timedelta(minutes=1))
        local = first_question is not None and patched(LOCAL_FIRST_QUESTION)
        if local:
            _patches_after_first_question()
            request.key = first_question
            request.scheduled_at = workflow.now()
            request.look_first = workflow.info().get_current_history_length() > FIRST_TASK_HISTORY
            if self.bounded:
                # Its local activity gives up within seconds, the post only after `give_up`.
                request.give_up_at = workflow.now() + give_up
        posted = await self._slack(
            SlackActivities.post_notification,
            [request],
            summary,
            give_up,
            local,
            # A local attempt may have posted with its answer lost: the activity looks first.
            continued=[request.model_copy(update={"look_first": True})] if local else None,
        )
        self.record.messages.append(posted)
        return posted

    def _failed(self, what: str, err: ActivityError) -> None:
        cause = err.cause
        detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        self._note(TimelineKind.NOTIFY_FAILED, f"{what}: {detail}")

    async def _approved_by_expectation(self) -> bool:
        """EXPECTATIONS (issue 13 §2). An active expectation covers the event (the worker
        checked its signature and limits, `find_expectation`): approve it now, `via:
        expectation`, by the expectation's creator with its reason, and ask nobody. False (ask
        as usual) when none does, when the lookup fails, and for workflows that began before
        expectations existed. Stale (backfilled) events never get here: they are listed in the
        stale digest, not pre-approved by an expectation made after them."""
        if not patched(EXPECTATION_APPROVALS):
            return False
        try:
            found = await self._find_expectation()
        except ActivityError as err:
            workflow.logger.warning("no expectation lookup, asking as usual: %s", err.cause)
            return False
        if found is None:
            return False
        expectation = found.expectation
        names = self.record.authority.names if self.record.authority else {}
        decision = Decision(
            kind=DecisionKind.APPROVED,
            by=expectation.created_by,
            name=names.get(expectation.created_by),
            at=workflow.now(),
            via="expectation",
            reason=expectation.reason,
            requested_at=expectation.created_at,
            authenticated=True,
            operator=expectation.operator,
            expectation=expectation.id,
        )
        self.record.decision = decision
        self.record.status = EventStatus.APPROVED
        self.record.timeline.append(
            TimelineEntry(
                what=TimelineKind.APPROVED,
                at=decision.at,
                by=expectation.created_by,
                name=decision.name,
                detail=f"expected: {expectation.id} by {expectation.created_by} until "
                f"{expectation.until:%Y-%m-%d %H:%M} UTC: {expectation.reason}",
            )
        )
        metrics.observe_decision(self.record)
        self._publish()
        # The security channel sees it on the expectation's notice: never silence.
        try:
            await workflow.get_external_workflow_handle(expectation.id).signal(
                APPROVED_SIGNAL,
                ExpectedEvent(
                    event_id=workflow.info().workflow_id,
                    action=self.record.event.action,
                    host=self.record.event.host,
                    at=self.record.event.occurred_at,
                ),
            )
        except FailureError:
            workflow.logger.warning("%s ended before it could list this event", expectation.id)
        return True

    async def _find_expectation(self) -> ExpectedApproval | None:
        """`find_expectation` (a visibility lookup): a local activity (patch `local-lookups`),
        else, for runs that began before it, an activity of its own. Either gives up after half
        a minute (visibility down or throttled: ask the human, not never)."""
        if patched(LOCAL_LOOKUPS):
            return await _as_activity(
                workflow.execute_local_activity_method(
                    ExpectationActivities.find_expectation,
                    self.record.event,
                    start_to_close_timeout=timedelta(seconds=10),
                    schedule_to_close_timeout=timedelta(seconds=30),
                    # The SDK did not end a local activity at its schedule-to-close timeout
                    # while its retries waited within the task: attempts bound it.
                    retry_policy=EXPECTATION_LOOKUP_RETRY if self.bounded else None,
                    summary="is this expected work?",
                ),
                "find_expectation",
            )
        return await workflow.execute_activity_method(
            ExpectationActivities.find_expectation,
            self.record.event,
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(seconds=30),
            summary="is this expected work?",
        )

    async def _notify_first(self, renotify: timedelta) -> None:
        recipient = self.record.recipient
        assert recipient is not None
        request = PostRequest(
            record=self.record,
            kind=MessageKind.FIRST,
            to_user=recipient.slack_user,
            note=recipient.note,
        )
        try:
            await self._post(request, renotify, f"ask {recipient.asked}", "first-question")
        except ActivityError as err:
            if recipient.slack_user is None or not _permanent(err):
                self._failed("first notification", err)
                return
            # The DM cannot be delivered (user gone, app not allowed): ask the channel instead.
            request.to_user = None
            request.note = f"Could not DM <@{recipient.slack_user}>: {err.cause}."
            try:
                await self._post(
                    request,
                    renotify,
                    "ask the security channel (DM failed)",
                    "first-question-in-channel",
                )
            except ActivityError as channel_err:
                self._failed("first notification", channel_err)
                return
        self._note(TimelineKind.NOTIFIED, recipient.asked_label)

    async def _remind(self, renotify: timedelta, due_at: datetime | None = None) -> None:
        """The reminder scheduled for `due_at`: in a digest, or posted on its own."""
        if not self._delivered(MessageKind.FIRST):
            await self._notify_first(renotify)
        if patched(REMINDER_DIGEST) and await self._in_digest(due_at):
            return
        await self._post_reminder(renotify)

    async def _post_reminder(self, renotify: timedelta, why: str = "") -> None:
        """The reminder's own post in the security channel. One thread per event there; its
        first reply is broadcast so the channel sees it once, the rest stay in the thread."""
        root = next((m for m in self.record.messages if m.in_security_channel), None)
        reminders = sum(1 for m in self.record.messages if m.kind is MessageKind.REMINDER)
        request = PostRequest(
            record=self.record,
            kind=MessageKind.REMINDER,
            waited_seconds=self._waited(),
            thread_ts=root.ts if root else None,
            broadcast=root is not None and reminders == 0,
        )
        try:
            await self._post(
                request, renotify, f"reminder #{reminders + 1} to the security channel"
            )
        except ActivityError as err:
            self._failed("reminder", err)
            return
        self._note(TimelineKind.REMINDED, f"waited {int(self._waited())}s{why}")

    def _owed_reminder(self) -> bool:
        """The digest answered the reminder this run handed off last (`_hand_off`): not in a
        digest, post your own. An answer for an earlier cycle, or one after a decision, is
        superseded: the later reminder, or the decision, stands for it."""
        return (
            self.handed_off is not None
            and self.slot is not None
            and self.slot.cycle == self.handed_off
            and not self.slot.in_digest
        )

    async def _pay_owed_reminder(self, renotify: timedelta) -> None:
        """Post the reminder the digest did not take, if it did not (`_owed_reminder`)."""
        if not self._owed_reminder():
            return
        self.handed_off = None
        await self._post_reminder(renotify, ", not taken into a digest")

    async def _in_digest(self, due_at: datetime | None) -> bool:
        """Whether this reminder goes into a digest (noted in the timeline) rather than its own
        post: handed off to the task queue's digest (patch `reminders-handed-off`), or, for runs
        that began before it, asked of the digest, waiting for its answer."""
        cycle = workflow.now().isoformat()
        self.slot = None
        due = DueReminder(
            event_id=workflow.info().workflow_id,
            cycle=cycle,
            due_at=due_at.isoformat() if due_at else "",
            line=DigestLine(
                event=self.record.event,
                asked=self.record.asked,
                incident=self.record.report is not None,
                waited_seconds=self._waited(),
            ),
        )
        if patched(REMINDERS_HANDED_OFF):
            return await self._hand_off(due)
        if await self._asked_digest(due):
            self._note(TimelineKind.REMINDED, f"in the digest, waited {int(self._waited())}s")
            return True
        return False

    async def _hand_off(self, due: DueReminder) -> bool:
        """Hand the due reminder to its collector by a local activity, in the workflow task
        whose timer made it due, and do not wait: one workflow task per reminder, where asking
        and waiting took three (the signal command's completion, the answer). At 10,000 pending
        those three, for reminders falling due as fast as the DMs went out, filled the worker's
        queue: reminders came minutes late (issue 16). The digest answers only a reminder it
        did not post (`DueReminder.answer_in_digest`); the wait for a decision takes that
        answer and posts it (`_pay_owed_reminder`). False, and the caller posts at once, when
        no collector or digest runs, or the hand-off failed."""
        due.answer_in_digest = False
        # Every patch the rest of this task may ask, asked before its local activity (a run of
        # older code that asks them first here records their markers here).
        _patches_after_first_question()
        try:
            handed = await _as_activity(
                workflow.execute_local_activity_method(
                    ReminderActivities.hand_off,
                    HandOff(task_queue=workflow.info().task_queue, reminder=due),
                    start_to_close_timeout=timedelta(seconds=5),
                    retry_policy=HAND_OFF_RETRY,
                    summary="hand the reminder to the digest",
                ),
                "hand_off",
            )
        except ActivityError as err:
            workflow.logger.warning("reminder not handed to the digest: %s", err.cause)
            return False
        if handed:
            self.handed_off = due.cycle
            self._note(
                TimelineKind.REMINDED,
                f"{HANDED_OFF}, waited {int(self._waited())}s",
            )
        return handed

    async def _asked_digest(self, due: DueReminder) -> bool:
        """Signal the due reminder to the collector (or digest) and wait up to `SLOT_TIMEOUT`
        for its answer: True if it is in the digest."""
        cycle = due.cycle
        task_queue = workflow.info().task_queue
        collected = False
        if patched(REMINDERS_VIA_COLLECTORS):
            collector = workflow.get_external_workflow_handle(
                reminder_collector_id(task_queue, due.event_id)
            )
            try:
                await collector.signal(DUE_SIGNAL, due)
                collected = True
            except FailureError:
                pass  # no collectors running (a worker from before them): the digest itself
        if not collected:
            digest = workflow.get_external_workflow_handle(reminder_digest_id(task_queue))
            try:
                await digest.signal(DUE_SIGNAL, due)
            except FailureError:
                return False  # no digest workflow running: remind on our own
        try:
            await workflow.wait_condition(
                lambda: self.slot is not None and self.slot.cycle == cycle, timeout=SLOT_TIMEOUT
            )
        except TimeoutError:
            return False
        return self.slot is not None and self.slot.in_digest

    async def _handle_clicks(self, renotify: timedelta) -> None:
        """Every click waiting, until none is. Verified in batches: one local activity (one
        marker in history) for up to `VERIFY_BATCH` signed clicks, so a flood of forged
        signals costs a few steps, not one each; then each is counted in the queue's order."""
        while self.clicks:
            if not patched(VERIFY_IN_BATCHES):
                await self._handle_one(renotify)  # a run that verified one click at a time
                continue
            patched(VERIFY_DECISIONS)
            _patches_before_verifying()
            batch = self.clicks.take_many(VERIFY_BATCH, _not_me_first)
            self.crowded = len(batch) > 1
            for received, verdict in zip(batch, await self._verify(batch), strict=True):
                if self._take_nonce(received, verdict):
                    await self._count(received, renotify, verified=True, cli_team_only=True)

    async def _handle_one(self, renotify: timedelta) -> None:
        received = self.clicks.take(_not_me_first)
        verified = patched(VERIFY_DECISIONS)
        if verified:
            _patches_before_verifying()
        if verified and not await self._authentic(received):
            return
        await self._count(received, renotify, verified)

    async def _count(
        self,
        received: _Received,
        renotify: timedelta,
        verified: bool,
        cli_team_only: bool = False,
    ) -> None:
        """A click that passed verification (or came before decisions were signed): refused
        without authority, otherwise the decision, and for a *Not me* the incident alert.
        `cli_team_only`: a `via: cli` decision counts only as the security team's override,
        whoever it names (as `events approve` itself checks)."""
        authority = self.record.authority
        assert authority is not None
        click = received.click
        # The API or CLI refused it (and told the clicker why): a trace, nothing more.
        refused = click.refused if verified else None
        if (
            refused is None
            and cli_team_only
            and click.via == "cli"
            and click.user not in authority.security_team
        ):
            refused = "only the security team may decide from the CLI"
        if refused is None and (
            not self.record.may(click.action, click.user)
            or not await self._still_on_team(authority, click)
        ):
            refusal = self.record.refusal(click.action, click.user)
            refused = refusal.plain if refusal else "not on the security team any more"
        # Step-up (issue 15): the one insertion point in the click path.
        refused = refused or self._without_step_up(click, verified)
        if refused is not None:
            workflow.logger.info(
                "ignored %s by %s while %s", click.action, click.user, self.record.status
            )
            if verified:
                self._trace(TimelineKind.REFUSED, received, refused)
            return
        decision = self.record.apply(click, received.at if verified else None)
        # A reminder handed off before the decision is not posted after it, if the digest
        # answers that it did not take it (`_owed_reminder`).
        self.handed_off = None
        if verified and click.nonce in self.forwarded:  # GROUPS: the group's decision
            decision.group = self.record.group
        if (
            decision.on_behalf
            and (self._owner_has_dm() or self._owner_asked_by_group())  # GROUPS
            and patched(CONTEST_APPROVAL)
            and authority.contest_window > timedelta(0)
        ):
            self.record.contest_until = received.at + authority.contest_window
        metrics.observe_decision(self.record)
        self._publish()
        if self.record.group is not None:
            # GROUPS (issue 13 §1): the group pages and alerts the channel once for all.
            return
        # ESCALATION (issue 14): a Not me pages; decisions settle the pages (not awaited).
        self._pages_follow(click.action)
        if click.action is Action.REPORT:
            await self._update_messages()
            try:
                await self._post(
                    PostRequest(record=self.record, kind=MessageKind.REPORT),
                    renotify,
                    "incident alert to the security channel",
                )
            except ActivityError as err:
                self._failed("incident alert", err)
            else:
                # The API checks a click against the messages in the memo: the alert's
                # Acknowledge button must be there at once, not after the next reminder.
                if patched(PUBLISH_INCIDENT_MESSAGE):
                    self._publish()

    async def _verify(self, batch: list[_Received]) -> list[Verdict | None]:
        """The verdict on each signed click of `batch` (None for an unsigned one, which needs
        no key to reject), from one local activity. The key stays in the worker: the verdicts
        are what history records."""
        signed = [r.click for r in batch if r.click.signature is not None]
        verdicts: Iterator[Verdict] = iter(())
        if signed:
            reply = await workflow.execute_local_activity_method(
                DecisionActivities.verify_decisions,
                VerifyBatch(event_id=workflow.info().workflow_id, clicks=signed),
                start_to_close_timeout=VERIFY_TIMEOUT,
                summary=f"verify {len(signed)} decision{'s' if len(signed) > 1 else ''}",
            )
            verdicts = iter(reply.verdicts)
            if self.record.group is not None:  # GROUPS (issue 13 §1)
                verdicts = iter(await self._verify_for_group(signed, list(verdicts)))
        return [next(verdicts) if r.click.signature is not None else None for r in batch]

    async def _authentic(self, received: _Received) -> bool:
        """One click verified by its own local activity (runs from before batches)."""
        click = received.click
        verdict = None
        if click.signature is not None:
            verdict = await workflow.execute_local_activity_method(
                DecisionActivities.verify_decision,
                VerifyRequest(event_id=workflow.info().workflow_id, click=click),
                start_to_close_timeout=VERIFY_TIMEOUT,
                summary=f"verify a {click.action.value} decision",
            )
        return self._take_nonce(received, verdict)

    def _take_nonce(self, received: _Received, verdict: Verdict | None) -> bool:
        """Signed by the API or CLI for this very event (`verdict`; None: unsigned), and its
        nonce not taken before: then the nonce is taken. Otherwise a `rejected` trace."""
        click = received.click
        reason = "unsigned" if click.signature is None else None
        if reason is None and verdict is not None and not verdict.authentic:
            reason = verdict.reason
        if reason is None and click.nonce in self.nonces:
            reason = "replayed: its nonce was taken before"
        if reason is None and click.nonce is not None:
            self.nonces.add(click.nonce)
            self.record.nonces.append(click.nonce)
            return True
        self._trace(TimelineKind.REJECTED, received, reason or "no nonce")
        return False

    def _without_step_up(self, click: Click, verified: bool) -> str | None:
        """Why a verified approval of a step-up event does not count: it was not confirmed with
        a passkey (an API or CLI that skipped the step-up, a forged-but-signed plain click).
        None when it counts, or for workflows that began before step-up existed."""
        if not (verified and self.record.needs_step_up(click)):
            return None
        if not patched(STEP_UP_APPROVALS):
            return None
        return (
            f"needs a step-up ({self.record.event.step_up}): only an approval confirmed with "
            "the approver's passkey counts; press Approve in Slack for a one-time link"
        )

    def _trace(self, what: TimelineKind, received: _Received, detail: str) -> None:
        """A refused or rejected decision in the timeline: it changed nothing, but it happened."""
        click = received.click
        traces = self.traces
        if traces > MAX_TRACES:
            return
        self.traces += 1
        if traces == MAX_TRACES:
            entry = TimelineEntry(
                what=TimelineKind.TRACES_CAPPED,
                at=received.at,
                detail=f"more than {MAX_TRACES} refused or rejected decisions: the rest are in "
                "the workflow's history only",
            )
        elif what is TimelineKind.REJECTED:
            # Nothing in a rejected click is proven: name nobody as `by`.
            entry = TimelineEntry(
                what=what,
                at=received.at,
                detail=f"{click.action.value} claimed by {click.user[:64]!r} via "
                f"{click.via[:16]!r}: {detail}",
            )
        else:
            entry = TimelineEntry(
                what=what,
                at=received.at,
                by=click.user,
                name=click.name,
                detail=f"{click.action.value}: {detail}",
            )
        self.record.timeline.append(entry)
        self._publish()

    def _owner_has_dm(self) -> bool:
        """The owner was asked in a DM, where a *Not me* button can stay after an approval on
        their behalf."""
        recipient = self.record.recipient
        return (
            recipient is not None
            and recipient.slack_user is not None
            and recipient.slack_user == recipient.authority.actor_slack_user
            and any(
                m.kind is MessageKind.FIRST and not m.in_security_channel
                for m in self.record.messages
            )
        )

    async def _still_on_team(self, authority: Authority, click: Click) -> bool:
        """The team was resolved when the event began; someone removed from it since (config
        changed, user group edited) must not decide events that were pending then."""
        without_team = authority.model_copy(update={"security_team": []})
        if without_team.may(
            click.action, self.record.status, click.user
        ) or self.record.contestable_by(click.user):
            return True  # the owner or a listed approver: the team does not matter
        if not patched(RECHECK_TEAM):
            return True
        try:
            # Annotated: left to inference, mypy (2.4) loses ApprovalWorkflow's own type in
            # every module that imports it.
            team: list[str] = await self._current_security_team()
        except ActivityError as err:
            # Slack's user group unreachable: keep the team known at the start.
            self._failed("security team check", err)
            return True
        if team != authority.security_team:
            authority.security_team = team
            self._publish()  # the API refuses the removed member's next click at once
        return click.user in team

    async def _current_security_team(self) -> list[str]:
        """The security team as Slack's user group has it now: a local activity (patch
        `local-lookups`, decided with the click's other patches before its verification), else
        an activity of its own. Either gives up after two minutes."""
        return await self._slack(
            SlackActivities.current_security_team,
            [],
            "who is on the security team now",
            timedelta(minutes=2),
            patched(LOCAL_LOOKUPS),
        )

    async def _update_messages(self) -> None:
        """Every copy of the message shows the outcome; none keeps live buttons.

        Each `chat.update` is a local activity in the workflow task that decided (patch
        `local-message-updates`), so an approval's click costs one workflow task that also
        completes the workflow: no activity task and no second workflow task. Temporal refuses
        that completion when a signal came in while the task ran (`UNHANDLED_COMMAND`); the
        task runs again with the new click beside the first, and may decide otherwise (a
        *Not me* goes first). Each update shows the whole record, so running them again is
        harmless and the last one shows what the record says."""
        stale = [
            m
            for m in self.record.messages
            if not (m.kind is MessageKind.REPORT and self.record.status is EventStatus.REPORTED)
        ]
        # A crowded batch may be the rerun of a task refused for a click that came in while
        # the local updates ran: updated by activity, its completion takes milliseconds, so a
        # stream of clicks cannot keep the run open, each refusing the last slow completion.
        local = patched(LOCAL_MESSAGE_UPDATES) and not (self.bounded and self.crowded)
        started = workflow.now()
        results: list[object] = []
        if local and self.bounded:
            # One after another: the SDK resumes concurrent local activities (and starts the
            # timer of one that backs off, a 429's long Retry-After) in the order they finish
            # as the task runs, but in the order they began on replay (sdk-python#1578).
            for message in stale:
                try:
                    await self._update_message(message, local)
                except ActivityError as err:
                    results.append(err)
                else:
                    results.append(None)
        else:
            calls = [self._update_message(m, local) for m in stale]
            results = list(await asyncio.gather(*calls, return_exceptions=True))
        # The updates Slack kept failing go on as activities, started in the messages' order.
        going_on: list[tuple[int, timedelta | None]] = []
        for n, result in enumerate(results):
            if local and isinstance(result, ActivityError):
                try:
                    going_on.append((n, self._goes_on(result, UPDATE_GIVE_UP, started)))
                except ActivityError:
                    pass
        later = await asyncio.gather(
            *(self._update_message(stale[n], False, rest) for n, rest in going_on),
            return_exceptions=True,
        )
        for (n, _), result in zip(going_on, later, strict=True):
            results[n] = result
        for result in results:
            if isinstance(result, ActivityError):
                self._failed("message update", result)
            elif isinstance(result, BaseException):
                raise result

    def _update_message(
        self, message: PostedMessage, local: bool, give_up_after: timedelta | None = UPDATE_GIVE_UP
    ) -> Awaitable[None]:
        """One message's `chat.update`: a local activity (`local`, `_call`), else an activity
        retried until `give_up_after`. Raises ActivityError when Slack refused or time ran
        out."""
        return self._call(
            SlackActivities.update_message,
            [UpdateRequest(record=self.record, message=message)],
            f"mark {message.kind.value} message {self.record.status.value}",
            give_up_after,
            local,
        )

    async def _slack(
        self,
        activity: Callable[..., Awaitable[_Result]],
        args: Sequence[object],
        summary: str,
        give_up_after: timedelta | None,
        local: bool,
        continued: Sequence[object] | None = None,
    ) -> _Result:
        """One Slack call (a `SlackActivities` method and its `args`), shown in the Web UI as
        `summary`, retried until `give_up_after` (None: until the workflow ends): a local
        activity in this workflow task (`local`), else an activity of its own. Raises
        ActivityError when Slack refused for good or time ran out, either way.

        Patch `bounded-local-slack-calls`: a local call that Slack still fails after
        `LOCAL_GIVE_UP` (15 s) goes on as an activity for the rest of its time
        (`_goes_on`), with `continued` as its arguments when given (a post that must look for
        its own earlier copy first). Before it, a local call's retries past its first seconds
        each waited on a timer in history, a minute apart for as long as Slack was down."""
        if not local:
            return await self._call(activity, args, summary, give_up_after, local=False)
        started = workflow.now()
        try:
            return await self._call(activity, args, summary, give_up_after, local=True)
        except ActivityError as err:
            rest = self._goes_on(err, give_up_after, started)
        return await self._call(activity, continued or args, summary, rest, local=False)

    def _call(
        self,
        activity: Callable[..., Awaitable[_Result]],
        args: Sequence[object],
        summary: str,
        give_up_after: timedelta | None,
        local: bool,
    ) -> Awaitable[_Result]:
        """`_slack`'s call once: an activity of its own, or (`local`) a local activity, in a
        bounded run for `LOCAL_GIVE_UP` at most with its retries all within the task (none
        waits on a timer in history)."""
        if not local:
            return workflow.execute_activity_method(
                activity, args=args, **slack_call(summary, give_up_after)
            )
        if self.bounded:
            give_up_after = min(give_up_after or LOCAL_GIVE_UP, LOCAL_GIVE_UP)
        config = slack_in_task(summary, give_up_after, within_task=self.bounded)
        return _as_activity(
            workflow.execute_local_activity_method(activity, args=args, **config),
            activity.__name__,
        )

    def _goes_on(
        self, err: ActivityError, give_up_after: timedelta | None, started: datetime
    ) -> timedelta | None:
        """After a local `_call` begun at `started` (workflow time) failed with `err`: how much
        longer the call is worth as an activity, the rest of `give_up_after` (None: until the
        workflow ends). Raises `err` when it is not: Slack refused for good, the failure was
        not Slack's to retry, the run is not bounded, or its time is up."""
        # Decided by the cause, which is the same as the task ran and on replay (the error
        # around it is not: `_as_activity`).
        cause = err.cause
        if (
            not self.bounded
            or (isinstance(cause, ApplicationError) and cause.non_retryable)
            or (give_up_after is not None and give_up_after <= LOCAL_GIVE_UP)
        ):
            raise err
        # Workflow time moves only between tasks: a call that failed within its task has the
        # whole of `give_up_after` left, so its post's deadline (`give_up_at`) still holds.
        spent = workflow.now() - started
        return None if give_up_after is None else max(give_up_after - spent, LOCAL_GIVE_UP)


async def _as_activity(call: Awaitable[_Result], activity: str) -> _Result:
    """Await a local activity `call`, failing as an activity does. The SDK raises a local
    activity's non-retryable failure as the bare `ApplicationError` (a `FailureError`: left
    uncaught, it fails the workflow), where an activity's is an `ActivityError` with it as the
    cause; callers catch `ActivityError` for both. So too a local activity's timeout or last
    attempt when its history is replayed: an `ActivityError` as it ran, the bare `TimeoutError`
    or `ApplicationError` on replay, which failed the workflow there (a nondeterminism error:
    the history went on as it had).
    `activity`: its name, for the error."""
    try:
        return await call
    except ActivityError:
        raise
    except (ApplicationError, FailureTimeout) as err:
        raise ActivityError(
            err.message,
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=activity,
            activity_id="",
            retry_state=(
                RetryState.TIMEOUT
                if isinstance(err, FailureTimeout)
                else RetryState.NON_RETRYABLE_FAILURE
                if err.non_retryable
                else RetryState.MAXIMUM_ATTEMPTS_REACHED
            ),
        ) from err


def _not_me_first() -> bool:
    """The owner saying *Not me* outweighs an approval queued just before it (e.g. the team
    approving on their behalf): the report must never be lost to the order of arrival."""
    return patched(NOT_ME_FIRST)


def _patches_before_verifying() -> None:
    """Decide, before the verifying local activity, every patch the rest of a click's handling
    may ask about. A slow local activity's result can reach the workflow in a later workflow task
    than its marker; on replay it comes at once, before that task's patch markers are known, so a
    first `workflow.patched` after it would answer differently and fail the replay. Asked here,
    each is memoized and its marker recorded beside the local activity. (A run that began with
    the baseline marker asks none of them: `workflows.patches.patched`.)"""
    patched(RECHECK_TEAM)
    patched(CONTEST_APPROVAL)
    patched(NOT_ME_FIRST)
    patched(PUBLISH_INCIDENT_MESSAGE)
    patched(CONTINUE_BEFORE_SIGNAL_LIMIT)
    patched(PAGE_NOT_ME)
    patched(PAGES_FOLLOW_DECISIONS)
    patched(STEP_UP_APPROVALS)
    patched(LOCAL_LOOKUPS)
    patched(LOCAL_MESSAGE_UPDATES)


def _patches_before_lookups() -> None:
    """Decide, before the first lookup's local activity, every patch the rest of the first
    workflow task may ask about before it waits on an activity or a timer (see
    `_patches_before_verifying`: a slow local activity's result reaches replay earlier than it
    reached the run)."""
    patched(STALE_NO_DM)
    patched(EXPECTATION_APPROVALS)
    patched(GROUPED_QUESTIONS)
    patched(ESCALATION_SCHEDULE)
    if patched(LOCAL_FIRST_QUESTION):
        _patches_after_first_question()


def _patches_after_first_question() -> None:
    """Decide, before the first question's local activity, every patch the rest of its workflow
    task may ask about: a click handled at once, an escalation step already due (see
    `_patches_before_verifying`). Only runs that post the first question locally ask here:
    older histories record these markers where the patch was first asked, later."""
    patched(VERIFY_IN_BATCHES)
    patched(VERIFY_DECISIONS)
    _patches_before_verifying()
    patched(REMINDER_DIGEST)
    patched(REMINDERS_VIA_COLLECTORS)
    patched(REMINDERS_HANDED_OFF)


def _permanent(err: ActivityError) -> bool:
    return isinstance(err.cause, ApplicationError) and err.cause.type == SLACK_PERMANENT
