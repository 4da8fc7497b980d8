"""One review request per distinct unrecognised message shape per hour: post it to the security
channel so a human decides whether it needs a rule (or the source should ignore such lines)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.review import ReviewActivities
    from powertrip.unrecognised import ReviewPosted, UnrecognisedInput


@workflow.defn
class UnrecognisedEventWorkflow:
    @workflow.run
    async def run(self, input: UnrecognisedInput) -> ReviewPosted:
        return await workflow.execute_activity_method(
            ReviewActivities.post_unrecognised,
            input,
            start_to_close_timeout=timedelta(seconds=20),
            # Slack may be down a while; a review request is worth minutes of retrying, not a
            # stuck workflow: give up after a day (the count stays in the metrics).
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            summary=f"ask the security channel to review a {input.source} record",
        )
