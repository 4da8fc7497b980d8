"""Test workflows that use the escalation schedule and the paging activities the way stage 2 of
issue 14 puts them into ApprovalWorkflow: sleep until the next step, take it, record what
PagerDuty answered; approving resolves every page, *Not me* pages at once and the security
team's acknowledgement acknowledges that page. They run in Temporal's workflow sandbox, which
proves the schedule (zone rules included) is usable from workflow code."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.pagerduty import PagerDutyActivities
    from powertrip.business_hours import BusinessHours
    from powertrip.contracts.paging import (
        PAGING_ACTIVITY,
        PageAction,
        PageResult,
        PageTrigger,
        PageUpdate,
        not_me_trigger,
        undecided_trigger,
    )
    from powertrip.escalation import (
        DueStep,
        EscalationPolicy,
        StepKind,
        TakenStep,
        Urgency,
        next_step,
    )
    from powertrip.models import SecurityEvent


class Entry(BaseModel):
    """A timeline line: `paged`, `page_failed`, `reminded`, `page_resolved`, ..."""

    what: str
    at: datetime
    detail: str = ""
    result: PageResult | None = None


class PageOnce(BaseModel):
    result: PageResult | None = None
    error: str | None = None
    error_type: str | None = None
    non_retryable: bool = False
    waited_seconds: float = 0.0


def _failure(err: ActivityError) -> ApplicationError | None:
    return err.cause if isinstance(err.cause, ApplicationError) else None


@workflow.defn
class PageOnceWorkflow:
    """One trigger through the paging activity, with the production retry policy."""

    @workflow.run
    async def run(self, trigger: PageTrigger) -> PageOnce:
        began = workflow.now()
        try:
            result = await workflow.execute_activity_method(
                PagerDutyActivities.trigger_page, trigger, **PAGING_ACTIVITY
            )
        except ActivityError as err:
            cause = _failure(err)
            return PageOnce(
                error=cause.message if cause else str(err),
                error_type=cause.type if cause else None,
                non_retryable=bool(cause and cause.non_retryable),
                waited_seconds=(workflow.now() - began).total_seconds(),
            )
        return PageOnce(result=result, waited_seconds=(workflow.now() - began).total_seconds())


@workflow.defn
class EscalationLoopWorkflow:
    """Follows the event's policy until someone decides (`decide("approve" | "not_me")`)."""

    @workflow.init
    def __init__(self, event: SecurityEvent) -> None:
        self.decision: str | None = None
        self.acknowledged = False
        self.taken: list[TakenStep] = []
        self.timeline: list[Entry] = []
        self.open_pages: list[str] = []

    @workflow.signal
    def decide(self, action: str) -> None:
        self.decision = action

    @workflow.signal
    def acknowledge(self) -> None:
        self.acknowledged = True

    @workflow.query
    def entries(self) -> list[Entry]:
        return self.timeline

    @workflow.run
    async def run(self, event: SecurityEvent) -> list[Entry]:
        started = workflow.now()
        policy = event.escalation_policy()
        while self.decision is None:
            due = next_step(policy, started, event.urgency, event.business_hours, self.taken)
            if due is None:
                await workflow.wait_condition(lambda: self.decision is not None)
                break
            try:
                await workflow.wait_condition(
                    lambda: self.decision is not None,
                    timeout=max(due.due - workflow.now(), timedelta(0)),
                )
                break
            except TimeoutError:
                pass
            now = workflow.now()
            self.taken.append(TakenStep(step=due.step, at=now))
            if due.do is StepKind.REMIND:
                self.timeline.append(Entry(what="reminded", at=now, detail=due.describe()))
                continue
            await self._trigger(undecided_trigger(event, due, now - started), now)
        if self.decision == "not_me":
            await self._trigger(not_me_trigger(event, "U0ALICE", "not me"), workflow.now())
            await workflow.wait_condition(lambda: self.acknowledged)
            await self._update(PageAction.ACKNOWLEDGE, event, self.open_pages[-1:])
        else:
            await self._update(PageAction.RESOLVE, event, self.open_pages)
        return self.timeline

    async def _trigger(self, trigger: PageTrigger, at: datetime) -> None:
        """`at`: when the step was taken (the timer fired), which the timeline shows; the
        answer may come much later (PagerDuty down for hours)."""
        try:
            options = PAGING_ACTIVITY.copy()
            options["summary"] = f"page on-call: {trigger.summary}"
            result = await workflow.execute_activity_method(
                PagerDutyActivities.trigger_page, trigger, **options
            )
        except ActivityError as err:
            cause = _failure(err)
            self.timeline.append(
                Entry(what="page_failed", at=at, detail=cause.message if cause else "")
            )
            return
        self.open_pages.append(result.dedup_key)
        self.timeline.append(Entry(what="paged", at=at, detail=result.describe(), result=result))

    async def _update(self, action: PageAction, event: SecurityEvent, keys: list[str]) -> None:
        method = (
            PagerDutyActivities.acknowledge_page
            if action is PageAction.ACKNOWLEDGE
            else PagerDutyActivities.resolve_page
        )
        for key in keys:
            result = await workflow.execute_activity_method(
                method,
                PageUpdate(subject_id=event.event_id, dedup_key=key),
                **PAGING_ACTIVITY,
            )
            self.timeline.append(
                Entry(
                    what=f"page_{action.value}d",
                    at=workflow.now(),
                    detail=result.describe(),
                    result=result,
                )
            )


class ScheduleQuestion(BaseModel):
    policy: EscalationPolicy
    started_at: datetime
    urgency: Urgency
    business_hours: BusinessHours | None
    taken: list[TakenStep] = []


@workflow.defn
class NextStepWorkflow:
    """`next_step` computed inside the workflow sandbox (zone rules loaded there)."""

    @workflow.run
    async def run(self, question: ScheduleQuestion) -> DueStep | None:
        return next_step(
            question.policy,
            question.started_at,
            question.urgency,
            question.business_hours,
            question.taken,
        )
