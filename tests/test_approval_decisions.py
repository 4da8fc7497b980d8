"""ApprovalWorkflow's own decisions, with its activities faked by name on the time-skipping server:
who is asked, the fall-back to the security channel, the reminder cadence, the hand-over across
continue-as-new, and a *Not me* taken before an approval queued ahead of it. No HTTP and no Block
Kit: what the workflow asks its activities is the assertion (the fake-Slack tests in
test_approval_workflow.py and test_slack_experience.py cover what people see).

To add a case: build a `FakeActivities` with the recipient the directory would answer, run the
workflow with `running(...)`, drive it with `decide_as(...)` and `env.sleep(...)`, and assert on
`fakes.posts`, `fakes.updates` and the returned `EventRecord`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from powertrip.contracts.approval import (
    DECIDE_SIGNAL,
    Action,
    ApprovalInput,
    Authority,
    Click,
    EventRecord,
    MessageKind,
    PostedMessage,
    PostRequest,
    Recipient,
    TimelineEntry,
    TimelineKind,
    UpdateRequest,
    Verdict,
    Verdicts,
    VerifyBatch,
    VerifyRequest,
)
from powertrip.contracts.paging import PageAction, PageResult, PageTrigger, PageUpdate
from powertrip.contracts.reminders import HandOff
from powertrip.contracts.slack import SLACK_PERMANENT
from powertrip.directory import Identity
from powertrip.models import EventStatus, SecurityEvent
from powertrip.services.starts import ResultStatus, start_approval
from tests.harness import make_event, no_expectation
from workflows.approval import ApprovalWorkflow

CHANNEL = "C0SECURITY"
TEAM = ["U0SEC1"]
RENOTIFY = timedelta(minutes=15)


def owner(user: str = "U0ALICE") -> Recipient:
    """The directory's answer for an account mapped to Slack user `user`: DM them."""
    return Recipient(
        identity=Identity.MAPPED,
        slack_user=user,
        authority=Authority(actor_slack_user=user, security_team=TEAM),
    )


def no_owner(identity: Identity = Identity.BOT) -> Recipient:
    """A bot, shared or unmapped account: the security team decides, in the channel."""
    return Recipient(
        identity=identity,
        authority=Authority(security_team=TEAM),
        note=f"a {identity.value} account: the security team decides.",
    )


class FakeActivities:
    """The activities ApprovalWorkflow calls, registered under their real names, recording what
    the workflow asked. `dm_refused`: Slack refuses every DM for good (user gone);
    `pagerduty_down`: so many PagerDuty calls fail (retryably) before they succeed;
    `digest_running`: a reminder digest takes the reminders handed to it (else none runs)."""

    def __init__(
        self,
        recipient: Recipient,
        dm_refused: bool = False,
        pagerduty_down: int = 0,
        digest_running: bool = False,
    ) -> None:
        self.digest_running = digest_running
        self.recipient = recipient
        self.dm_refused = dm_refused
        self.pagerduty_down = pagerduty_down
        self.resolved = 0
        self.posts: list[PostRequest] = []
        self.updates: list[UpdateRequest] = []
        self.triggers: list[PageTrigger] = []
        self.pages: list[tuple[PageAction, str]] = []
        """PagerDuty calls that succeeded: (action, dedup_key), in order."""
        self.page_attempts = 0
        self.refused: set[str] = set()
        self.handed_off: list[HandOff] = []
        """Activities (by name) that Slack refuses for good, as a missing scope is refused."""

    def _refuse(self, name: str) -> None:
        if name in self.refused:
            raise ApplicationError(
                "Slack refused: missing_scope", type=SLACK_PERMANENT, non_retryable=True
            )

    @activity.defn(name="resolve_recipient")
    async def resolve_recipient(self, event: SecurityEvent) -> Recipient:
        self.resolved += 1
        return self.recipient

    @activity.defn(name="post_notification")
    async def post_notification(self, request: PostRequest) -> PostedMessage:
        self.posts.append(request)
        if request.to_user is not None and self.dm_refused:
            raise ApplicationError(
                "Slack refused: user_not_found", type=SLACK_PERMANENT, non_retryable=True
            )
        return PostedMessage(
            kind=request.kind,
            channel=f"D{request.to_user}" if request.to_user else CHANNEL,
            ts=f"{len(self.posts)}.000",
            in_security_channel=request.to_user is None,
        )

    @activity.defn(name="update_message")
    async def update_message(self, request: UpdateRequest) -> None:
        self._refuse("update_message")
        self.updates.append(request)

    @activity.defn(name="current_security_team")
    async def current_security_team(self) -> list[str]:
        self._refuse("current_security_team")
        return TEAM

    @activity.defn(name="hand_off")
    async def hand_off(self, request: HandOff) -> bool:
        """Taken by the digest (`digest_running`), or, as when none runs, not: the approval
        posts its own reminder."""
        self.handed_off.append(request)
        return self.digest_running

    @activity.defn(name="verify_decision")
    async def verify_decision(self, request: VerifyRequest) -> Verdict:
        # The signature scheme has its own tests (test_decision_authentication.py).
        return Verdict(authentic=True)

    @activity.defn(name="verify_decisions")
    async def verify_decisions(self, request: VerifyBatch) -> Verdicts:
        return Verdicts(verdicts=[Verdict(authentic=True) for _ in request.clicks])

    async def _page(self, action: PageAction, key: str) -> PageResult:
        self.page_attempts += 1
        if self.pagerduty_down > 0:
            self.pagerduty_down -= 1
            raise ApplicationError("PagerDuty unavailable (HTTP 503)", type="PagerDutyUnavailable")
        self.pages.append((action, key))
        return PageResult(
            action=action,
            dedup_key=key,
            status="success",
            message="Event processed",
            http_status=202,
        )

    @activity.defn(name="trigger_page")
    async def trigger_page(self, request: PageTrigger) -> PageResult:
        result = await self._page(PageAction.TRIGGER, request.dedup_key)
        self.triggers.append(request)
        return result

    @activity.defn(name="acknowledge_page")
    async def acknowledge_page(self, request: PageUpdate) -> PageResult:
        return await self._page(PageAction.ACKNOWLEDGE, request.dedup_key)

    @activity.defn(name="resolve_page")
    async def resolve_page(self, request: PageUpdate) -> PageResult:
        return await self._page(PageAction.RESOLVE, request.dedup_key)

    @property
    def paging(self) -> list[Any]:
        return [self.trigger_page, self.acknowledge_page, self.resolve_page]

    def asked(self, kind: MessageKind) -> list[str | None]:
        """Whom each post of `kind` went to: a Slack user (a DM) or None (the channel)."""
        return [p.to_user for p in self.posts if p.kind is kind]


def new_task_queue() -> str:
    return f"decisions-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def running(
    env: WorkflowEnvironment, fakes: FakeActivities, task_queue: str | None = None
) -> AsyncIterator[str]:
    """A worker with ApprovalWorkflow and `fakes` on `task_queue` (default: one of its own),
    which it yields."""
    task_queue = task_queue or new_task_queue()
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ApprovalWorkflow],
        activities=[
            fakes.resolve_recipient,
            fakes.post_notification,
            fakes.update_message,
            fakes.current_security_team,
            fakes.verify_decision,
            fakes.verify_decisions,
            fakes.hand_off,
            no_expectation,
            *fakes.paging,
        ],
    ):
        yield task_queue


Handle = WorkflowHandle[Any, EventRecord]


async def ask(env: WorkflowEnvironment, event: SecurityEvent, task_queue: str) -> Handle:
    assert await start_approval(env.client, event, task_queue) is ResultStatus.STARTED
    return env.client.get_workflow_handle_for(ApprovalWorkflow.run, event.event_id)


async def decide_as(handle: Handle, action: Action, user: str) -> None:
    """A decision as the API or CLI sends it (signed; the fake verifier accepts it)."""
    click = Click(
        action=action,
        user=user,
        at=datetime.now(UTC),
        nonce=uuid.uuid4().hex,
        signature="v1=verified-by-the-fake",
    )
    await handle.signal(DECIDE_SIGNAL, click)


async def record_of(handle: Handle) -> EventRecord:
    return await handle.result()


async def test_the_owner_is_asked_in_a_dm_and_their_approval_ends_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(owner())
    async with running(time_skipping_env, fakes) as task_queue:
        handle = await ask(time_skipping_env, make_event("alice"), task_queue)
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await record_of(handle)
    assert fakes.asked(MessageKind.FIRST) == ["U0ALICE"]
    assert record.status is EventStatus.APPROVED
    assert record.decision is not None and record.decision.by == "U0ALICE"
    assert not record.decision.on_behalf
    # The DM shows the outcome; nothing was ever posted to the channel.
    assert [u.message.channel for u in fakes.updates] == ["DU0ALICE"]
    assert [e.what for e in record.timeline][:2] == [TimelineKind.RECEIVED, TimelineKind.NOTIFIED]


async def test_an_account_without_an_owner_is_asked_in_the_security_channel(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(no_owner(Identity.BOT))
    async with running(time_skipping_env, fakes) as task_queue:
        handle = await ask(time_skipping_env, make_event("deploy"), task_queue)
        # The account's user may not decide; the team may, on the owner's behalf.
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        await decide_as(handle, Action.APPROVE, "U0SEC1")
        record = await record_of(handle)
    assert fakes.asked(MessageKind.FIRST) == [None]
    assert fakes.posts[0].note and "bot account" in fakes.posts[0].note
    assert record.decision is not None and record.decision.by == "U0SEC1"
    assert [e.what for e in record.timeline].count(TimelineKind.REFUSED) == 1


@pytest.mark.parametrize("refused", ["current_security_team", "update_message"])
async def test_a_local_slack_call_refused_for_good_is_noted_and_the_event_still_decided(
    time_skipping_env: WorkflowEnvironment, refused: str
) -> None:
    """The security team's recheck at an on-behalf click and the outcome's message update run
    as local activities, whose permanent failure the SDK raises as a bare `ApplicationError`
    (which fails a workflow that lets it through), not the `ActivityError` an activity's is:
    both are noted on the record and the decision stands, as for an activity."""
    fakes = FakeActivities(no_owner(Identity.BOT))
    fakes.refused.add(refused)
    async with running(time_skipping_env, fakes) as task_queue:
        handle = await ask(time_skipping_env, make_event("deploy"), task_queue)
        await decide_as(handle, Action.APPROVE, "U0SEC1")
        record = await record_of(handle)
    assert record.status is EventStatus.APPROVED
    assert record.decision is not None and record.decision.by == "U0SEC1"
    failed = [e.detail or "" for e in record.timeline if e.what is TimelineKind.NOTIFY_FAILED]
    assert len(failed) == 1 and "missing_scope" in failed[0], record.timeline


async def test_a_dm_slack_refuses_for_good_falls_back_to_the_channel(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(owner(), dm_refused=True)
    async with running(time_skipping_env, fakes) as task_queue:
        handle = await ask(time_skipping_env, make_event("alice"), task_queue)
        await decide_as(handle, Action.APPROVE, "U0SEC1")
        record = await record_of(handle)
    # One attempt at the DM (a permanent refusal is not retried), then the channel, saying why.
    assert fakes.asked(MessageKind.FIRST) == ["U0ALICE", None]
    note = fakes.posts[1].note or ""
    assert "Could not DM <@U0ALICE>" in note and "user_not_found" in note
    assert [m.in_security_channel for m in record.messages] == [True]
    notified = [e for e in record.timeline if e.what is TimelineKind.NOTIFIED]
    assert len(notified) == 1


async def test_reminders_come_every_renotify_after_until_someone_decides(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(owner())
    event = make_event("alice", renotify_after_seconds=RENOTIFY.total_seconds())
    async with running(time_skipping_env, fakes) as task_queue:
        handle = await ask(time_skipping_env, event, task_queue)
        await time_skipping_env.sleep(RENOTIFY * 3 + timedelta(minutes=1))
        reminders = [p for p in fakes.posts if p.kind is MessageKind.REMINDER]
        # Three cycles, each to the security channel, each saying how long it has waited.
        assert [p.to_user for p in reminders] == [None, None, None]
        assert [round(p.waited_seconds / 60) for p in reminders] == [15, 30, 45]
        # The first reminder starts the event's thread in the channel; the rest reply in it.
        assert [p.thread_ts for p in reminders] == [None, "2.000", "2.000"]
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await record_of(handle)
        await time_skipping_env.sleep(RENOTIFY * 2)
    assert len([p for p in fakes.posts if p.kind is MessageKind.REMINDER]) == 3
    assert record.status is EventStatus.APPROVED
    assert [e.what for e in record.timeline].count(TimelineKind.REMINDED) == 3


async def test_a_continued_run_asks_nobody_again_and_keeps_its_record(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """What `continue_as_new` hands over (`ApprovalInput.carried`): the record with its
    recipient, messages and taken nonces. The next run resumes reminding from it."""
    event = make_event("alice", renotify_after_seconds=RENOTIFY.total_seconds())
    began = datetime.now(UTC)
    carried = EventRecord(
        event=event,
        recipient=owner(),
        messages=[PostedMessage(kind=MessageKind.FIRST, channel="DU0ALICE", ts="1.000")],
        nonces=["taken-before"],
        timeline=[TimelineEntry(what=TimelineKind.RECEIVED, at=began)],
    )
    fakes = FakeActivities(owner())
    async with running(time_skipping_env, fakes) as task_queue:
        handle = await time_skipping_env.client.start_workflow(
            ApprovalWorkflow.run,
            ApprovalInput(event=event, carried=carried),
            id=event.event_id,
            task_queue=task_queue,
        )
        await time_skipping_env.sleep(RENOTIFY + timedelta(minutes=1))
        replayed = Click(
            action=Action.APPROVE,
            user="U0ALICE",
            at=datetime.now(UTC),
            nonce="taken-before",
            signature="v1=verified-by-the-fake",
        )
        await handle.signal(DECIDE_SIGNAL, replayed)
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await record_of(handle)
    assert fakes.resolved == 0
    assert fakes.asked(MessageKind.FIRST) == []
    assert fakes.asked(MessageKind.REMINDER) == [None]
    # A nonce taken by the earlier run is still taken: that decision is rejected.
    assert [e.what for e in record.timeline].count(TimelineKind.REJECTED) == 1
    assert record.status is EventStatus.APPROVED
    assert "DU0ALICE" in [u.message.channel for u in fakes.updates]


async def test_a_not_me_queued_behind_an_approval_is_taken_first(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Both decisions wait in history while no worker runs (the team approving on alice's
    behalf, then alice saying *Not me*): the report wins, whatever the order of arrival."""
    fakes = FakeActivities(owner())
    event = make_event("alice")
    task_queue = new_task_queue()
    handle = await ask(time_skipping_env, event, task_queue)
    await decide_as(handle, Action.APPROVE, "U0SEC1")
    await decide_as(handle, Action.REPORT, "U0ALICE")
    async with running(time_skipping_env, fakes, task_queue):
        await time_skipping_env.sleep(timedelta(seconds=5))
        await decide_as(handle, Action.ACKNOWLEDGE, "U0SEC1")
        record = await record_of(handle)
    assert record.report is not None and record.report.by == "U0ALICE"
    assert record.decision is not None and record.decision.by == "U0SEC1"
    assert record.decision.kind.value == "acknowledged"
    whats = [e.what for e in record.timeline]
    assert whats.index(TimelineKind.REPORTED) < whats.index(TimelineKind.REFUSED)
    # The incident alert went to the channel at once.
    assert fakes.asked(MessageKind.REPORT) == [None]
