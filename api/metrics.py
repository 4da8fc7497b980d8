"""The API's metrics, served at its `/metrics` with prometheus-client: what the webhooks received
and what became of it, and how many events wait for a decision. The worker has its own
(`activities/metrics.py`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from powertrip import temporal as attributes
from powertrip.contracts.approval import APPROVAL_WORKFLOW

if TYPE_CHECKING:
    from temporalio.client import Client

    from powertrip.services.recognise import ItemResult
    from powertrip.sources import ParsedItem

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
    """Count every record a webhook handled (`results`: `recognise.process`'s answer for
    `items`), unmatched ones included, since they are surfaced to the security team, never
    dropped. A record that could not be read counts under the `route` it came through."""
    for item, result in zip(items, results, strict=True):
        source = item.raw.source if item.raw is not None else route
        rule = result.rule_id or NO_RULE
        outcome = str(result.status)
        EVENTS_RECEIVED.labels(source=source).inc()
        EVENTS.labels(source=source, rule=rule, outcome=outcome).inc()


def pending_query(status: str) -> str:
    """Visibility query: running events in `status` (`pending` or `reported`)."""
    return (
        f'WorkflowType = "{APPROVAL_WORKFLOW}" AND ExecutionStatus = "Running" '
        f'AND {attributes.STATUS.name} = "{status}"'
    )


class PendingCounter:
    """Refreshes `powertrip_pending_events` from Temporal visibility, at most every `max_age`
    seconds however often Prometheus scrapes; on failure the last value stays and is logged."""

    STATUSES = ("pending", "reported")

    def __init__(self, max_age: float = 15.0) -> None:
        self.max_age = max_age
        self._refreshed = float("-inf")

    async def refresh(self, client: Client) -> None:
        """Ask visibility (unless asked within `max_age` seconds) how many events are pending and
        reported."""
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
