"""The worker's metrics: everything the worker process exports, on `POWERTRIP_METRICS_BIND`.

The Temporal SDK's own metrics plus `powertrip_slack_notifications`, `powertrip_pagerduty_events`
(counted by activities) and `powertrip_time_to_decision` (observed by workflow code), all through
Temporal's metric meter: workflow code stays replay-safe (the SDK drops workflow metrics while
replaying) and one endpoint per worker serves everything. The API has its own metrics
(`api/metrics.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity, workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError

    from powertrip.contracts.approval import EventRecord
    from powertrip.settings import Settings


NOTIFICATIONS = "powertrip_slack_notifications"
PAGES = "powertrip_pagerduty_events"
TIME_TO_DECISION = "powertrip_time_to_decision"
# Decisions take minutes to days, not the SDK's millisecond latencies.
DECISION_BUCKETS = [30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800]


def slack_error(exc: SlackApiError) -> str:
    """Slack's error name for a failed call (`http_<status>` when it gave none)."""
    data = exc.response.data
    error = data.get("error") if isinstance(data, dict) else None
    return str(error or f"http_{exc.response.status_code}")


def count_slack_call(
    method: str, kind: str, error: SlackApiError | None = None, *, deferred: bool = False
) -> None:
    """From a Slack activity: one call of `method` sent, or failed with Slack's error name
    (each failed attempt counts, so an outage shows while Temporal retries), or `deferred`: not
    sent yet, left to Temporal until its channel's turn (`powertrip.pacing`)."""
    activity.metric_meter().create_counter(
        NOTIFICATIONS, "Slack calls by method, message kind, result and Slack error."
    ).add(
        1,
        {
            "method": method,
            "kind": kind,
            "result": "failed" if error is not None else "deferred" if deferred else "sent",
            "error": slack_error(error) if error is not None else "",
        },
    )


def count_page(action: str, outcome: str) -> None:
    """From a paging activity: one Events API call (`trigger`, `acknowledge`, `resolve`) by
    outcome: `accepted`, `skipped` (no routing key), `rate_limited`, `unavailable`,
    `unreachable` or `refused`. Each failed attempt counts, so an outage shows while Temporal
    retries."""
    activity.metric_meter().create_counter(
        PAGES, "PagerDuty Events API calls by action and outcome."
    ).add(1, {"action": action, "outcome": outcome})


def observe_decision(record: EventRecord) -> None:
    """From workflow code, after a click was applied: time from receipt to this decision."""
    received = record.timeline[0].at if record.timeline else workflow.info().start_time
    workflow.metric_meter().create_histogram_float(
        TIME_TO_DECISION, "Seconds from receiving an event to a decision on it.", "s"
    ).record(
        (workflow.now() - received).total_seconds(),
        {"outcome": record.status.value, "rule": record.event.rule_id},
    )


def temporal_runtime(settings: Settings) -> Runtime | None:
    """The worker's runtime: SDK and Powertrip metrics on `POWERTRIP_METRICS_BIND`."""
    if not settings.metrics_bind:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=settings.metrics_bind,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={TIME_TO_DECISION: DECISION_BUCKETS},
            )
        )
    )
