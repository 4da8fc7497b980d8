"""`ExpectationWorkflow`: one expectation (expected work, pre-approved), from its creation to
its expiry (a timer) or its revocation (a signed `revoke` signal). Its memo (`expectation`) and
`PowertripStatus`/`PowertripActor` search attributes let the API, the CLI and the worker's
`find_expectation` list the active ones with no worker running. It holds no authority of its
own: the worker checks the expectation's signature and limits before it approves any event.

Never silent: the security channel gets one message per expectation, posted when it starts and
updated in place as it approves events (at most once per `NOTICE_PACE`, so a burst of 200 sudo
commands is a handful of edits, not 200 posts) and when it ends. It also keeps the list of the
events it approved (its result and history: the audit's other direction)."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.expectations import ExpectationActivities
    from powertrip import temporal as attributes
    from powertrip.contracts.expectations import (
        APPROVED_SIGNAL,
        EXPECTATION_MEMO,
        EXPECTATION_WORKFLOW,
        NOTICE_LISTED,
        REVOKE_SIGNAL,
        Expectation,
        ExpectationNotice,
        ExpectationStatus,
        ExpectedEvent,
        Revocation,
        RevocationCheck,
    )
    from powertrip.contracts.slack import slack_call

VERIFY_TIMEOUT = timedelta(seconds=10)
# Forged revocations change nothing; a flood of them is dropped past this many waiting.
MAX_WAITING = 100
NOTICE_PACE = timedelta(minutes=1)
"""The notice is edited at most this often while events are approved."""
GIVE_UP = timedelta(hours=1)
"""A Slack outage delays the notice this long at most; the events' records name it anyway."""


@workflow.defn(name=EXPECTATION_WORKFLOW)
class ExpectationWorkflow:
    """Input and result: `Expectation`. Waits until `until`, or until a `revoke` signal that
    the worker verifies (a local activity: the verdict is in history, the key is not). Signal
    `approved` (`ExpectedEvent`): an event it approved, shown in the security channel."""

    @workflow.init
    def __init__(self, expectation: Expectation) -> None:
        self.expectation = expectation
        self.revocations: deque[Revocation] = deque()
        self.notice = ExpectationNotice(expectation=expectation)
        self.unshown = 0
        """Approved events the notice does not show yet."""

    @workflow.signal(name=REVOKE_SIGNAL)
    def revoke(self, revocation: Revocation) -> None:
        if len(self.revocations) < MAX_WAITING:
            self.revocations.append(revocation)

    @workflow.signal(name=APPROVED_SIGNAL)
    def approved(self, event: ExpectedEvent) -> None:
        if any(item.event_id == event.event_id for item in self.notice.approved):
            return  # a retried signal
        self.notice.approved = [*self.notice.approved, event][-NOTICE_LISTED:]
        self.notice.total += 1
        self.unshown += 1

    @workflow.query(name=EXPECTATION_MEMO)
    def state(self) -> ExpectationNotice:
        return self.notice

    @workflow.run
    async def run(self, expectation: Expectation) -> Expectation:
        """Until expiry or a verified revocation; then the memo, status and notice say which."""
        await self._show(first=True)
        shown_at = workflow.now()
        while self.expectation.status is ExpectationStatus.ACTIVE:
            now = workflow.now()
            if self.expectation.until <= now:
                self.expectation.status = ExpectationStatus.EXPIRED
                break
            wake = self.expectation.until
            if self.unshown:
                wake = min(wake, shown_at + NOTICE_PACE)
            if wake > now:
                waiting = self.unshown > 0

                def woken(waiting: bool = waiting) -> bool:
                    # A revocation, or a first approval to show (it sets the pace).
                    return bool(self.revocations) or (not waiting and self.unshown > 0)

                try:
                    await workflow.wait_condition(
                        woken,
                        timeout=wake - now,
                    )
                except TimeoutError:
                    pass
            if self.revocations:
                await self._take_revocations()
            elif self.unshown and workflow.now() >= shown_at + NOTICE_PACE:
                await self._show()
                shown_at = workflow.now()
        workflow.upsert_memo({EXPECTATION_MEMO: self.expectation})
        workflow.upsert_search_attributes(
            [attributes.STATUS.value_set(self.expectation.status.value)]
        )
        await self._show()
        return self.expectation

    async def _show(self, first: bool = False) -> None:
        """Post the notice (first) or edit it in place; a Slack failure is logged, not fatal:
        each event's own record names the expectation that approved it."""
        self.notice.expectation = self.expectation
        self.unshown = 0
        try:
            if first:
                self.notice.message = await workflow.execute_activity_method(
                    ExpectationActivities.post_expectation_notice,
                    self.notice,
                    **slack_call("tell the security channel about this expectation", GIVE_UP),
                )
            elif self.notice.message is not None:
                await workflow.execute_activity_method(
                    ExpectationActivities.update_expectation_notice,
                    self.notice,
                    **slack_call(f"show {self.notice.total} approved events", GIVE_UP),
                )
        except ActivityError as err:
            workflow.logger.warning("expectation notice not shown: %s", err.cause)

    async def _take_revocations(self) -> None:
        while self.revocations:
            revocation = self.revocations.popleft()
            verdict = await workflow.execute_local_activity_method(
                ExpectationActivities.verify_revocation,
                RevocationCheck(expectation_id=self.expectation.id, revocation=revocation),
                start_to_close_timeout=VERIFY_TIMEOUT,
                summary=f"verify a revocation by {revocation.by[:64]}",
            )
            if verdict.authentic:
                self.expectation.status = ExpectationStatus.REVOKED
                self.expectation.revoked_by = revocation.by
                self.expectation.revoked_at = workflow.now()
                self.revocations.clear()
                return
            workflow.logger.warning("revocation rejected: %s", verdict.reason)
