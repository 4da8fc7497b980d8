"""Polling activities: read a source's log search API (`LogSearch`) from a cursor and start the
event workflows (the backfill runner, through `recognise.process`, like a webhook), and tell the
security channel about polling outages and stale events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from pydantic import BaseModel
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.slack import SecurityChannel
from powertrip.config import PowertripConfig
from powertrip.contracts.polling import (
    POLL_FAILED,
    POLL_MISCONFIGURED,
    PollAlert,
    PollOutcome,
    PollRequest,
    StaleReport,
)
from powertrip.messages import poll_alert_message, stale_report_message
from powertrip.rules import RuleSet
from powertrip.services.backfill import Backfill, Report, search_chunks
from powertrip.services.starts import report_stale
from powertrip.settings import Settings
from powertrip.sources.log_search import LogSearch, SearchError, SearchScope
from powertrip.sources.searches import open_search
from powertrip.webui import WebUi

OpenSearch = Callable[[str, SearchScope], LogSearch]


class PollProgress(BaseModel):
    """Heartbeat details: a retried attempt continues the same window where the last stopped."""

    resume: str | None = None
    cursor: str | None = None
    outcome: PollOutcome


class PollActivities:
    """`PollWorkflow`'s and `StaleReportWorkflow`'s activities."""

    def __init__(
        self,
        client: Client,
        rules: RuleSet,
        task_queue: str,
        slack: AsyncWebClient,
        security_channel: str,
        open_search: OpenSearch,
        temporal_ui_url: str | None = None,
        namespace: str = "default",
        concurrency: int = 64,
        ignore_unmatched: frozenset[str] = frozenset(),
    ) -> None:
        self.client = client
        self.rules = rules
        self.task_queue = task_queue
        self.channel = SecurityChannel(slack, security_channel)
        self.open_search = open_search
        self.ui = WebUi.at(temporal_ui_url, namespace)
        self.concurrency = concurrency
        self.ignore_unmatched = ignore_unmatched

    @classmethod
    def from_settings(
        cls,
        client: Client,
        settings: Settings,
        config: PowertripConfig,
        slack: AsyncWebClient,
        security_channel: str,
    ) -> PollActivities:
        """The activities as the worker wires them: the search of each source opened from the
        settings, sources with `ignore_unmatched` not reviewed."""
        return cls(
            client,
            config.rule_set(),
            settings.task_queue,
            slack,
            security_channel,
            partial(_open, settings),
            settings.temporal_ui_url,
            settings.temporal_namespace,
            settings.start_concurrency,
            frozenset(name for name, options in config.sources.items() if options.ignore_unmatched),
        )

    @activity.defn
    async def poll_source(self, request: PollRequest) -> PollOutcome:
        """One poll of any pollable source: everything after the cursor, then the new cursor."""
        options = request.input
        now = datetime.now(UTC)
        progress = _resumed(request)
        try:
            search = self.open_search(options.source, options)
        except SearchError as exc:
            raise _failure(exc) from exc
        positions: list[tuple[str | None, str | None]] = []
        chunks = search_chunks(
            search,
            cursor=request.cursor,
            # The very first poll has no cursor: look back a bounded time.
            since=None if request.cursor else now - timedelta(seconds=options.lookback_seconds),
            resume=progress.resume,
            positions=positions,
        )

        def done(part: Report, ordinal: int) -> None:
            progress.outcome.add(part)
            progress.cursor, progress.resume = positions[ordinal]
            activity.heartbeat(progress)

        backfill = Backfill(
            self.client,
            self.rules,
            self.task_queue,
            self.concurrency,
            stale_before=now - timedelta(seconds=options.stale_after_seconds),
            ignore_unmatched=self.ignore_unmatched,
            on_chunk=done,
            source=options.source,
        )
        try:
            report = await backfill.run(chunks)
        except SearchError as exc:
            raise _failure(exc) from exc
        finally:
            await search.aclose()
        await report_stale(
            self.client,
            report.stale_events,
            f"{options.source} poll",
            timedelta(seconds=options.stale_after_seconds),
            self.task_queue,
        )
        outcome = progress.outcome
        outcome.cursor = progress.cursor
        return outcome

    @activity.defn
    async def poll_papertrail(self, request: PollRequest) -> PollOutcome:
        """What PollWorkflow called before polling was per source (patch `poll-any-source`):
        kept so polls in flight across the upgrade finish. Remove with that patch."""
        return await self.poll_source(request)

    @activity.defn
    async def post_poll_alert(self, alert: PollAlert) -> None:
        """Tell the security channel a source's polling fails, or works again."""
        await self.channel.post(*poll_alert_message(alert))

    @activity.defn
    async def post_stale_digest(self, report: StaleReport) -> None:
        """The stale report (registered as `post_stale_digest` since the first release)."""
        await self.channel.post(*stale_report_message(report, self.ui))


def _open(settings: Settings, source: str, scope: SearchScope) -> LogSearch:
    return open_search(source, settings, scope)


def _failure(exc: SearchError) -> ApplicationError:
    return ApplicationError(
        str(exc),
        type=POLL_FAILED if exc.retryable else POLL_MISCONFIGURED,
        non_retryable=not exc.retryable,
        next_retry_delay=timedelta(seconds=exc.retry_after) if exc.retry_after else None,
    )


def _resumed(request: PollRequest) -> PollProgress:
    details = activity.info().heartbeat_details
    if details:
        try:
            progress = PollProgress.model_validate(details[0])
        except ValueError:
            progress = None
        # Only a window left unfinished is continued; anything else starts from the cursor
        # again (what was started already is a duplicate, so nothing starts twice).
        if progress is not None and progress.resume is not None:
            return progress
    return PollProgress(cursor=request.cursor, outcome=PollOutcome(cursor=request.cursor))
