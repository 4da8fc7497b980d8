"""What operators see of a running Powertrip: Prometheus metrics, JSON logs carrying the event id,
and the Temporal runtime that exports the worker's metrics.

Where each metric lives:
- API (and any process that ingests): `powertrip_events_*` counters and the pending gauge, with
  prometheus-client, served at the API's `/metrics`.
- Worker: the Temporal SDK's own metrics plus `powertrip_slack_notifications`,
  `powertrip_pagerduty_events` and `powertrip_time_to_decision`, recorded through Temporal's
  metric meter so that workflow code stays replay-safe (the SDK drops workflow metrics while
  replaying) and one endpoint per worker (`POWERTRIP_METRICS_BIND`) serves everything.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from prometheus_client import Counter, Gauge
from temporalio import activity, workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError
    from temporalio.client import Client

    from powertrip.approvals import EventRecord
    from powertrip.ingest import ItemResult
    from powertrip.settings import Settings
    from powertrip.sources import ParsedItem

log = logging.getLogger("powertrip.events")

# --- Ingest (API side) -------------------------------------------------------------------------

EVENTS_RECEIVED = Counter(
    "powertrip_events_received",
    "Records received from a source, whatever became of them.",
    ["source"],
)
EVENTS = Counter(
    "powertrip_events",
    "Records by outcome: started (new workflow), duplicate, unmatched (no rule), invalid, "
    "non_event (a rule knows it is no action to ask about, e.g. a failed login).",
    ["source", "rule", "outcome"],
)
PENDING = Gauge(
    "powertrip_pending_events",
    "Events still waiting for a decision, from Temporal visibility (every API replica reports "
    "the same cluster-wide count: aggregate with max).",
    ["status"],
)
NO_RULE = "none"
UNKNOWN_SOURCE = "unknown"


def count_ingest(
    items: Sequence[ParsedItem], results: Sequence[ItemResult], route: str = UNKNOWN_SOURCE
) -> None:
    """Count and log one line per record `ingest.process` handled; unmatched ones included, since
    they are surfaced to the security team, never dropped. A record that could not be read
    counts under the `route` it came through."""
    for item, result in zip(items, results, strict=True):
        source = item.raw.source if item.raw is not None else route
        rule = result.rule_id or NO_RULE
        outcome = str(result.status)
        EVENTS_RECEIVED.labels(source=source).inc()
        EVENTS.labels(source=source, rule=rule, outcome=outcome).inc()
        log.info(
            "event %s",
            outcome,
            extra={
                "event_id": result.event_id,
                "source": source,
                "rule": rule,
                "outcome": outcome,
                "reason": result.reason,
            },
        )


def pending_query(status: str) -> str:
    return (
        'WorkflowType = "ApprovalWorkflow" AND ExecutionStatus = "Running" '
        f'AND PowertripStatus = "{status}"'
    )


class PendingCounter:
    """Refreshes `powertrip_pending_events` from Temporal visibility, at most every `max_age`
    seconds however often Prometheus scrapes; on failure the last value stays and is logged."""

    STATUSES = ("pending", "reported")

    def __init__(self, max_age: float = 15.0) -> None:
        self.max_age = max_age
        self._refreshed = float("-inf")

    async def refresh(self, client: Client) -> None:
        if time.monotonic() - self._refreshed < self.max_age:
            return
        try:
            for status in self.STATUSES:
                count = await client.count_workflows(pending_query(status))
                PENDING.labels(status=status).set(count.count)
        except Exception as exc:  # a scrape must still answer while visibility is down
            logging.getLogger("powertrip.metrics").warning("pending count failed: %s", exc)
            return
        self._refreshed = time.monotonic()


# --- Worker side (Temporal metric meter) -------------------------------------------------------

NOTIFICATIONS = "powertrip_slack_notifications"
PAGES = "powertrip_pagerduty_events"
TIME_TO_DECISION = "powertrip_time_to_decision"
# Decisions take minutes to days, not the SDK's millisecond latencies.
DECISION_BUCKETS = [30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800]


def slack_error(exc: SlackApiError) -> str:
    data = exc.response.data
    error = data.get("error") if isinstance(data, dict) else None
    return str(error or f"http_{exc.response.status_code}")


def count_slack_call(method: str, kind: str, error: SlackApiError | None = None) -> None:
    """From a Slack activity: one call of `method` sent, or failed with Slack's error name
    (each failed attempt counts, so an outage shows while Temporal retries)."""
    activity.metric_meter().create_counter(
        NOTIFICATIONS, "Slack calls by method, message kind, result and Slack error."
    ).add(
        1,
        {
            "method": method,
            "kind": kind,
            "result": "failed" if error is not None else "sent",
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


# --- Logs ---------------------------------------------------------------------------------------

EVENT_ID: ContextVar[str | None] = ContextVar("powertrip_event_id", default=None)

# Attributes every LogRecord has; anything else came from `extra=` and is worth printing.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def event_id_of(record: logging.LogRecord) -> str | None:
    """The event a log line is about: explicit `extra`, else the Temporal workflow id (which is
    the event id) that the SDK's workflow/activity loggers attach, else the current context."""
    explicit = getattr(record, "event_id", None)
    if explicit:
        return str(explicit)
    for attr in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, attr, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return str(info["workflow_id"])
    return EVENT_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, event_id, and any `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event_id = event_id_of(record)
        if event_id:
            line["event_id"] = event_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        event_id = event_id_of(record)
        return f"{text} [event {event_id}]" if event_id and event_id not in text else text


# Query parameters whose value is a secret. Compared after percent-decoding, as the server
# decodes them before authenticating: `?t%6Fken=` is `?token=`.
SECRET_PARAMETERS = frozenset({"token", "access_token", "api_key", "apikey", "secret", "password"})
_QUERY = re.compile(r"\?[^\s\"]*")
REDACTED = "[redacted]"


def _decoded_name(name: str) -> str:
    # Decode until stable (a few rounds): whatever the encoding a client chose, the name the
    # server acts on, or one a proxy would decode again, is what decides.
    for _ in range(4):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower()


def redact_query(text: str) -> str:
    """`/webhooks/papertrail?t%6Fken=s3cret&x=1` → `/webhooks/papertrail?t%6Fken=[redacted]&x=1`:
    every query string in `text` keeps its shape, with the value of each secret parameter
    (`SECRET_PARAMETERS`, names compared percent-decoded and ignoring case) replaced."""

    def one(found: re.Match[str]) -> str:
        pairs = []
        for pair in found.group(0)[1:].split("&"):
            name, equals, _ = pair.partition("=")
            secret = equals and _decoded_name(name) in SECRET_PARAMETERS
            pairs.append(f"{name}={REDACTED}" if secret else pair)
        return "?" + "&".join(pairs)

    return _QUERY.sub(one, text) if "?" in text else text


# A step-up or passkey link: `/verify/<Slack user>.<secret>` (api/routes/passkeys.py).
_LINK_SECRET = re.compile(r"(/(?:verify|passkeys/register)/[A-Z0-9]+\.)[A-Za-z0-9_-]+")


class RedactQuerySecrets(logging.Filter):
    """Providers that cannot set headers (Papertrail) put the webhook secret in `?token=`, and a
    step-up link's secret is in its path: access logs keep neither, however the name or value
    of a query parameter is encoded."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _LINK_SECRET.sub(rf"\1{REDACTED}", redact_query(arg))
                if isinstance(arg, str)
                else arg
                for arg in record.args
            )
        return True


def redact_access_logs() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuerySecrets) for f in access.filters):
        access.addFilter(RedactQuerySecrets())


def configure_logging(settings: Settings) -> None:
    """For the service entry points (worker, `python -m api`), not for library use or tests."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn installs its own handlers; route its lines through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if settings.log_format == "json":
        # The workflow/activity info is a field of the JSON line, not text appended to it.
        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False


class _EventIdActivities(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        token = EVENT_ID.set(activity.info().workflow_id)
        try:
            return await super().execute_activity(input)
        finally:
            EVENT_ID.reset(token)


class EventIdInterceptor(Interceptor):
    """Every line logged while an activity runs (ours, slack_sdk's, aiohttp's) carries the id
    of the event whose workflow scheduled it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _EventIdActivities(next)
