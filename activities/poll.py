"""Polling and backfill activities: read a source's log search API (`LogSearch`) from a cursor
and start the event workflows (through `ingest.process`, like a webhook), and tell the security
channel about polling outages and stale backfilled events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from pydantic import BaseModel
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.slack import classify
from powertrip.backfill import Backfill, Report, StaleDigest, announce_stale, search_chunks
from powertrip.config import PowertripConfig, SearchScope
from powertrip.messages import code, escape
from powertrip.polling import PollAlert, PollOutcome, PollRequest
from powertrip.rules import RuleSet
from powertrip.settings import Settings
from powertrip.sources.log_search import LogSearch, SearchError, open_search

POLL_FAILED = "PollSourceFailed"
POLL_MISCONFIGURED = "PollSourceMisconfigured"

OpenSearch = Callable[[str, SearchScope], LogSearch]


class PollProgress(BaseModel):
    """Heartbeat details: a retried attempt continues the same window where the last stopped."""

    resume: str | None = None
    cursor: str | None = None
    outcome: PollOutcome


class PollActivities:
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
        self.slack = slack
        self.security_channel = security_channel
        self.open_search = open_search
        self.temporal_ui_url = temporal_ui_url
        self.namespace = namespace
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
            _count(progress.outcome, part)
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
        await announce_stale(
            self.client,
            report,
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
        text, blocks = poll_alert_message(alert)
        await self._post(text, blocks)

    @activity.defn
    async def post_stale_digest(self, digest: StaleDigest) -> None:
        text, blocks = stale_digest_message(digest, self.temporal_ui_url, self.namespace)
        await self._post(text, blocks)

    async def _post(self, text: str, blocks: list) -> None:
        try:
            await self.slack.chat_postMessage(
                channel=self.security_channel, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as exc:
            raise classify(exc) from exc


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


def _count(outcome: PollOutcome, part: Report) -> None:
    outcome.read += part.read
    outcome.started += part.started
    outcome.already_known += part.already_known
    outcome.unmatched += part.unmatched
    outcome.invalid += part.invalid
    outcome.stale += part.stale


# Messages -------------------------------------------------------------------------------------


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def poll_alert_message(alert: PollAlert) -> tuple[str, list]:
    since = alert.failing_since.strftime("%Y-%m-%d %H:%M UTC")
    lasted = _minutes(alert.until - alert.failing_since)
    if alert.recovered:
        text = f"Polling {alert.source} works again after {lasted} of failures."
        detail = "Nothing was lost: the poll continued from the last event it had processed."
    else:
        text = f":warning: Polling {alert.source} has failed since {since} ({lasted})."
        detail = (
            f"Last error: {code(alert.error or 'unknown')}. Powertrip keeps retrying and will say "
            "so here once it "
            "recovers; events are picked up from the last processed one"
            + (f" (cursor {code(alert.cursor)})" if alert.cursor else "")
            + ", so none are skipped. Webhooks are not affected."
        )
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=f"*{text}*")),
        ContextBlock(elements=[MarkdownTextObject(text=detail)]),
    ]
    return text, [b.to_dict() for b in blocks]


def stale_digest_message(
    digest: StaleDigest, ui_url: str | None, namespace: str
) -> tuple[str, list]:
    days = digest.stale_after_seconds / 86400
    age = f"{days:g} days" if days >= 1 else f"{digest.stale_after_seconds / 3600:g} hours"
    text = (
        f"{digest.total} old event{'s' if digest.total != 1 else ''} found by {digest.found_by} "
        f"(older than {age}): recorded as pending, nobody was DM'd."
    )
    lines = []
    for event in digest.events:
        when = event.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
        name = f"`{event.event_id}`"
        if ui_url:
            link = f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{event.event_id}"
            name = f"<{link}|{event.event_id}>"
        lines.append(f"• {when} {escape(event.summary)} ({name})")
    if digest.total > len(digest.events):
        lines.append(f"…and {digest.total - len(digest.events)} more.")
    blocks: list = [
        HeaderBlock(text=f"Backfill: {digest.total} stale event{'s' if digest.total != 1 else ''}"),
        SectionBlock(text=MarkdownTextObject(text=text)),
    ]
    section: list[str] = []
    for line in lines:
        # Slack limits a section to 3,000 characters and a message to 50 blocks.
        if sum(len(x) + 1 for x in section) + len(line) > 2900:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(section))))
            section = []
        section.append(line)
        if len(blocks) >= 46:
            break
    if section and len(blocks) < 47:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(section))))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Review them, then approve with "
                    "`powertrip events approve ID --as YOU --reason ...`; "
                    'in the Temporal UI: `PowertripStatus="pending"`.'
                )
            ]
        )
    )
    return text, [b.to_dict() for b in blocks]
