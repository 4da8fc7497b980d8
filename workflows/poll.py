"""Polling a source on a Temporal Schedule.

`PollWorkflow` is one poll of one source: it takes the cursor from the previous run's result (the
schedule's last completion result; the schedule is made by `services.starts.ensure_poll_schedules`),
fetches and starts everything newer
through the source's `LogSearch` (`powertrip.sources.log_search`), and returns the new cursor. A
source that stays down is retried every run, and the security channel hears of it once after
`alert_after`, and once more when it recovers.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.poll import PollActivities
    from powertrip.contracts.polling import (
        POLL_MISCONFIGURED,
        POLL_WORKFLOW,
        PollAlert,
        PollInput,
        PollOutcome,
        PollRequest,
        PollState,
    )
    from powertrip.contracts.slack import slack_call
    from workflows.patches import POLL_ANY_SOURCE

POLL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)


@workflow.defn(name=POLL_WORKFLOW)
class PollWorkflow:
    """One poll of one source (`PollInput`): fetch and start everything after the cursor, return
    the new `PollState`. A failed poll still completes, with the old cursor and the failure
    recorded; the security channel hears once after `alert_after` and once on recovery."""

    @workflow.run
    async def run(self, input: PollInput) -> PollState:
        """One poll; the state the next run continues from."""
        state = self._previous(input)
        # One poll may take up to an interval (at least 5 minutes) including retries; after that
        # the run records the failure and the next scheduled run tries again from the cursor.
        budget = max(timedelta(seconds=input.every_seconds), timedelta(minutes=5))
        # Polls recorded before polling was per source called `poll_papertrail` (still
        # registered as an alias); every new poll calls `poll_source` for any source.
        fetch = (
            PollActivities.poll_source
            if workflow.patched(POLL_ANY_SOURCE)
            else PollActivities.poll_papertrail
        )
        try:
            outcome: PollOutcome = await workflow.execute_activity_method(
                fetch,
                PollRequest(input=input, cursor=state.cursor),
                start_to_close_timeout=budget,
                schedule_to_close_timeout=budget,
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=POLL_RETRY,
                summary=f"fetch {input.source} events after {_position(input.source, state)}",
            )
        except ActivityError as err:
            return await self._failed(input, state, err)
        if state.alerted and state.failing_since is not None:
            await self._tell(
                PollAlert(
                    source=input.source,
                    recovered=True,
                    failing_since=state.failing_since,
                    until=workflow.now(),
                    cursor=outcome.cursor,
                ),
                "tell the security channel polling recovered",
            )
        moved = outcome.cursor != state.cursor
        return PollState(
            cursor=outcome.cursor,
            cursor_at=workflow.now() if moved else state.cursor_at,
            started_total=state.started_total + outcome.started,
        )

    def _previous(self, input: PollInput) -> PollState:
        if workflow.has_last_completion_result():
            previous = workflow.get_last_completion_result(PollState)
            if isinstance(previous, PollState):
                return previous
        return input.state or PollState()

    async def _failed(self, input: PollInput, state: PollState, err: ActivityError) -> PollState:
        cause = err.cause
        error = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        if isinstance(cause, ApplicationError) and isinstance(cause.cause, ApplicationError):
            error = cause.cause.message
        now = workflow.now()
        failing_since = state.failing_since or now
        permanent = isinstance(cause, ApplicationError) and cause.type == POLL_MISCONFIGURED
        alerted = state.alerted
        due = now - failing_since >= timedelta(seconds=input.alert_after_seconds)
        if not alerted and (due or permanent):
            await self._tell(
                PollAlert(
                    source=input.source,
                    failing_since=failing_since,
                    until=now,
                    error=error,
                    cursor=state.cursor,
                ),
                "tell the security channel polling is failing",
            )
            alerted = True
        workflow.logger.warning("poll of %s failed: %s", input.source, error)
        return state.model_copy(
            update={"failing_since": failing_since, "last_error": error, "alerted": alerted}
        )

    async def _tell(self, alert: PollAlert, summary: str) -> None:
        await workflow.execute_activity_method(
            PollActivities.post_poll_alert,
            alert,
            **slack_call(summary, timedelta(hours=1)),
        )


def _position(source: str, state: PollState) -> str:
    if state.cursor is None:
        return "(start)"
    return f"id {state.cursor}" if source == "papertrail" else f"cursor {state.cursor}"
