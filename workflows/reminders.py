"""Reminder digest: when many reminders fall due together (a burst of logins, an outage that
ends), one message lists them instead of one message each, so the security channel stays readable
and under Slack's ~1 message/second/channel.

One long-lived `ReminderDigestWorkflow` per task queue, fed by `COLLECTORS` long-lived
`ReminderCollectorWorkflow`s (all started idempotently by the worker,
`services.starts.ensure_reminder_digest`). An `ApprovalWorkflow` whose reminder is due hands it
to its collector by a local activity and goes on waiting for a decision (patch
`reminders-handed-off`; runs from before it signal the collector and wait briefly for their
slot). Each collector hands what it took on to the digest once a second, in one signal, so the
digest's history takes a few signals a second however many reminders fall due. The digest tells
an approval its slot through an activity (`answer_slots`) when it must post its own reminder
(too few due together for a digest, a digest Slack would not take), and, for runs from before
the patch, when it is in the digest. If the collectors or the digest are not running, the
approval workflow posts its own reminder. A reminder handed off is in the digest's history until
it is posted or answered: a digest held up (its worker down, Slack down) posts it late, not
never; one terminated or reset while holding reminders drops them, and each event's next
reminder comes at its period (pages never go through the digest). (Not the stale report,
`workflows/stale.py`.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.reminders import ReminderActivities
    from activities.slack import SlackActivities
    from powertrip.contracts.reminders import (
        DIGEST_TASK_TIMEOUT,
        DUE_BATCH_SIGNAL,
        DUE_SIGNAL,
        REMINDER_COLLECTOR_WORKFLOW,
        REMINDER_DIGEST_WORKFLOW,
        SLOT_SIGNAL,
        SLOT_TIMEOUT,
        DueBatch,
        DueReminder,
        ReminderCollectorInput,
        ReminderDigestInput,
        ReminderDigestRequest,
        ReminderSlot,
        SlotAnswer,
        SlotAnswers,
    )
    from powertrip.contracts.slack import SLACK_CALL_TIMEOUT
    from workflows.patches import (
        BOUNDED_DIGEST,
        DIGEST_ANSWERS_BY_ACTIVITY,
        DIGEST_ANSWERS_HANDED_OFF,
        DIGEST_DRAINS_BACKLOG,
        DIGEST_GATHERS_FROM_DUE,
        DIGEST_LISTS_ONCE,
        DIGEST_RETRIES_BATCH,
    )

# Reminders that fell due within this of the oldest waiting one are "due together": the digest
# gathers until then (patch `reminder-digest-gathers-from-due`; before, for this long after
# the first one reached it, which at 10,000 pending added the ~3 s each took to arrive to
# every digested reminder's lateness: p50 7.4 s, p99 12.2 s, issue 16). 3 s was tried and split
# four reminders due together into two messages in a test on a busy machine.
GATHER_WINDOW = timedelta(seconds=5)
# With a full batch already waiting there is nothing to gather: the next digest goes after this
# pause, which keeps the security channel at no more than one digest a second (Slack's pace for
# a channel) whichever worker posts it.
DRAIN_PAUSE = timedelta(seconds=1)
# A run continues as new by this many history events even if Temporal has not suggested it yet,
# once its backlog fits the carry-over: every due reminder adds three events (its signal, and the
# answer's two), so a burst of thousands would grow one history past what a worker replays
# cheaply after evicting the run from its cache.
HISTORY_LIMIT = 3_000
# Past this, a run continues as new even with a backlog it cannot carry; those left over are
# told to post their own reminders (at Slack's pace), so none waits for an answer that never
# comes. Temporal warns at 10,240 events and ends a run at 51,200.
HISTORY_CEILING = 10_000
# Reminders taken into one digest, and carried over continue-as-new, at most. Anyone who reaches
# Temporal can send `due` signals: thousands in one batch made the activity's input larger than
# Temporal takes (2 MB), and the workflow failed its task for ever. The rest wait for the next
# batch; one dropped at continue-as-new is told to post its own (an approval from before
# `reminders-handed-off` not answered within SLOT_TIMEOUT posts its own anyway).
MAX_BATCH = 200
# "Due together" over a longer span: once `digest_after` reminders have been told to post on
# their own within this span, later ones go into digests however few arrive in one window.
# Under load the approvals' reminders reach the digest one by one, late, long after they fell
# due together: each then waited for the channel's pace in an activity slot of its own, and
# the slots the DMs needed filled up.
OWN_POST_SPAN = timedelta(minutes=1)
# A collector hands on what it took this often, at most this many at a time: with
# `COLLECTORS` of them the digest takes a few signals a second (Temporal fails a workflow task
# once more than 100 events arrive while it runs) and up to 200 reminders a second, the pace
# of its drained batches; 50 lines stay far under Temporal's 2 MB for one signal.
FORWARD_EVERY = timedelta(seconds=1)
FORWARD_BATCH = 50
# How long the digest remembers a reminder it listed or told to post its own, to drop a later
# copy of it (patch `reminder-digest-lists-once`): a hand-off retried into a collector's next
# run comes within its local activity's retries, seconds to a minute after the first.
LISTED_MEMORY = timedelta(minutes=10)
# Remembered at most, the newest kept: one forged `due_batch` can carry thousands of reminders,
# and the digest takes up to 200 a second. Keys are 32 characters (`DueReminder.key`).
LISTED_KEPT = 20_000
# The newest remembered reminders carried over continue-as-new, at most: under 100 bytes each,
# far under Temporal's 2 MB for the new run's input.
LISTED_CARRIED = 2_000
# How long "post your own" is retried for reminders handed off (patch `reminders-handed-off`):
# their approvals wait for nothing else, and the digest's loop waits for it meanwhile.
HANDED_OFF_ANSWER_GIVE_UP = timedelta(minutes=5)


@workflow.defn(name=REMINDER_DIGEST_WORKFLOW)
class ReminderDigestWorkflow:
    """Gathers due reminders until `GATHER_WINDOW` after the oldest fell due (`_gathering`);
    more than `digest_after` of them (or any, once
    `digest_after` have posted their own within `OWN_POST_SPAN`) are posted as one digest, and
    every approval workflow in the batch that waits for it is told its slot (`reminder_slot`;
    one that handed its reminder off is told only to post its own); a digest whose post fails
    is retried with those of its batch still waiting (`_still_waiting`; those handed off that
    it leaves out are told to post their own). A second copy of a reminder listed, told or
    pending lately is dropped (`_not_listed`). Continues as new when Temporal suggests it,
    carrying what is pending and what it listed lately."""

    @workflow.init
    def __init__(self, input: ReminderDigestInput) -> None:
        self.pending: list[DueReminder] = list(input.carried)
        self.digest_after = input.digest_after
        # When reminders were told to post their own, one entry each (within OWN_POST_SPAN).
        self.own_posts: list[datetime] = []
        # Reminders listed or told to post their own (`DueReminder.key` -> when), within
        # LISTED_MEMORY: a later copy is dropped.
        self.listed: dict[str, datetime] = {
            key: at for key, text in input.listed.items() if (at := _time(text)) is not None
        }
        self.lists_once = False  # patch `reminder-digest-lists-once`, asked for every batch

    @workflow.signal(name=DUE_SIGNAL)
    def due(self, reminder: DueReminder) -> None:
        """An approval workflow's reminder is due (approvals from before the collectors, or
        with none running)."""
        self.pending.append(reminder)

    @workflow.signal(name=DUE_BATCH_SIGNAL)
    def due_batch(self, batch: DueBatch) -> None:
        """A collector hands on the due reminders it took."""
        self.pending.extend(batch.reminders)

    @workflow.query
    def waiting(self) -> list[str]:
        """The events whose reminders wait for the next batch."""
        return [r.event_id for r in self.pending]

    @workflow.run
    async def run(self, input: ReminderDigestInput) -> None:
        """Batch, post, answer every slot; forever (continuing as new)."""
        while True:
            await workflow.wait_condition(lambda: bool(self.pending))
            drains = workflow.patched(DIGEST_DRAINS_BACKLOG)
            # A backlog of a full batch or more is due together already: no gathering window.
            # (Before, each batch of 200 waited 5 s, so from about 2,400 reminders due in a
            # minute the queue outlasted SLOT_TIMEOUT and every later one posted on its own.)
            backlog = drains and len(self.pending) >= MAX_BATCH
            if backlog:
                await workflow.sleep(DRAIN_PAUSE)
            elif workflow.patched(DIGEST_GATHERS_FROM_DUE):
                await workflow.sleep(_gathering(self.pending, workflow.now()))
            else:
                await workflow.sleep(GATHER_WINDOW)
            self.lists_once = workflow.patched(DIGEST_LISTS_ONCE)
            if self.lists_once:
                self.pending = self._not_listed(self.pending)
            if workflow.patched(BOUNDED_DIGEST):
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            else:
                batch, self.pending = self.pending, []
            in_digest = retried = False
            digest_ts = None
            if len(batch) > self.digest_after or (drains and self._own_posts_spent(len(batch))):
                try:
                    posted = await workflow.execute_activity_method(
                        SlackActivities.post_digest,
                        ReminderDigestRequest(lines=[r.line for r in batch]),
                        start_to_close_timeout=SLACK_CALL_TIMEOUT,
                        schedule_to_close_timeout=timedelta(seconds=45),
                        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                        summary=f"digest of {len(batch)} reminders",
                    )
                    in_digest, digest_ts = True, posted.ts
                except ActivityError as err:
                    if workflow.patched(DIGEST_RETRIES_BATCH) and not _refused(err):
                        # Telling a whole batch "post your own" made up to 200 per-event posts
                        # at Slack's pace: the pacer's queue grew, the next digest's post waited
                        # behind it and failed too (issue 16). The batch is retried instead;
                        # those whose approvals will have stopped waiting are left out, unanswered.
                        kept = _still_waiting(batch, workflow.now())
                        workflow.logger.warning(
                            "digest not posted; retrying %d of its %d reminders",
                            len(kept),
                            len(batch),
                        )
                        self.pending = kept + self.pending
                        retried = True
                        # Those handed off wait for no answer: left out, they post their own.
                        kept_ids = {id(r) for r in kept}
                        left_out = [
                            r for r in batch if id(r) not in kept_ids and not r.answer_in_digest
                        ]
                        if left_out and workflow.patched(DIGEST_ANSWERS_HANDED_OFF):
                            await _answer(left_out, False, None)
                            self._remember(left_out)
                    else:
                        workflow.logger.warning("digest not posted; events remind on their own")
            if not retried:
                await _answer(batch, in_digest, digest_ts)
                self._remember(batch)
            if drains:
                if not in_digest and not retried:
                    self.own_posts += [workflow.now()] * len(batch)
                await _continue_when_due(self.pending, self._next_run, _answer)
            elif workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                carried = self.pending
                if workflow.patched(BOUNDED_DIGEST):
                    carried = carried[:MAX_BATCH]
                workflow.continue_as_new(
                    ReminderDigestInput(digest_after=self.digest_after, carried=carried),
                    task_timeout=DIGEST_TASK_TIMEOUT,
                )

    def _not_listed(self, pending: list[DueReminder]) -> list[DueReminder]:
        """`pending` without a copy of a handed-off reminder (`DueReminder.key`: its event and
        cycle) listed or told to post its own within LISTED_MEMORY, or pending before it: a
        hand-off retried into a collector's next run, or into a collector after its first
        attempt went to the digest, hands the same reminder on twice. Kept: a copy whose
        approval waits for its slot (`answer_in_digest`, runs from before
        `reminders-handed-off`: each is told), and one with no cycle (nothing says it is the
        same reminder)."""
        since = workflow.now() - LISTED_MEMORY
        self.listed = {key: at for key, at in self.listed.items() if at > since}
        seen = set(self.listed)
        kept = []
        for reminder in pending:
            if not reminder.answer_in_digest and reminder.cycle:
                if (key := reminder.key()) in seen:
                    continue
                seen.add(key)
            kept.append(reminder)
        if dropped := len(pending) - len(kept):
            workflow.logger.info("%d reminders already listed or pending, dropped", dropped)
        return kept

    def _remember(self, reminders: list[DueReminder]) -> None:
        """Note `reminders` as listed or told, now; the newest LISTED_KEPT are kept."""
        now = workflow.now()
        self.listed.update((r.key(), now) for r in reminders)
        if len(self.listed) > LISTED_KEPT:
            self.listed = dict(self._newest(LISTED_KEPT))

    def _next_run(self, carried: list[DueReminder]) -> ReminderDigestInput:
        """The input of the run it continues as: `carried`, and what it listed lately."""
        return ReminderDigestInput(
            digest_after=self.digest_after,
            carried=carried,
            listed=self._carried_listing() if self.lists_once else {},
        )

    def _carried_listing(self) -> dict[str, str]:
        """The newest LISTED_CARRIED of `listed`, for the next run's input."""
        return {key: at.isoformat() for key, at in self._newest(LISTED_CARRIED)}

    def _newest(self, count: int) -> list[tuple[str, datetime]]:
        """The `count` most recently remembered of `listed`, oldest first."""
        return sorted(self.listed.items(), key=lambda item: item[1])[-count:]

    def _own_posts_spent(self, more: int) -> bool:
        """Whether `more` own posts would make more than `digest_after` within OWN_POST_SPAN."""
        since = workflow.now() - OWN_POST_SPAN
        self.own_posts = [at for at in self.own_posts if at > since]
        return len(self.own_posts) + more > self.digest_after


@workflow.defn(name=REMINDER_COLLECTOR_WORKFLOW)
class ReminderCollectorWorkflow:
    """Takes `due` signals from approval workflows and hands them on to the task queue's digest,
    at most `FORWARD_BATCH` in one `due_batch` signal every `FORWARD_EVERY`. With no digest
    running, tells them to post their own. Continues as new like the digest, carrying what it
    has not handed on."""

    @workflow.init
    def __init__(self, input: ReminderCollectorInput) -> None:
        self.pending: list[DueReminder] = list(input.carried)

    @workflow.signal(name=DUE_SIGNAL)
    def due(self, reminder: DueReminder) -> None:
        """An approval workflow's reminder is due."""
        self.pending.append(reminder)

    @workflow.query
    def waiting(self) -> list[str]:
        """The events whose reminders are not yet handed on."""
        return [r.event_id for r in self.pending]

    @workflow.run
    async def run(self, input: ReminderCollectorInput) -> None:
        """Hand on, forever (continuing as new)."""
        digest = workflow.get_external_workflow_handle(input.digest_id)
        while True:
            await workflow.wait_condition(lambda: bool(self.pending))
            await workflow.sleep(FORWARD_EVERY)
            batch, self.pending = self.pending[:FORWARD_BATCH], self.pending[FORWARD_BATCH:]
            try:
                await digest.signal(DUE_BATCH_SIGNAL, DueBatch(reminders=batch))
            except FailureError:
                workflow.logger.warning("no reminder digest running; events remind on their own")
                await _answer_by_activity(batch, in_digest=False, digest_ts=None)
            await _continue_when_due(
                self.pending,
                lambda carried: ReminderCollectorInput(digest_id=input.digest_id, carried=carried),
                _answer_by_activity,
            )


async def _continue_when_due(
    pending: list[DueReminder],
    carry: Callable[[list[DueReminder]], BaseModel],
    answer: Callable[[list[DueReminder], bool, str | None], Awaitable[None]],
) -> None:
    """Continue as new with input `carry(carried)` once Temporal suggests it or the history
    reaches `HISTORY_LIMIT`, and only when the backlog `pending` fits the carry-over
    (`MAX_BATCH`): a burst is drained first, nobody dropped. At `HISTORY_CEILING` it continues
    anyway; those it cannot carry are told (`answer`) to post their own reminders."""
    info = workflow.info()
    length = info.get_current_history_length()
    if not (info.is_continue_as_new_suggested() or length >= HISTORY_LIMIT):
        return
    if len(pending) > MAX_BATCH and length < HISTORY_CEILING:
        return
    await workflow.wait_condition(workflow.all_handlers_finished)
    carried, left = pending[:MAX_BATCH], pending[MAX_BATCH:]
    await answer(left, False, None)
    workflow.continue_as_new(carry(carried), task_timeout=DIGEST_TASK_TIMEOUT)


def _refused(err: ActivityError) -> bool:
    """Whether Slack refused the digest for good (wrong token, unknown channel): retrying the
    batch cannot help, and each event's own post records the failure in its timeline."""
    return err.retry_state == RetryState.NON_RETRYABLE_FAILURE


def _time(text: str) -> datetime | None:
    """`text` as an aware ISO 8601 time, or None when it is not one (a forged `due` signal's
    `cycle`, a test's)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _gathering(pending: list[DueReminder], now: datetime) -> timedelta:
    """How long to go on gathering: until `GATHER_WINDOW` after the oldest of `pending` fell
    due (`DueReminder.due_at`, else `cycle`), but at least `DRAIN_PAUSE` (the channel's pace)
    and at most `GATHER_WINDOW` (a time in the future, or none that is a time, gathers the
    whole window)."""
    times = [t for r in pending if (t := _time(r.due_at) or _time(r.cycle)) is not None]
    if not times:
        return GATHER_WINDOW
    # Subtracted, never added: a forged year 9999 plus 5 s overflows, and the task would fail
    # on every attempt, wedging the digest.
    left = GATHER_WINDOW - (now - min(times))
    return min(max(left, DRAIN_PAUSE), GATHER_WINDOW)


def _still_waiting(batch: list[DueReminder], now: datetime) -> list[DueReminder]:
    """The reminders of a failed digest's `batch` whose approval workflows will still wait for
    their slot when the batch is retried (after at most `GATHER_WINDOW`): each waits
    `SLOT_TIMEOUT` from its `cycle` (when it fell due), then posts its own reminder, so one
    listed in a later digest too would be posted twice. A `cycle` that is not an aware ISO 8601
    time (a forged `due` signal, a test's) has no age to go by: left out as well. One whose
    wait ends while the retried digest is being posted is both listed and posted on its own: a
    message twice, never none."""
    return [
        reminder
        for reminder in batch
        if (fell_due := _time(reminder.cycle)) is not None
        and -SLOT_TIMEOUT < now - fell_due < SLOT_TIMEOUT - GATHER_WINDOW
    ]


async def _answer(batch: list[DueReminder], in_digest: bool, digest_ts: str | None) -> None:
    """Tell every approval workflow in `batch` its slot for its cycle: through the activity
    `answer_slots`, or (runs from before it) one signal command each. In a digest, only those
    that wait for the answer (`DueReminder.answer_in_digest`): one handed off takes silence for
    it, and an answer would cost its run a workflow task."""
    # Asked only for a batch with such reminders: a history recorded before them asks nothing.
    if (
        in_digest
        and any(not r.answer_in_digest for r in batch)
        and workflow.patched(DIGEST_ANSWERS_HANDED_OFF)
    ):
        batch = [r for r in batch if r.answer_in_digest]
    if not batch:
        return
    if workflow.patched(DIGEST_ANSWERS_BY_ACTIVITY):
        await _answer_by_activity(batch, in_digest, digest_ts)
        return
    await asyncio.gather(
        *(
            workflow.get_external_workflow_handle(r.event_id).signal(
                SLOT_SIGNAL,
                ReminderSlot(cycle=r.cycle, in_digest=in_digest, digest_ts=digest_ts),
            )
            for r in batch
        ),
        return_exceptions=True,  # an event decided meanwhile has closed: nothing to tell
    )


async def _answer_by_activity(
    batch: list[DueReminder], in_digest: bool, digest_ts: str | None
) -> None:
    """Tell every approval workflow in `batch` its slot through the activity `answer_slots`:
    three history events for the batch where a signal command each made two per reminder, and
    up to 200 of them came back at once, past the 100 events Temporal buffers behind a running
    workflow task (it then fails the task). An approval from before `reminders-handed-off` not
    told (the activity gave up after its one-minute wait) posts its own reminder anyway; one
    that handed its reminder off waits for nothing, so a batch with such reminders is retried
    for `HANDED_OFF_ANSWER_GIVE_UP`."""
    if not batch:
        return
    answers = [
        SlotAnswer(
            event_id=r.event_id,
            slot=ReminderSlot(cycle=r.cycle, in_digest=in_digest, digest_ts=digest_ts),
        )
        for r in batch
    ]
    try:
        await workflow.execute_activity_method(
            ReminderActivities.answer_slots,
            SlotAnswers(answers=answers),
            start_to_close_timeout=timedelta(seconds=20),
            # Past the waiting approvals' minute an answer is of no use to them; those that
            # handed a reminder off have only this answer to go by.
            schedule_to_close_timeout=(
                SLOT_TIMEOUT
                if all(r.answer_in_digest for r in batch)
                else HANDED_OFF_ANSWER_GIVE_UP
            ),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
            summary=f"slots of {len(answers)} reminders",
        )
    except ActivityError:
        workflow.logger.warning("%d reminders not told their slot", len(answers))
