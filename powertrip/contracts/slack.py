"""What every Slack activity shares: how Temporal retries it, the options one call is scheduled
with, and the error type of a refusal no retry can fix."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig, LocalActivityConfig

SLACK_PERMANENT = "SlackPermanentError"
"""The `ApplicationError` type of a Slack refusal no retry can fix (wrong token, missing scope,
unknown channel or user): `activities.slack_errors.classify` raises it non-retryable."""

SLACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
"""Slack may be down for hours: keep retrying, at most a minute apart; each call's
schedule-to-close timeout (where it has one) says when to give up and record the failure."""

SLACK_CALL_TIMEOUT = timedelta(seconds=20)
"""One attempt of one Slack Web API call."""

SLACK_CALL = ActivityConfig(start_to_close_timeout=SLACK_CALL_TIMEOUT, retry_policy=SLACK_RETRY)
"""Options of a Slack call; `slack_call` adds its summary and when to give up."""


def slack_call(summary: str, give_up_after: timedelta | None = None) -> ActivityConfig:
    """Options of one Slack call, shown in the Web UI as `summary`; `give_up_after`: the
    schedule-to-close timeout (None: retry until the workflow ends). Use as
    `workflow.execute_activity_method(fn, arg, **slack_call("ask alice", timedelta(hours=1)))`."""
    config = ActivityConfig(**SLACK_CALL, summary=summary)
    if give_up_after is not None:
        config["schedule_to_close_timeout"] = give_up_after
    return config


RETRY_IN_TASK = timedelta(seconds=5)
"""A local Slack call's retries that wait longer than this wait on a timer in the workflow's
history, not inside a workflow task that heartbeats (and grows the history) every few seconds
while Slack is down."""


LOCAL_GIVE_UP = timedelta(seconds=15)
"""A local Slack call is tried in its workflow task for at most this long (four attempts over
3.5 s, `SLACK_RETRY_IN_TASK`); a call worth retrying longer then goes on as an activity of its
own, whose retries add nothing to history (`workflows.approval.ApprovalWorkflow._slack`). A
local call's retries a minute apart, through a day of a Slack outage, would each be a marker, a
timer and a workflow task: thousands of events per call, towards Temporal's 51,200 per run."""


SLACK_RETRY_IN_TASK = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=4,
)
"""A local Slack call's retries: four attempts in all, at 0, 0.5, 1.5 and 3.5 s, each wait
under `RETRY_IN_TASK`, so none is a timer in history (a 429's Retry-After past it still is, once
or so). The attempts bound it, not only its schedule-to-close timeout (`LOCAL_GIVE_UP`), which the
SDK did not enforce on retries that wait within the task (seen on the time-skipping server)."""


def slack_in_task(
    summary: str, give_up_after: timedelta | None = None, within_task: bool = False
) -> LocalActivityConfig:
    """Options of a Slack call run as a local activity, in the workflow task that needs it (no
    activity task and no second workflow task): a directory lookup, mostly answered from the
    worker's cache, or an event's first question (which looks for its own earlier post where a
    lost run of its task may have made it: `PostRequest.look_first`); retried as every Slack call
    is (`within_task`: with `SLACK_RETRY_IN_TASK`); `give_up_after` as in `slack_call`. Use as
    `workflow.execute_local_activity_method(fn, arg, **slack_in_task("who is alice"))`."""
    config = LocalActivityConfig(
        start_to_close_timeout=SLACK_CALL_TIMEOUT,
        retry_policy=SLACK_RETRY_IN_TASK if within_task else SLACK_RETRY,
        local_retry_threshold=RETRY_IN_TASK,
        summary=summary,
    )
    if give_up_after is not None:
        config["schedule_to_close_timeout"] = give_up_after
    return config


def security_channel_post(summary: str) -> ActivityConfig:
    """Options of a one-off post to the security channel (a review request, a conflicting
    delivery): worth minutes of retrying, not a stuck workflow, so it gives up after a day."""
    return ActivityConfig(
        start_to_close_timeout=SLACK_CALL_TIMEOUT,
        schedule_to_close_timeout=timedelta(days=1),
        retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        summary=summary,
    )


class NoticeMessage(BaseModel):
    """Where Slack put a notice in the security channel (to update it in place later)."""

    channel: str
    ts: str
