"""The stale report: one message to the security channel about old events a backfill or poll
started without DMs (not the reminder digest, `workflows/reminders.py`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.poll import PollActivities
    from powertrip.contracts.polling import STALE_REPORT_WORKFLOW, StaleReport
    from powertrip.contracts.slack import slack_call


@workflow.defn(name=STALE_REPORT_WORKFLOW)
class StaleReportWorkflow:
    """Posts one `StaleReport` (activity `post_stale_digest`). Its id is derived from the events
    (`contracts.polling.stale_report_id`), so a retried run cannot post it twice."""

    @workflow.run
    async def run(self, report: StaleReport) -> None:
        """Post the report to the security channel (gives up after a day)."""
        await workflow.execute_activity_method(
            PollActivities.post_stale_digest,
            report,
            **slack_call(
                f"digest of {report.total} stale events to the security channel",
                timedelta(hours=24),
            ),
        )
