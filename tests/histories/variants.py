"""A worked example of changing ApprovalWorkflow while approvals are pending (see README,
"Changing a workflow safely"): the same change with and without `workflow.patched`.

The change: look the recipient up again before each reminder, so someone mapped in the directory
while an event waited is asked from then on. It adds an activity call to the reminder path; a
workflow that already reminded under the old code has no such call in its history.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.slack import SlackActivities
    from powertrip.contracts.approval import ApprovalInput, EventRecord
    from powertrip.contracts.slack import slack_call
    from workflows.approval import ApprovalWorkflow

REFRESH_RECIPIENT = "refresh-recipient-before-reminder"


class _RefreshRecipient(ApprovalWorkflow):
    async def _refresh_recipient(self) -> None:
        self.record.recipient = await workflow.execute_activity_method(
            SlackActivities.resolve_recipient,
            self.record.event,
            **slack_call(f"who to ask about {self.record.event.actor} now"),
        )


@workflow.defn(name="ApprovalWorkflow")
class UnguardedRefresh(_RefreshRecipient):
    """WRONG: pending workflows that already reminded fail to replay on this code."""

    @workflow.run
    async def run(self, input: ApprovalInput) -> EventRecord:
        return await super().run(input)

    async def _remind(self, renotify: timedelta, due_at: datetime | None = None) -> None:
        await self._refresh_recipient()
        await super()._remind(renotify, due_at)


@workflow.defn(name="ApprovalWorkflow")
class PatchedRefresh(_RefreshRecipient):
    """RIGHT: old histories take the old branch (no marker), new executions the new one."""

    @workflow.run
    async def run(self, input: ApprovalInput) -> EventRecord:
        return await super().run(input)

    async def _remind(self, renotify: timedelta, due_at: datetime | None = None) -> None:
        if workflow.patched(REFRESH_RECIPIENT):
            await self._refresh_recipient()
        await super()._remind(renotify, due_at)
