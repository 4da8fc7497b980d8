"""One security-channel message about a delivery whose id was seen before with other content."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.conflict import ConflictActivities
    from powertrip.conflicts import ConflictReport


@workflow.defn
class ConflictWorkflow:
    @workflow.run
    async def run(self, report: ConflictReport) -> None:
        await workflow.execute_activity_method(
            ConflictActivities.post_conflict,
            report,
            start_to_close_timeout=timedelta(seconds=20),
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            summary=f"tell the security channel {report.event_id} arrived with other content",
        )
