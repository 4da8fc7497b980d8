"""`ApprovalWorkflow`'s escalation (issue 14): the event's policy drives its reminders and
PagerDuty pages, a *Not me* pages at once, and decisions settle the pages.

A mixin of `ApprovalWorkflow` (workflows/approval.py), in its own module so the workflow's own
flow (asking, deciding, the contest window) stays readable. The workflow calls it at three
points: `run()` waits for a decision through `_wait_for_decision` and, before it returns, lets
PagerDuty's answers arrive (`_pages_settled`); the click handling hands every applied decision
to `_pages_follow`.

The schedule (`powertrip.escalation.next_step`) is pure: the loop sleeps until the next step of
the policy (counted from `record.asked_at`, steps taken kept in `record.taken`, so a
continue-as-new or a worker restart picks up where it was), takes it, and computes the next.

Paging never blocks the decision wait: each PagerDuty call is started as an activity
(`workflow.start_activity_method`) in a workflow task of its own, chained per page (its
`dedup_key`), so an acknowledge or resolve is sent only once its trigger has settled and can
never overtake it. Temporal retries each call without limit: an outage delays a page and never
loses it, and the dedup key makes every retry the same incident. A page still being retried
when the event is decided is called off (its cancellation waits for the attempt in flight) and
resolved, in case an attempt got through.

What each decision does to the pages (patch `pages-follow-decisions`):

- approve (by anyone with authority): every page about the event being undecided is resolved;
- *Not me*: the same, and the *Not me* page (critical) is triggered at once (patch
  `not-me-page`);
- the security team's *Acknowledge* of a *Not me*: its page is acknowledged (PagerDuty stops
  notifying, the incident records it) and, since acknowledging closes the report, resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.pagerduty import PagerDutyActivities
    from powertrip.contracts.approval import (
        Action,
        ApprovalInput,
        EventRecord,
        TimelineEntry,
        TimelineKind,
    )
    from powertrip.contracts.paging import (
        NOT_ME_PAGE,
        Page,
        PageAction,
        PageResult,
        PageStatus,
        PageTrigger,
        PageUpdate,
        not_me_trigger,
        paging_call,
        step_page,
        undecided_trigger,
    )
    from powertrip.escalation import DueStep, EscalationPolicy, StepKind, TakenStep, next_step
    from powertrip.models import Decision, EventStatus
    from workflows.patches import (
        ESCALATION_SCHEDULE,
        PAGE_NOT_ME,
        PAGES_FOLLOW_DECISIONS,
        patched,
    )


class Escalation:
    """The escalation half of `ApprovalWorkflow`; see the module docstring."""

    if TYPE_CHECKING:
        # What it uses of ApprovalWorkflow.
        input: ApprovalInput
        record: EventRecord
        clicks: Any  # ApprovalWorkflow._Queue: true while a click waits

        def _publish(self) -> None: ...
        async def _remind(self, renotify: timedelta, due_at: datetime | None = None) -> None: ...
        def _owed_reminder(self) -> bool: ...
        async def _pay_owed_reminder(self, renotify: timedelta) -> None: ...
        async def _handle_clicks(self, renotify: timedelta) -> None: ...
        async def _until_decided(self, renotify: timedelta, stale: bool) -> None: ...
        def _continue_as_new(self, next_reminder: datetime | None) -> NoReturn: ...
        def _continue_before_signal_limit(self, next_reminder: datetime | None) -> None: ...

    # Per page (dedup key): the workflow task carrying its latest PagerDuty call, and the trigger
    # activity while it is in flight. Made on first use: ApprovalWorkflow's __init__ stays its own.
    _page_calls: dict[str, asyncio.Task[None]] | None = None
    _triggers: dict[str, workflow.ActivityHandle[PageResult]] | None = None

    async def _wait_for_decision(self, renotify: timedelta, stale: bool) -> None:
        """Until someone with authority approves or acknowledges: the event's escalation policy;
        workflows started before policies drove them keep a reminder every `renotify_after`."""
        if patched(ESCALATION_SCHEDULE):
            await self._escalate(renotify, stale)
        else:
            await self._until_decided(renotify, stale)

    async def _escalate(self, renotify: timedelta, stale: bool) -> None:
        """Take the policy's steps as they fall due, handling decisions as they come. A stale
        event takes none (it was listed in the backfill's digest, not asked)."""
        record = self.record
        if record.asked_at is None:
            # A run of the fixed reminder loop continued as new (a flood, or Temporal's
            # suggestion) hands over when its next reminder is due: the policy's clock starts
            # one `renotify_after` before it, so the hand-over never puts that reminder off.
            reminder_at = self.input.next_reminder_at
            record.asked_at = reminder_at - renotify if reminder_at else workflow.now()
        policy = record.event.escalation_policy()
        while not record.finished:
            if self.clicks:
                # Before any step, even an overdue one: a wait with no time left ends at once
                # without looking at the clicks.
                await self._handle_decisions(renotify)
                continue
            if self._owed_reminder():
                # The digest did not take the reminder handed to it: post it now.
                await self._pay_owed_reminder(renotify)
                continue
            due = None if stale else self._next_step(policy)
            try:
                await workflow.wait_condition(
                    lambda: bool(self.clicks) or self._owed_reminder(),
                    timeout=None if due is None else max(due.due - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                assert due is not None
                await self._take(policy, due, renotify)
                if (
                    workflow.info().is_continue_as_new_suggested()
                    and not self.clicks
                    and not self._owed_reminder()
                    and self._pages_idle()
                ):
                    # The schedule (asked_at, taken) and the pages travel in the record.
                    self._continue_as_new(None)
                # A flood that arrived while a PagerDuty call was in flight.
                self._continue_before_signal_limit(None)
                continue
            await self._handle_decisions(renotify)

    async def _handle_decisions(self, renotify: timedelta) -> None:
        """The clicks waiting; then, while undecided, continue as new if this run has taken
        its share of signals (`continue-as-new-before-signal-limit`): a flood of forged
        signals during an escalation must not reach Temporal's per-run limit either. The next
        run resumes the schedule from `record.asked_at` and `record.taken`, and settles the
        pages in `record.pages` on the decision."""
        await self._handle_clicks(renotify)
        if not self.record.finished:
            self._continue_before_signal_limit(None)

    def _next_step(self, policy: EscalationPolicy) -> DueStep | None:
        """The policy's next step; once the event is reported, only its reminders (the *Not me*
        page replaced the pages about it being undecided)."""
        record = self.record
        assert record.asked_at is not None
        return next_step(
            policy,
            record.asked_at,
            record.event.urgency,
            record.event.business_hours,
            record.taken,
            only=None if record.status is EventStatus.PENDING else StepKind.REMIND,
        )

    async def _take(self, policy: EscalationPolicy, due: DueStep, renotify: timedelta) -> None:
        """A reminder in the security channel (awaited, and taken once posted or handed to the
        digest: the next comes `every` after it, as reminders always did), or a page
        (taken when due and started: the wait for a decision goes on while PagerDuty answers)."""
        record = self.record
        if due.do is StepKind.REMIND:
            await self._remind(policy.steps[due.step].every or renotify, due.due)
            record.taken.append(TakenStep(step=due.step, at=workflow.now()))
            return
        now = workflow.now()
        record.taken.append(TakenStep(step=due.step, at=now))
        assert record.asked_at is not None
        self._start_page(undecided_trigger(record.event, due, now - record.asked_at), due)

    def _start_page(self, trigger: PageTrigger, due: DueStep | None = None) -> None:
        page = Page(
            dedup_key=trigger.dedup_key,
            name=step_page(due) if due else NOT_ME_PAGE,
            severity=trigger.severity,
            why=str(trigger.custom_details.get("why", "")),
            at=workflow.now(),
        )
        if due is not None and due.deferred:
            page.why += f" (deferred to business hours from {due.planned:%Y-%m-%d %H:%M} UTC)"
        self.record.pages.append(page)
        self._publish()
        self._chain(page, partial(self._trigger, page, trigger))

    def _pages_follow(self, action: Action) -> None:
        """After a decision was applied to the record: page for a *Not me*, settle the pages
        the decision answers (module docstring)."""
        record = self.record
        if action is Action.REPORT and patched(PAGE_NOT_ME):
            report = record.report
            assert report is not None
            self._start_page(not_me_trigger(record.event, report.who, report.reason))
        if not patched(PAGES_FOLLOW_DECISIONS):
            return
        decision = record.report if action is Action.REPORT else record.decision
        for page in record.pages:
            if page.not_me and action is Action.ACKNOWLEDGE:
                self._chain(page, partial(self._update, page, PageAction.ACKNOWLEDGE, decision))
            if page.not_me == (action is Action.ACKNOWLEDGE):
                self._call_off(page)
                self._chain(page, partial(self._update, page, PageAction.RESOLVE, decision))

    async def _pages_settled(self) -> None:
        """Before the workflow ends: every PagerDuty call it started has PagerDuty's answer (or
        its failure) in the record. Raises what a call raised that was not an activity's
        failure (a bug: the workflow task fails and is retried)."""
        for call in list((self._page_calls or {}).values()):
            await call

    def _pages_idle(self) -> bool:
        return all(call.done() for call in (self._page_calls or {}).values())

    # --- PagerDuty calls ------------------------------------------------------------------------

    def _chain(self, page: Page, call: Callable[[], Awaitable[None]]) -> None:
        """Run `call` once every call before it for the same page has settled."""
        calls = self._page_calls = self._page_calls or {}
        before = calls.get(page.dedup_key)

        async def after() -> None:
            if before is not None:
                await before
            await call()

        calls[page.dedup_key] = asyncio.create_task(after())

    def _call_off(self, page: Page) -> None:
        """A trigger PagerDuty has not taken yet (it is failing): cancel its retries."""
        handle = (self._triggers or {}).get(page.dedup_key)
        if page.status is PageStatus.SENDING and handle is not None:
            handle.cancel()

    async def _trigger(self, page: Page, trigger: PageTrigger) -> None:
        triggers = self._triggers = self._triggers or {}
        handle = workflow.start_activity_method(
            PagerDutyActivities.trigger_page,
            trigger,
            **paging_call(f"page on-call ({page.severity.value}): {page.why}"),
        )
        triggers[page.dedup_key] = handle
        try:
            result = await handle
        except (ActivityError, asyncio.CancelledError) as err:
            if _cancelled(err):
                page.status = PageStatus.CANCELLED
                self._page_note(
                    TimelineKind.PAGE_CANCELLED,
                    f"{page.why}: decided before PagerDuty took the page ({page.dedup_key})",
                )
            else:
                assert isinstance(err, ActivityError)
                page.status = PageStatus.FAILED
                self._page_note(TimelineKind.PAGE_FAILED, f"{page.why}: {_reason(err)}")
            return
        finally:
            triggers.pop(page.dedup_key, None)
        if not result.sent:
            page.status = PageStatus.SKIPPED
            self._page_note(TimelineKind.PAGE_SKIPPED, f"{page.why}: {result.describe()}", result)
            return
        page.status = PageStatus.OPEN
        self._page_note(TimelineKind.PAGED, f"{page.why}: {result.describe()}", result)

    async def _update(self, page: Page, action: PageAction, decision: Decision | None) -> None:
        """Acknowledge or resolve `page`, if PagerDuty may hold an incident for it that is not
        resolved yet (a skipped or refused trigger opened none)."""
        if not page.reached_pagerduty or (
            action is PageAction.ACKNOWLEDGE and page.status is not PageStatus.OPEN
        ):
            return
        method = (
            PagerDutyActivities.acknowledge_page
            if action is PageAction.ACKNOWLEDGE
            else PagerDutyActivities.resolve_page
        )
        try:
            result = await workflow.execute_activity_method(
                method,
                PageUpdate(subject_id=self.record.event.event_id, dedup_key=page.dedup_key),
                **paging_call(f"{action.value} page {page.name}"),
            )
        except ActivityError as err:
            self._page_note(
                TimelineKind.PAGE_FAILED, f"{action.value} {page.dedup_key}: {_reason(err)}"
            )
            return
        if action is PageAction.ACKNOWLEDGE:
            page.status, what = PageStatus.ACKNOWLEDGED, TimelineKind.PAGE_ACKNOWLEDGED
        else:
            page.status, what = PageStatus.RESOLVED, TimelineKind.PAGE_RESOLVED
        self._page_note(what, result.describe(), result, decision)

    def _page_note(
        self,
        what: TimelineKind,
        detail: str,
        result: PageResult | None = None,
        decision: Decision | None = None,
    ) -> None:
        """A page's line in the timeline, at the time PagerDuty answered; `decision`: the one
        that settled it (its author is the entry's `by`)."""
        self.record.timeline.append(
            TimelineEntry(
                what=what,
                at=workflow.now(),
                by=decision.by if decision else None,
                name=decision.name if decision else None,
                detail=detail,
                page=result,
            )
        )
        self._publish()


def _cancelled(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError) or (
        isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)
    )


def _reason(err: ActivityError) -> str:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)
