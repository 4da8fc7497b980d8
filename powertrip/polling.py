"""Continuous polling: one Temporal Schedule per source (`powertrip-poll-<source>`) starting a
`PollWorkflow` every interval. Visible, pausable and triggerable in the Temporal Web UI.

Where the cursor lives: each poll run returns its `PollState` (cursor, failure bookkeeping) and
the schedule hands it to the next run as the *last completion result*. That is Temporal's own
durable hand-over between scheduled runs: a worker restart resumes the running poll from its
history, and the next run starts exactly where the last successful one stopped. A failed poll
still completes (with the old cursor and the failure recorded), so nothing is skipped; a poll
that is retried re-starts only events whose workflows already exist, which are duplicates, so
nothing is repeated.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from powertrip.config import ConfigError, PollOptions, PowertripConfig, SearchScope
from powertrip.sources.log_search import scope_problem

SCHEDULE_PREFIX = "powertrip-poll-"


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
    `SearchScope`)."""

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


class PollRequest(BaseModel):
    input: PollInput
    cursor: str | None


class PollOutcome(BaseModel):
    cursor: str | None
    read: int = 0
    started: int = 0
    already_known: int = 0
    unmatched: int = 0
    invalid: int = 0
    stale: int = 0


class PollAlert(BaseModel):
    source: str
    recovered: bool = False
    failing_since: datetime
    until: datetime
    error: str | None = None
    cursor: str | None = None


def schedule_id(source: str) -> str:
    return SCHEDULE_PREFIX + source


def poll_input(source: str, options: PollOptions, config: PowertripConfig) -> PollInput:
    return PollInput(
        source=source,
        **{name: getattr(options, name) for name in SearchScope.model_fields},
        every_seconds=options.every.total_seconds(),
        alert_after_seconds=options.alert_after.total_seconds(),
        lookback_seconds=options.lookback.total_seconds(),
        stale_after_seconds=config.stale_after.total_seconds(),
    )


def build_schedule(
    source: str, options: PollOptions, config: PowertripConfig, task_queue: str
) -> Schedule:
    every = options.every
    return Schedule(
        # By name: workflows.poll imports this module.
        action=ScheduleActionStartWorkflow(
            "PollWorkflow",
            args=[poll_input(source, options, config)],
            id=schedule_id(source),
            task_queue=task_queue,
            static_summary=f"poll {source} for events the webhooks missed",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # One poll at a time; after downtime one poll catches up from the cursor, no pile-up.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=max(every, timedelta(minutes=1))
        ),
        state=ScheduleState(note=f"Powertrip polls {source} every {every}"),
    )


async def ensure_poll_schedules(
    client: Client, config: PowertripConfig, task_queue: str
) -> list[str]:
    """Create the schedule of every source with `poll:` options, or bring an existing one's
    interval and options up to date. Keeps its paused/running state and its cursor."""
    ids = []
    for source, options in sorted(config.sources.items()):
        if options.poll is None:
            continue
        problem = scope_problem(source, options.poll)
        if problem:
            raise ConfigError(f"sources.{source}.poll: {problem}")
        schedule = build_schedule(source, options.poll, config, task_queue)
        try:
            await client.create_schedule(schedule_id(source), schedule)
        except ScheduleAlreadyRunningError:

            def updated(current: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                new.state = current.description.schedule.state
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id(source)).update(updated)
        ids.append(schedule_id(source))
    return ids
