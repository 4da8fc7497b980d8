"""Reminder digest: when many reminders fall due together (a burst of logins, an outage that
ends), one message lists them instead of one message each, so the security channel stays readable
and under Slack's ~1 message/second/channel.

One long-lived `ReminderDigestWorkflow` per task queue (started idempotently by the worker). An
`ApprovalWorkflow` whose reminder is due signals it and waits briefly for its slot: "post your own
reminder" or "you are in the digest". If the digest workflow is not running or does not answer,
the approval workflow posts its own reminder: the digest only ever saves messages, never loses one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.slack import DigestRequest, SlackActivities
    from powertrip.messages import DigestLine

# How long the digest waits after the first due reminder for others due "together".
GATHER_WINDOW = timedelta(seconds=5)
# How long an approval workflow waits for its slot before posting on its own.
SLOT_TIMEOUT = timedelta(minutes=1)


def digest_workflow_id(task_queue: str) -> str:
    return f"powertrip-reminder-digest-{task_queue}"


class DueReminder(BaseModel):
    event_id: str
    cycle: str = ""
    line: DigestLine


class ReminderSlot(BaseModel):
    cycle: str
    in_digest: bool = False
    digest_ts: str | None = None


class DigestInput(BaseModel):
    digest_after: int = 5
    carried: list[DueReminder] = []


@workflow.defn
class ReminderDigestWorkflow:
    @workflow.init
    def __init__(self, input: DigestInput) -> None:
        self.pending: list[DueReminder] = list(input.carried)
        self.digest_after = input.digest_after

    @workflow.signal
    def due(self, reminder: DueReminder) -> None:
        self.pending.append(reminder)

    @workflow.query
    def waiting(self) -> list[str]:
        return [r.event_id for r in self.pending]

    @workflow.run
    async def run(self, input: DigestInput) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.pending))
            await workflow.sleep(GATHER_WINDOW)
            batch, self.pending = self.pending, []
            in_digest = False
            digest_ts = None
            if len(batch) > self.digest_after:
                try:
                    posted = await workflow.execute_activity_method(
                        SlackActivities.post_digest,
                        DigestRequest(lines=[r.line for r in batch]),
                        start_to_close_timeout=timedelta(seconds=20),
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
                        "reminder_slot",
                        ReminderSlot(cycle=r.cycle, in_digest=in_digest, digest_ts=digest_ts),
                    )
                    for r in batch
                ),
                return_exceptions=True,  # an event decided meanwhile has closed: nothing to tell
            )
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    DigestInput(digest_after=self.digest_after, carried=self.pending)
                )


async def ensure_digest_workflow(client: Client, task_queue: str, digest_after: int) -> None:
    """Start the task queue's digest workflow unless it is already running."""
    await client.start_workflow(
        ReminderDigestWorkflow.run,
        DigestInput(digest_after=digest_after),
        id=digest_workflow_id(task_queue),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Powertrip reminder digest",
    )
