"""`PollWorkflow` (one poll of one source, run by a Temporal Schedule) and `StaleReportWorkflow`
(one security-channel message about old events a backfill or poll started without DMs): their
inputs and results, what the polling activities exchange with them, and the ingest counts that
backfill and polling reports share."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from powertrip.config import PollOptions, PowertripConfig
from powertrip.models import SecurityEvent
from powertrip.sources.log_search import SearchScope

POLL_WORKFLOW = "PollWorkflow"
STALE_REPORT_WORKFLOW = "StaleDigestWorkflow"
"""`StaleReportWorkflow`'s registered type name (recorded histories and open workflows use it)."""

POLL_FAILED = "PollSourceFailed"
"""ApplicationError type: the source failed; the activity's retries may help."""
POLL_MISCONFIGURED = "PollSourceMisconfigured"
"""ApplicationError type: the source is not configured (no token, no log group); no retry
helps, and the security channel is told at once."""


class IngestCounts(BaseModel):
    """What became of the records one run read: the counts a backfill's `Report` and a poll's
    `PollOutcome` share (every count is a number of records)."""

    read: int = 0
    started: int = Field(default=0, description="New workflows (dry run: would start).")
    already_known: int = Field(
        default=0, description="Duplicates and conflicts: an event with this id or identity exists."
    )
    unmatched: int = 0
    invalid: int = 0
    stale: int = Field(default=0, description="Started without a DM: older than the cut-off.")

    def add(self, other: IngestCounts) -> None:
        """Add `other`'s counts (of `IngestCounts`' fields) to these."""
        for name in IngestCounts.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class PollState(BaseModel):
    """Handed from one poll run to the next (the run's result)."""

    cursor: str | None = Field(default=None, description="Newest provider id processed.")
    cursor_at: datetime | None = Field(default=None, description="When the cursor last moved.")
    failing_since: datetime | None = None
    last_error: str | None = None
    alerted: bool = Field(default=False, description="The security channel has been told.")
    started_total: int = 0


class PollInput(SearchScope):
    """What the schedule passes every run: the source and its options (what to search from
    `SearchScope`); durations in seconds."""

    # Schedules hold this as JSON: tolerate fields a newer or older version wrote.
    model_config = ConfigDict(extra="ignore")

    source: str
    every_seconds: float = 60.0
    alert_after_seconds: float = 15 * 60.0
    lookback_seconds: float = 3600.0
    stale_after_seconds: float = 7 * 86400.0
    state: PollState | None = Field(
        default=None, description="Only when there is no previous run to continue from."
    )


def poll_input(source: str, options: PollOptions, config: PowertripConfig) -> PollInput:
    """The schedule's input for `source` from its `sources.<name>.poll` options."""
    return PollInput(
        source=source,
        **{name: getattr(options, name) for name in SearchScope.model_fields},
        every_seconds=options.every.total_seconds(),
        alert_after_seconds=options.alert_after.total_seconds(),
        lookback_seconds=options.lookback.total_seconds(),
        stale_after_seconds=config.stale_after.total_seconds(),
    )


class PollRequest(BaseModel):
    """The `poll_source` activity: everything after `cursor` (None: the first poll)."""

    input: PollInput
    cursor: str | None


class PollOutcome(IngestCounts):
    """What one poll did, and the cursor the next one starts from."""

    cursor: str | None


class PollAlert(BaseModel):
    """The security channel is told polling fails (or works again, `recovered`)."""

    source: str
    recovered: bool = False
    failing_since: datetime
    until: datetime
    error: str | None = None
    cursor: str | None = None


STALE_LISTED = 200
"""Events named in a stale report; the rest are counted."""


class StaleEvent(BaseModel):
    """What the security channel's stale report says about one stale event."""

    event_id: str
    summary: str
    occurred_at: datetime

    @classmethod
    def of(cls, event: SecurityEvent) -> StaleEvent:
        """What the report says of `event`: when, what, by whom, where and from where."""
        where = f" on {event.host}" if event.host else ""
        origin = f" from {event.address}" if event.address else ""
        return cls(
            event_id=event.event_id,
            summary=f"{event.action} by {event.actor}{where}{origin}",
            occurred_at=event.occurred_at,
        )


class StaleReport(BaseModel):
    """One security-channel message about stale events a backfill or poll started."""

    found_by: str = Field(description="e.g. `backfill of auth.log` or `papertrail poll`.")
    stale_after_seconds: float
    total: int
    events: list[StaleEvent]


def stale_report_id(events: list[StaleEvent]) -> str:
    """Same stale events, same report: a retried run cannot post it twice."""
    ids = "\n".join(sorted(e.event_id for e in events))
    return "powertrip-stale-digest-" + hashlib.sha256(ids.encode()).hexdigest()[:24]
