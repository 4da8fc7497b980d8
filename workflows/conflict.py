"""One security-channel message about a delivery whose id was seen before with other content."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.conflict import ConflictActivities
    from powertrip.contracts.conflict import CONFLICT_WORKFLOW, ConflictReport
    from powertrip.contracts.slack import security_channel_post


@workflow.defn(name=CONFLICT_WORKFLOW)
class ConflictWorkflow:
    """Posts one `ConflictReport` (activity `post_conflict`); its id is per event and content."""

    @workflow.run
    async def run(self, report: ConflictReport) -> None:
        """Post the report to the security channel (gives up after a day)."""
        await workflow.execute_activity_method(
            ConflictActivities.post_conflict,
            report,
            **security_channel_post(
                f"tell the security channel {report.event_id} arrived with other content"
            ),
        )
