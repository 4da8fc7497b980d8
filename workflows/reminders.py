"""Reminder digest: when many reminders fall due together (a burst of logins, an outage that
ends), one message lists them instead of one message each, so the security channel stays readable
and under Slack's ~1 message/second/channel.

One long-lived `ReminderDigestWorkflow` per task queue (started idempotently by the worker,
`services.starts.ensure_reminder_digest`). An `ApprovalWorkflow` whose reminder is due signals it
and waits briefly for its slot: "post your own reminder" or "you are in the digest". If the
digest workflow is not running or does not answer, the approval workflow posts its own reminder:
the digest only ever saves messages, never loses one. (Not the stale report, `workflows/stale.py`.)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.slack import SlackActivities
    from powertrip.contracts.reminders import (
        DUE_SIGNAL,
        REMINDER_DIGEST_WORKFLOW,
        SLOT_SIGNAL,
        DueReminder,
        ReminderDigestInput,
        ReminderDigestRequest,
        ReminderSlot,
    )
    from powertrip.contracts.slack import SLACK_CALL_TIMEOUT
    from workflows.patches import BOUNDED_DIGEST

# How long the digest waits after the first due reminder for others due "together".
GATHER_WINDOW = timedelta(seconds=5)
# Reminders taken into one digest, and carried over continue-as-new, at most. Anyone who reaches
# Temporal can send `due` signals: thousands in one batch made the activity's input larger than
# Temporal takes (2 MB), and the workflow failed its task for ever. The rest wait for the next
# batch; an event not answered within SLOT_TIMEOUT posts its own reminder, as when the digest
# is down, and so does one dropped at continue-as-new.
MAX_BATCH = 200


@workflow.defn(name=REMINDER_DIGEST_WORKFLOW)
class ReminderDigestWorkflow:
    """Gathers due reminders for `GATHER_WINDOW`; more than `digest_after` of them are posted as
    one digest, and every approval workflow in the batch is told its slot (`reminder_slot`).
    Continues as new when Temporal suggests it, carrying what is pending."""

    @workflow.init
    def __init__(self, input: ReminderDigestInput) -> None:
        self.pending: list[DueReminder] = list(input.carried)
        self.digest_after = input.digest_after

    @workflow.signal(name=DUE_SIGNAL)
    def due(self, reminder: DueReminder) -> None:
        """An approval workflow's reminder is due."""
        self.pending.append(reminder)

    @workflow.query
    def waiting(self) -> list[str]:
        """The events whose reminders wait for the next batch."""
        return [r.event_id for r in self.pending]

    @workflow.run
    async def run(self, input: ReminderDigestInput) -> None:
        """Batch, post, answer every slot; forever (continuing as new)."""
        while True:
            await workflow.wait_condition(lambda: bool(self.pending))
            await workflow.sleep(GATHER_WINDOW)
            if workflow.patched(BOUNDED_DIGEST):
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            else:
                batch, self.pending = self.pending, []
            in_digest = False
            digest_ts = None
            if len(batch) > self.digest_after:
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
                except ActivityError:
                    workflow.logger.warning("digest not posted; events remind on their own")
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
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                carried = self.pending
                if workflow.patched(BOUNDED_DIGEST):
                    carried = carried[:MAX_BATCH]
                workflow.continue_as_new(
                    ReminderDigestInput(digest_after=self.digest_after, carried=carried)
                )
