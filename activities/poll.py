"""Polling and backfill activities: read a provider's search API from a cursor and start the event
workflows (through `ingest.process`, like a webhook), and tell the security channel about
polling outages and stale backfilled events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.slack import classify
from powertrip.backfill import Backfill, Report, StaleDigest, announce_stale, papertrail_chunks
from powertrip.config import PowertripConfig
from powertrip.polling import PollAlert, PollOutcome, PollRequest
from powertrip.rules import RuleSet
from powertrip.settings import Settings
from powertrip.sources.papertrail_api import PapertrailApiError, PapertrailSearch, Window, newer

POLL_FAILED = "PollSourceFailed"
POLL_MISCONFIGURED = "PollSourceMisconfigured"


class PollProgress(BaseModel):
    """Heartbeat details: a retried attempt continues the same window where the last stopped."""

    next_max_id: str | None
    newest: str | None
    outcome: PollOutcome


class PollActivities:
    def __init__(
        self,
        client: Client,
        rules: RuleSet,
        task_queue: str,
        slack: AsyncWebClient,
        security_channel: str,
        papertrail: PapertrailSearch | None,
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
        self.papertrail = papertrail
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
        token = settings.papertrail_api_token
        search = (
            PapertrailSearch(token.get_secret_value(), settings.papertrail_api_url)
            if token
            else None
        )
        return cls(
            client,
            config.rule_set(),
            settings.task_queue,
            slack,
            security_channel,
            search,
            settings.temporal_ui_url,
            settings.temporal_namespace,
            settings.start_concurrency,
            frozenset(name for name, options in config.sources.items() if options.ignore_unmatched),
        )

    @activity.defn
    async def poll_papertrail(self, request: PollRequest) -> PollOutcome:
        if self.papertrail is None:
            raise ApplicationError(
                "POWERTRIP_PAPERTRAIL_API_TOKEN is not set: cannot poll Papertrail",
                type=POLL_MISCONFIGURED,
                non_retryable=True,
            )
        options = request.input
        now = datetime.now(UTC)
        progress = _resumed(request)
        window = Window(
            query=options.query,
            system_id=options.system_id,
            group_id=options.group_id,
            min_id=request.cursor,
            max_id=progress.next_max_id,
            # The very first poll has no cursor: look back a bounded time.
            min_time=None if request.cursor else now - timedelta(seconds=options.lookback_seconds),
        )
        newest: list[str | None] = [progress.newest]
        continuations: list[tuple[str | None, str | None]] = []
        chunks = papertrail_chunks(self.papertrail, window, newest, continuations)

        def done(part: Report, ordinal: int) -> None:
            _count(progress.outcome, part)
            next_max_id, newest_so_far = continuations[ordinal]
            activity.heartbeat(
                PollProgress(
                    next_max_id=next_max_id, newest=newest_so_far, outcome=progress.outcome
                )
            )

        backfill = Backfill(
            self.client,
            self.rules,
            self.task_queue,
            self.concurrency,
            stale_before=now - timedelta(seconds=options.stale_after_seconds),
            ignore_unmatched=self.ignore_unmatched,
            on_chunk=done,
        )
        try:
            report = await backfill.run(chunks)
        except PapertrailApiError as exc:
            raise ApplicationError(
                str(exc),
                type=POLL_FAILED if exc.retryable else POLL_MISCONFIGURED,
                non_retryable=not exc.retryable,
                next_retry_delay=timedelta(seconds=exc.retry_after) if exc.retry_after else None,
            ) from exc
        await announce_stale(
            self.client,
            report,
            f"{options.source} poll",
            timedelta(seconds=options.stale_after_seconds),
            self.task_queue,
        )
        outcome = progress.outcome
        outcome.cursor = newer(request.cursor, newest[0])
        return outcome

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


def _resumed(request: PollRequest) -> PollProgress:
    details = activity.info().heartbeat_details
    if details:
        try:
            return PollProgress.model_validate(details[0])
        except ValueError:
            pass
    return PollProgress(next_max_id=None, newest=None, outcome=PollOutcome(cursor=request.cursor))


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
            f"Last error: `{alert.error}`. Powertrip keeps retrying and will say so here once it "
            "recovers; events are picked up from the last processed one"
            + (f" (id `{alert.cursor}`)" if alert.cursor else "")
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
        lines.append(f"• {when} {event.summary} ({name})")
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
