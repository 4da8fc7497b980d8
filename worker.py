"""The Powertrip worker: `python worker.py`, configured from `POWERTRIP_*` settings."""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from types import CodeType, ModuleType
from typing import Any, ClassVar

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import metrics
from activities.conflict import ConflictActivities
from activities.decisions import DecisionActivities
from activities.expectations import ExpectationActivities
from activities.groups import GroupActivities
from activities.pagerduty import PagerDutyActivities, paging_unset_warning
from activities.passkeys import PasskeyNoticeActivities
from activities.poll import PollActivities
from activities.reminders import ReminderActivities
from activities.review import ReviewActivities
from activities.slack import SlackActivities
from powertrip import logs
from powertrip.config import ConfigError, PowertripConfig, load_config
from powertrip.contracts.reminders import reminder_task_queue
from powertrip.contracts.reviews import ReviewPacing
from powertrip.process import exit_now
from powertrip.services.starts import ensure_poll_schedules, ensure_reminder_digest
from powertrip.settings import Settings, SettingsError, load_settings
from powertrip.signing import verification_keys
from powertrip.slack_checks import SlackSetupError, check_slack
from powertrip.temporal import connect, ensure_search_attributes
from workflows.approval import ApprovalWorkflow
from workflows.conflict import ConflictWorkflow
from workflows.expectation import ExpectationWorkflow
from workflows.group import GroupWorkflow
from workflows.passkey_notice import PasskeyNoticeWorkflow
from workflows.passkeys import PasskeyWorkflow
from workflows.poll import PollWorkflow
from workflows.reminders import ReminderCollectorWorkflow, ReminderDigestWorkflow
from workflows.stale import StaleReportWorkflow
from workflows.unrecognised import ReviewPacerWorkflow, UnrecognisedEventWorkflow

log = logging.getLogger("powertrip.worker")

SLACK_CALL_TIMEOUT = 30
"""Seconds one Slack Web API call may take in all (slack_sdk's own default)."""

# Every workflow type the worker runs (tests/test_replay.py holds a recorded history of each).
WORKFLOWS: tuple[type, ...] = (
    ApprovalWorkflow,
    UnrecognisedEventWorkflow,
    PollWorkflow,
    StaleReportWorkflow,
    ReminderDigestWorkflow,
    ReminderCollectorWorkflow,
    ConflictWorkflow,
    ReviewPacerWorkflow,
    PasskeyWorkflow,
    PasskeyNoticeWorkflow,
    GroupWorkflow,
    ExpectationWorkflow,
)


class _CompiledOnceLoader(importlib.machinery.SourceFileLoader):
    """A workflow module's loader that compiles its source once per process (per file version:
    path, mtime, size) and hands the same code object to every later import."""

    codes: ClassVar[dict[tuple[str, int, int], CodeType]] = {}

    def get_code(self, fullname: str) -> CodeType:
        found = os.stat(self.path)
        key = (self.path, found.st_mtime_ns, found.st_size)
        code = self.codes.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is None:  # pragma: no cover - a source file always has code
                raise ImportError(f"no code for {fullname}", name=fullname)
            self.codes[key] = code
        return code


class WorkflowCodeCache(importlib.abc.MetaPathFinder):
    """Temporal's sandbox imports a workflow's module afresh for every workflow run it starts,
    and for every run evicted from the worker's cache and replayed: that isolates the module's
    globals, but without bytecode on disk (`PYTHONDONTWRITEBYTECODE`, as the Dockerfile, this
    repository's test machines and a read-only install have it) each import compiled
    `workflows/approval.py` from source again, about a fifth of the worker's CPU under load
    (bench/PROFILE.md). Modules of `packages` found here keep one code object per file version;
    each import still executes it in a fresh module, so the sandbox isolates exactly as before.
    Installed once per process by `install`."""

    packages = frozenset({"workflows"})
    _lock = threading.Lock()

    def find_spec(
        self,
        fullname: str,
        path: Any = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if spec is not None and type(loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _CompiledOnceLoader(loader.name, loader.path)
        return spec

    @classmethod
    def install(cls) -> None:
        """Put the finder first on `sys.meta_path`, once."""
        with cls._lock:
            if not any(isinstance(finder, cls) for finder in sys.meta_path):
                sys.meta_path.insert(0, cls())


def security_channel(settings: Settings, config: PowertripConfig) -> str:
    """The security channel's id (`POWERTRIP_SECURITY_CHANNEL`, else the config's
    `security_channel`); ConfigError when neither is set."""
    channel = settings.security_channel or config.security_channel
    if not channel:
        raise ConfigError(
            "no security channel: set `security_channel` in the config "
            "or POWERTRIP_SECURITY_CHANNEL"
        )
    return channel


def slack_client(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    # A 429 waits Slack's Retry-After once in the activity; after that Temporal's retry takes
    # over (activities/slack.py classifies it with next_retry_delay = Retry-After).
    """The Slack Web API client of the worker's activities. With `session` (see
    `slack_session`) every call reuses its pooled connections; without, slack_sdk opens a new
    session, so a new TCP (and TLS) connection, for every call."""
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )


def slack_session() -> aiohttp.ClientSession:
    """The worker's one HTTP session for Slack (needs a running event loop; close it at exit):
    each call's deadline stays slack_sdk's default, `SLACK_CALL_TIMEOUT` seconds in all."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_CALL_TIMEOUT))


def reviews(
    client: Client, settings: Settings, config: PowertripConfig, slack: AsyncWebClient
) -> list[Callable[..., Any]]:
    """The review activities: hand a review to its source's pacer, post one, post a digest."""
    review = ReviewActivities(
        slack,
        security_channel(settings, config),
        client,
        settings.task_queue,
        ReviewPacing(
            before_digest=config.reviews_before_digest,
            digest_every_seconds=max(config.review_digest_every.total_seconds(), 1.0),
        ),
    )
    return [review.post_unrecognised, review.post_review, review.post_review_digest]


def slack_activities(
    settings: Settings, config: PowertripConfig, slack: AsyncWebClient
) -> SlackActivities:
    """The Slack activities, with the one per-channel pacer the worker and the reminder worker
    share (a digest's post takes the channel's next turn ahead of the per-event posts)."""
    return SlackActivities(
        slack,
        config,
        security_channel(settings, config),
        settings.temporal_ui_url,
        settings.temporal_namespace,
    )


def build_worker(
    client: Client,
    settings: Settings,
    config: PowertripConfig,
    slack: AsyncWebClient,
    activities: SlackActivities | None = None,
) -> Worker:
    """The worker: every workflow in `WORKFLOWS` and every activity, on `settings.task_queue`.
    A new activity is registered here (its method, bound to its class's instance). The reminder
    digest and its collectors run on a queue of their own (`build_reminder_worker`;
    `running_workers` runs both); they are registered here too, for those started on this queue
    before they had their own."""
    activities = activities or slack_activities(settings, config, slack)
    decisions = DecisionActivities(verification_keys(settings))
    expectations = ExpectationActivities(
        client,
        verification_keys(settings),
        config,
        slack,
        security_channel(settings, config),
        activities.slack_directory,
    )
    polling = PollActivities.from_settings(
        client, settings, config, slack, security_channel(settings, config)
    )
    paging = PagerDutyActivities.from_settings(settings)
    notices = PasskeyNoticeActivities(slack, security_channel(settings, config))
    reminders = ReminderActivities(client)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            activities.resolve_recipient,
            activities.current_security_team,
            activities.post_notification,
            activities.update_message,
            activities.post_digest,
            decisions.verify_decision,
            decisions.verify_decisions,
            expectations.find_expectation,
            expectations.verify_revocation,
            expectations.post_expectation_notice,
            expectations.update_expectation_notice,
            polling.poll_source,
            polling.poll_papertrail,
            polling.post_poll_alert,
            polling.post_stale_digest,
            paging.trigger_page,
            paging.acknowledge_page,
            paging.resolve_page,
            ConflictActivities(slack, security_channel(settings, config)).post_conflict,
            notices.post_passkey_notice,
            notices.update_passkey_notice,
            GroupActivities(client, settings.task_queue).join_group,
            reminders.hand_off,
            reminders.answer_slots,
            *reviews(client, settings, config, slack),
        ],
        # SIGTERM: in-flight activities get this long to finish before they are cancelled.
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        max_cached_workflows=settings.max_cached_workflows,
        interceptors=[logs.EventIdInterceptor()],
        workflow_runner=workflow_runner(settings),
    )


def build_reminder_worker(
    client: Client, settings: Settings, activities: SlackActivities
) -> Worker:
    """The reminder digest's and collectors' worker, on `reminder_task_queue(settings.task_queue)`:
    its own pollers, slots and workflow cache, so their tasks never wait behind the approvals'
    (which waited up to a minute at 10,000 pending). Its Slack activity shares `activities`'
    channel pacer."""
    return Worker(
        client,
        task_queue=reminder_task_queue(settings.task_queue),
        workflows=[ReminderDigestWorkflow, ReminderCollectorWorkflow],
        activities=[activities.post_digest, ReminderActivities(client).answer_slots],
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        interceptors=[logs.EventIdInterceptor()],
        workflow_runner=workflow_runner(settings),
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The SDK's sandbox when `settings.workflow_sandbox` (tests, development), else none: the
    sandbox re-runs a workflow's module and asks it for every payload's serialization context,
    for every run and every replay of an evicted run, which `bench/throughput.py` measured at a
    third of the worker's CPU per event. Workflow modules keep no module-level state that a run
    could leak to the next (tests/test_workflow_code_cache.py checks)."""
    if settings.workflow_sandbox:
        WorkflowCodeCache.install()
        return SandboxedWorkflowRunner()
    return UnsandboxedWorkflowRunner()


@asynccontextmanager
async def running_workers(
    client: Client, settings: Settings, config: PowertripConfig, slack: AsyncWebClient
) -> AsyncIterator[Worker]:
    """Run the worker and the reminder worker until the block ends; yields the first."""
    activities = slack_activities(settings, config, slack)
    async with (
        build_worker(client, settings, config, slack, activities) as worker,
        build_reminder_worker(client, settings, activities),
    ):
        yield worker


async def main() -> None:
    """`python worker.py`: check settings and config, prepare the namespace (search
    attributes, poll schedules, the reminder digest), check Slack, then run until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
        logs.configure_logging(settings)
        config = load_config(settings.config)
        security_channel(settings, config)
        verification_keys(settings)
    except (SettingsError, ConfigError) as exc:
        sys.exit(f"powertrip worker: {exc}")
    client = await connect(settings, runtime=metrics.temporal_runtime(settings))
    if settings.metrics_bind:
        log.info("metrics at http://%s/metrics", settings.metrics_bind)
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    # Polling schedules from the config's `sources.<name>.poll` (cursor and pause state kept).
    for schedule in await ensure_poll_schedules(client, config, settings.task_queue):
        log.info("polling schedule %s is in place", schedule)
    # Bursts of due reminders are posted as one digest (workflows/reminders.py).
    await ensure_reminder_digest(client, settings.task_queue, config.digest_after)
    session = slack_session()
    try:
        await serve(client, settings, config, slack_client(settings, session))
    finally:
        await session.close()


async def serve(
    client: Client, settings: Settings, config: PowertripConfig, slack: AsyncWebClient
) -> None:
    """Check Slack, then run the worker until SIGINT or SIGTERM."""
    if settings.uses_fake_slack:
        log.warning("no Slack credentials: talking to the fake Slack at %s", settings.slack_api_url)
    try:
        identity = await check_slack(slack, config, security_channel(settings, config))
    except SlackSetupError as exc:
        sys.exit(f"powertrip worker: {exc}")
    log.info("Slack: connected as %s to %s", identity.user, identity.team)
    rules = config.rule_set()
    unset = paging_unset_warning(
        settings, [rule.escalation_policy(rules.escalation) for rule in rules.rules]
    )
    if unset:
        log.warning(unset)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_workers(client, settings, config, slack):
        log.info("worker polling task queue %r", settings.task_queue)
        await stop.wait()
        log.info("shutting down: letting in-flight activities finish")
    log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
    exit_now(0)
