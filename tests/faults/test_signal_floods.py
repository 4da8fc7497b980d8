"""Anyone who reaches Temporal can send `decide` signals, and Temporal takes at most
`history.maximumSignalsPerExecution` of them (10,000 by default) into one workflow run: a flood
of forged signals must never make it refuse the owner's *Not me*, nor stall the workflow that
has to work through them. Real dev servers (one with the limit scaled down), the real API and
worker, the fake Slack over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import SIGNALS_PER_RUN, Action, ApprovalInput, EventRecord
from powertrip.contracts.reminders import (
    DIGEST_TASK_TIMEOUT,
    DUE_SIGNAL,
    HANDED_OFF,
    SLOT_TIMEOUT,
    DigestLine,
    DueReminder,
    reminder_collector_id,
    reminder_collector_ids,
    reminder_digest_id,
)
from powertrip.devserver import start_dev_server
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack, InjectedFailure
from powertrip.services.starts import ensure_reminder_digest, search_attributes_for
from powertrip.settings import Settings
from powertrip.signing import signed_click
from tests.harness import (
    activity_inputs,
    api_client,
    click,
    decide,
    deliver_login,
    eventually,
    make_config,
    make_event,
    make_settings,
    message_for,
    posted_to,
    reminders_posted,
    running_worker,
    slack_click,
    start,
    state_eventually,
    text_of,
)
from tests.servers import SECURITY_CHANNEL
from workflows.approval import ApprovalWorkflow

# Temporal's default per-run signal limit (`history.maximumSignalsPerExecution`), which the
# session's dev server keeps.
TEMPORAL_SIGNAL_LIMIT = 10_000
# The dev server of the flood test, scaled down ten times: its limit, and its suggestion to
# continue as new (`limit.historyCount.suggestContinueAsNew`, 4,096 events by default).
SCALED_LIMIT = 1_000
SCALED_SUGGESTION = 400


def forged(handle: WorkflowHandle[Any, Any], n: int) -> Any:
    """Half unsigned, half signed with a key nobody configured: what someone who reaches
    Temporal, but holds no decision key, can send."""
    if n % 2:
        return click(Action.APPROVE, "U0MALLORY")
    return signed_click("not-a-decision-key-" * 3, handle.id, Action.APPROVE, "U0MALLORY")


async def flood(handle: WorkflowHandle[Any, Any], count: int) -> list[str]:
    """`count` forged `decide` signals, 64 in flight; Temporal's refusals, in words."""
    gate = asyncio.Semaphore(64)
    refused: list[str] = []

    async def one(n: int) -> None:
        async with gate:
            try:
                await handle.signal(ApprovalWorkflow.decide, forged(handle, n))
            except RPCError as exc:
                refused.append(exc.message)

    await asyncio.gather(*(one(n) for n in range(count)))
    return refused


async def runs(
    client: Client, workflow_id: str
) -> list[tuple[WorkflowExecutionStatus | None, int]]:
    """Each run of the workflow, oldest first: its status and how many signals it took."""
    found = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        history = await handle.fetch_history()
        signals = sum(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events
        )
        found.append((history.events[0].event_time.ToDatetime(), execution.status, signals))
    return [(status, signals) for _, status, signals in sorted(found, key=lambda r: r[0])]


async def memo_record(client: Client, workflow_id: str) -> EventRecord:
    description = await client.get_workflow_handle(workflow_id).describe()
    return await description.memo_value("record", type_hint=EventRecord)


@pytest.fixture
async def scaled_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own whose per-run signal limit is SCALED_LIMIT."""
    args = (
        "--dynamic-config-value",
        f"history.maximumSignalsPerExecution={SCALED_LIMIT}",
        "--dynamic-config-value",
        f"limit.historyCount.suggestContinueAsNew={SCALED_SUGGESTION}",
    )
    async with await start_dev_server(extra_args=args) as env:
        yield env


async def test_forged_signals_past_temporals_limit_cannot_stop_the_owners_not_me(
    scaled_server: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """The red team's flood, scaled: more forged signals than the run may take, while the
    worker works through them. The workflow continues as new once it has handled them, and
    alice's *Not me*, refused by Temporal meanwhile, is delivered to the next run."""
    env = scaled_server
    settings = make_settings(
        slack_api_url, temporal_address=env.client.service_client.config.target_host
    )
    async with api_client(settings) as http, running_worker(env.client, settings):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        handle = env.client.get_workflow_handle(event_id)
        refused = await flood(handle, SCALED_LIMIT + 50)
        assert refused and set(refused) == {"exceeded workflow execution limit for signal events"}

        reply_to = slack_api_url.replace("/api/", "/response/flood")
        response = await slack_click(http, "U0ALICE", "not_me", event_id, dm, reply_to)
        assert response.status_code == 200

        async def reported() -> EventRecord | None:
            record = await memo_record(env.client, event_id)
            return record if record.status is EventStatus.REPORTED else None

        record = await eventually(reported, within=60)
        assert record.report is not None and record.report.by == "U0ALICE"
        assert record.report.authenticated
        await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL))
        history = await runs(env.client, event_id)
    assert [status for status, _ in history[:-1]] == [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (
        len(history) - 1
    )
    assert history[-1][0] is WorkflowExecutionStatus.RUNNING
    assert all(signals <= SCALED_LIMIT for _, signals in history)
    assert not fake_slack.responses, "alice was told her click failed"
    whats = [e.what.value for e in record.timeline]
    assert whats.count("rejected") == 50 and whats.count("traces_capped") == 1
    assert "approved" not in whats


async def test_thousands_of_signals_queued_while_workers_are_down(
    served: tuple[httpx.AsyncClient, Settings], dev_env: WorkflowEnvironment, fake_slack: FakeSlack
) -> None:
    """6,000 forged signals wait in history while no worker runs, alice's *Not me* behind
    them. The worker takes her report first, works through the rest in linear time (no
    "potential deadlock": one workflow task holds them all) and continues as new at the default
    `signals_per_run`, below Temporal's default limit, which refuses none of them."""
    http, settings = served
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http)
        await eventually(lambda: message_for(fake_slack, event_id))
        # Everything the DM did is recorded before the worker stops.
        await eventually(lambda: _messages(dev_env.client, event_id))
    handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
    count = 6_000
    assert SIGNALS_PER_RUN < count < TEMPORAL_SIGNAL_LIMIT
    assert await flood(handle, count) == []
    await decide(handle, Action.REPORT, "U0ALICE")
    async with running_worker(dev_env.client, settings):

        async def reported() -> EventRecord | None:
            record = await memo_record(dev_env.client, event_id)
            return record if record.status is EventStatus.REPORTED else None

        record = await eventually(reported, within=30)
        assert record.report is not None and record.report.by == "U0ALICE"

        async def continued() -> list[tuple[WorkflowExecutionStatus | None, int]] | None:
            found = await runs(dev_env.client, event_id)
            return found if len(found) == 2 else None

        history = await eventually(continued, within=60)
        # The next run holds the report and the taken nonces, and takes decisions.
        await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
        final: EventRecord = await handle.result()
    assert history[0] == (WorkflowExecutionStatus.CONTINUED_AS_NEW, count + 1)
    assert final.status is EventStatus.ACKNOWLEDGED
    assert final.report is not None and final.report.by == "U0ALICE"
    assert len(final.nonces) == 2


async def _messages(client: Client, event_id: str) -> bool:
    return bool((await memo_record(client, event_id)).messages)


async def test_a_run_continued_early_keeps_its_record_memo_and_reminder(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """`signals_per_run` signals into a run, the workflow continues as new: the record, the
    memo readers use, the nonces taken and the reminder already due all carry over, so an
    attacker's flood neither hides the event from the API nor puts its reminder off."""
    env, settings = time_skipping_env, make_settings(slack_api_url)
    event = make_event("alice", renotify_after_seconds=15 * 60)
    async with running_worker(env.client, settings):
        handle = await env.client.start_workflow(
            ApprovalWorkflow.run,
            ApprovalInput(event=event, signals_per_run=5),
            id=event.event_id,
            task_queue=settings.task_queue,
            search_attributes=search_attributes_for(event),
            memo={"record": EventRecord(event=event), "content": "digest-of-the-content"},
        )
        first_run = (await handle.describe()).run_id
        await eventually(lambda: posted_to(fake_slack, "D0ALICE"))
        await env.sleep(timedelta(minutes=10))
        for _ in range(5):
            await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0MALLORY"))

        async def continued() -> bool:
            return (await handle.describe()).run_id != first_run

        await eventually(continued)
        description = await handle.describe()
        memo = await description.memo()
        assert memo["content"] == "digest-of-the-content"
        record = await description.memo_value("record", type_hint=EventRecord)
        assert [m.channel for m in record.messages] == ["D0ALICE"]
        assert [e.what.value for e in record.timeline].count("rejected") == 5
        # Due 15 minutes after the start, as before the flood: not 15 after the new run.
        await env.sleep(timedelta(minutes=6))
        await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL), within=30)
        record = await state_eventually(
            handle, lambda r: any(e.what == "reminded" for e in r.timeline)
        )
        reminded = next(e for e in record.timeline if e.what == "reminded")
        assert reminded.at - record.timeline[0].at < timedelta(minutes=16)
        await decide(handle, Action.APPROVE, "U0ALICE")
        final: EventRecord = await handle.result()
    assert final.status is EventStatus.APPROVED and final.decision is not None
    assert final.decision.authenticated and len(final.nonces) == 1


async def test_forged_due_reminders_neither_wedge_the_digest_nor_speak_in_the_channel(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """The task queue's reminder digest takes `due` signals from anyone who reaches Temporal.
    3,000 forged ones at once used to make one digest whose activity input Temporal refused
    (over 2 MB), failing the workflow's task for ever; and what they said was posted to the
    security channel as it came (a channel ping, a link of the sender's choosing)."""
    settings = make_settings(slack_api_url)
    async with running_worker(dev_env.client, settings):
        await ensure_reminder_digest(dev_env.client, settings.task_queue, 5)
        digest = dev_env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
        line = DigestLine(
            event=make_event("mallory"),
            asked="<!channel> see <https://evil.example.com|the runbook>",
            ui_url="https://evil.example.com/phish",
        )
        gate = asyncio.Semaphore(64)

        async def due(n: int) -> None:
            async with gate:
                reminder = DueReminder(event_id=f"forged-{n}", cycle="c", line=line)
                await digest.signal(DUE_SIGNAL, reminder)

        await asyncio.gather(*(due(n) for n in range(3_000)))
        # Two digests, each after the 5 s gathering window, behind 3,000 signals: 7 s measured
        # alone on 2 cores, past 10 s under the load of a full run.
        posted = await eventually(
            lambda: _at_least(posted_to(fake_slack, SECURITY_CHANNEL), 2), within=30
        )
        history = await digest.fetch_history()
        await digest.terminate("test over")
    texts = [json.dumps(m.blocks) for m in posted]
    assert all("*200 events still need a decision*" in t for t in texts), texts[0][:300]
    # The sender's words are shown as inline code, never as a ping or a link.
    assert not any("<!channel>" in t or "<https://evil" in t or "phish" in t for t in texts)
    assert all("`&lt;!channel&gt; see" in t for t in texts)
    # Temporal may cut a workflow task short while signals pour in; the workflow never fails one.
    failures = [
        e.workflow_task_failed_event_attributes.cause
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert set(failures) <= {WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND}


async def test_reminders_falling_due_fast_reach_the_digest_in_few_signals(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Issue 16 at 10,000 pending: reminders fell due at 25-28 a second, each one a signal to
    the one digest workflow, and each digest answered its batch with a signal command per
    reminder, whose up to 200 results came back at once. Temporal fails a workflow task when
    more than 100 events arrive while it runs (`history.maximumBufferedEventsBatch`): the
    digest's tasks were failed over and over, each retry replaying a longer history, and the
    reminders waited out their minute and posted on their own. Now 2,000 due reminders are
    signalled as fast as 64 senders can, each to its event's collector: every one is listed in
    a digest, the digest took one signal per collector's batch (not one per reminder) and sent
    no signal itself, and no workflow task of the digest or a collector failed."""
    env = dev_env
    settings = make_settings(slack_api_url)
    count = 2_000
    async with running_worker(env.client, settings):
        await ensure_reminder_digest(env.client, settings.task_queue, 5)
        digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
        line = DigestLine(event=make_event("alice"), asked="<@U0ALICE>")
        gate = asyncio.Semaphore(64)

        async def due(n: int) -> None:
            event_id = f"fast-{n}"
            collector = reminder_collector_id(settings.task_queue, event_id)
            async with gate:
                await env.client.get_workflow_handle(collector).signal(
                    DUE_SIGNAL, DueReminder(event_id=event_id, cycle="c", line=line)
                )

        await asyncio.gather(*(due(n) for n in range(count)))

        def listed() -> list[int] | None:
            found = [_digest_size(m.blocks) for m in posted_to(fake_slack, SECURITY_CHANNEL)]
            return found if sum(found) >= count else None

        await eventually(listed, within=120)
        digest_events = await _all_runs_events(env.client, digest.id)
        collector_events = [
            e
            for collector in reminder_collector_ids(settings.task_queue)
            for e in await _all_runs_events(env.client, collector)
        ]
        for workflow_id in [digest.id, *reminder_collector_ids(settings.task_queue)]:
            await env.client.get_workflow_handle(workflow_id).terminate("test over")
    kinds = Counter(e.event_type for e in digest_events)
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED] <= count // 20, kinds
    assert kinds[EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED] == 0
    failed = [
        e.workflow_task_failed_event_attributes.cause
        for e in digest_events + collector_events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed == []


async def test_with_no_digest_running_a_collector_tells_the_approval_to_remind_at_once(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """A collector that cannot hand a reminder on (the digest workflow terminated by someone)
    tells its approval to post its own reminder at once, not after the approval's one-minute
    wait for its slot."""
    env = dev_env
    settings = make_settings(slack_api_url)
    async with running_worker(env.client, settings):
        await ensure_reminder_digest(env.client, settings.task_queue, 5)
        await env.client.get_workflow_handle(reminder_digest_id(settings.task_queue)).terminate(
            "gone"
        )
        handle = await start(
            env, make_event("alice", renotify_after_seconds=2), settings.task_queue
        )
        reminded = await state_eventually(
            handle, lambda r: reminders_posted(r) == 1, within=SLOT_TIMEOUT.total_seconds() / 3
        )
        for collector in reminder_collector_ids(settings.task_queue):
            await env.client.get_workflow_handle(collector).terminate("test over")
        await handle.terminate("test over")
    assert not any("in the digest" in (e.detail or "") for e in reminded.timeline)
    assert [m for m in posted_to(fake_slack, SECURITY_CHANNEL) if handle.id in text_of(m)]


async def _all_runs_events(client: Client, workflow_id: str) -> list[Any]:
    """Every history event of every run of `workflow_id`."""
    events: list[Any] = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        events += (await handle.fetch_history()).events
    return events


def _answered(history: WorkflowHistory) -> list[tuple[str, bool]]:
    """Whom the digest told their slot (`answer_slots`), in order: (event id, in the digest)."""
    return [
        (a["event_id"], a["slot"]["in_digest"])
        for _, request in activity_inputs(history, "answer_slots")
        for a in request["answers"]
    ]


def _at_least(found: list[Any], count: int) -> list[Any] | None:
    return found if len(found) >= count else None


async def test_a_backlog_of_due_reminders_is_drained_into_digests_none_dropped(
    scaled_server: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Thousands of reminders due at once (issue 16's scale run) reach the digest faster than
    one batch of 200 per 5 s gathering window: the queue outlasted the approvals' one-minute
    wait for their slot, and each of them then posted its own reminder at Slack's pace of one
    a second. Scaled: 1,000 due reminders queued while no worker runs, on a server that
    suggests continuing as new at 400 history events. Every one is listed in a digest (a run
    used to carry only 200 of its backlog over continue-as-new: the rest were told nothing and
    posted on their own), the digests follow each other about a second apart, never faster."""
    env = scaled_server
    settings = make_settings(slack_api_url)
    await ensure_reminder_digest(env.client, settings.task_queue, 5)
    digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
    line = DigestLine(event=make_event("alice"), asked="<@U0ALICE>")
    gate = asyncio.Semaphore(64)

    async def due(n: int) -> None:
        async with gate:
            await digest.signal(DUE_SIGNAL, DueReminder(event_id=f"due-{n}", cycle="c", line=line))

    count = 1_000
    await asyncio.gather(*(due(n) for n in range(count)))
    async with running_worker(env.client, settings):

        def listed() -> list[int] | None:
            found = [_digest_size(m.blocks) for m in posted_to(fake_slack, SECURITY_CHANNEL)]
            return found if sum(found) >= count else None

        sizes = await eventually(listed, within=90)
        digest_runs = await runs(env.client, digest.id)
        # A long history replayed by a busy worker takes more than Temporal's default 10 s:
        # every run, the continued ones too, gets a minute (10,000 pending wedged it before).
        config = (await digest.describe()).raw_description.execution_config
        await digest.terminate("test over")
    assert config.default_workflow_task_timeout.ToTimedelta() == DIGEST_TASK_TIMEOUT
    assert sizes == [200] * 5
    posts = sorted(float(m.ts) for m in posted_to(fake_slack, SECURITY_CHANNEL))
    gaps = [b - a for a, b in itertools.pairwise(posts)]
    # One second's pause between full batches (Slack's pace for a channel), not the 5 s
    # gathering window each: 4 s of pauses where there were 20.
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert digest_runs[0][0] is WorkflowExecutionStatus.CONTINUED_AS_NEW


def _digest_size(blocks: Any) -> int:
    """How many events a reminder digest lists ("*N events still need a decision*")."""
    found = re.search(r"\*(\d+) events? still need", json.dumps(blocks))
    return int(found.group(1)) if found else 0


async def test_due_reminders_arriving_one_by_one_still_collapse_into_digests(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Under load the approvals' reminders, due together, reach the digest one by one and
    late: each was alone in its 5 s gathering window, so each was told to post on its own, and
    each own post held an activity slot while it waited for the channel's pace (the 2,000-
    pending scale run: 232 own posts, 2 digests). Now once `digest_after` reminders have posted
    their own within a minute, the next ones are listed in digests, however few arrive."""
    env = time_skipping_env
    settings = make_settings(slack_api_url)
    async with running_worker(env.client, settings):
        await ensure_reminder_digest(env.client, settings.task_queue, 2)
        digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
        line = DigestLine(event=make_event("alice"), asked="<@U0ALICE>")
        for n in range(8):
            await digest.signal(DUE_SIGNAL, DueReminder(event_id=f"late-{n}", cycle="c", line=line))
            await env.sleep(timedelta(seconds=6))

        def listed() -> list[int] | None:
            found = [_digest_size(m.blocks) for m in posted_to(fake_slack, SECURITY_CHANNEL)]
            return found if sum(found) >= 6 else None

        sizes = await eventually(listed, within=30)
        await digest.terminate("test over")
    # Two posted their own (the events here are not running: nothing of theirs shows), the
    # other six are in digests.
    assert sum(sizes) == 6, sizes


async def _digest_posts_ended(digest: WorkflowHandle[Any, Any]) -> list[str]:
    """How each `post_digest` the digest workflow scheduled ended so far ("completed",
    "failed", "timed_out"), in order."""
    ends = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    }
    history = await digest.fetch_history()
    digest_posts = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "post_digest"
    }
    found = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled = e.activity_task_completed_event_attributes.scheduled_event_id
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            scheduled = e.activity_task_failed_event_attributes.scheduled_event_id
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            scheduled = e.activity_task_timed_out_event_attributes.scheduled_event_id
        else:
            continue
        if scheduled in digest_posts:
            found.append(ends[e.event_type])
    return found


async def _until_a_digest_post_gave_up(
    env: WorkflowEnvironment, digest: WorkflowHandle[Any, Any]
) -> None:
    """Skip time a few seconds at a time (the activity's retries back off on server timers)
    until the digest's first `post_digest` has run out of its schedule-to-close."""

    async def gave_up() -> bool:
        if await _digest_posts_ended(digest):
            return True
        await env.sleep(timedelta(seconds=3))
        return False

    await eventually(gave_up, within=60)


async def test_a_failed_digest_is_retried_not_posted_event_by_event(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Issue 16 (5,000 pending): a digest's post that ran past its 45 s told its whole batch to
    post their own reminders, up to 200 per-event posts at one a second, behind which the next
    digest failed too. Now Slack fails every post from before the reminders fall due until the
    digest's post has given up, then recovers: the digest retries its batch, one message lists
    the four events, none posts its own (not even a minute later), each records that it handed
    its reminder to the digest."""
    env = time_skipping_env
    settings = make_settings(slack_api_url)
    async with running_worker(env.client, settings, make_config(digest_after=2)):
        await ensure_reminder_digest(env.client, settings.task_queue, 2)
        digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
        handles = [await start(env, make_event("alice"), settings.task_queue) for _ in range(4)]
        await eventually(lambda: len(posted_to(fake_slack, "D0ALICE")) == 4)
        fake_slack.failures["chat.postMessage"].append(
            InjectedFailure(method="chat.postMessage", status=503, times=100_000)
        )
        await env.sleep(timedelta(minutes=15, seconds=5))  # the reminders fall due at 15 min
        await _until_a_digest_post_gave_up(env, digest)
        fake_slack.failures.clear()  # Slack is back, within the approvals' one-minute wait
        await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL), within=30)
        await env.sleep(SLOT_TIMEOUT)  # no own reminder comes later either
        records = [await h.query(ApprovalWorkflow.state) for h in handles]
        ended = await _digest_posts_ended(digest)
        await digest.terminate("test over")
    assert ended[0] != "completed" and ended[1:] == ["completed"], ended
    [posted] = posted_to(fake_slack, SECURITY_CHANNEL)
    assert _digest_size(posted.blocks) == 4
    assert all(r.event.event_id in text_of(posted) for r in records)
    assert all((r.timeline[-1].detail or "").startswith(HANDED_OFF) for r in records)
    assert [reminders_posted(r) for r in records] == [0, 0, 0, 0]


async def test_a_retried_digest_leaves_out_reminders_no_longer_waiting(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """An approval waits `SLOT_TIMEOUT` (one minute) from when its reminder fell due (`cycle`),
    then posts its own: a retried digest leaves out those that will have stopped waiting, and
    those whose `cycle` gives no time (a forged signal), so no reminder is posted twice. One
    handed off (patch `reminders-handed-off`) waits for nothing: left out, it is told to post
    its own; retried and posted, it is told nothing."""
    env = time_skipping_env
    settings = make_settings(slack_api_url)
    now = await env.get_current_time()
    async with running_worker(env.client, settings):
        await ensure_reminder_digest(env.client, settings.task_queue, 2)
        digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
        line = DigestLine(event=make_event("alice"), asked="<@U0ALICE>")
        fake_slack.failures["chat.postMessage"].append(
            InjectedFailure(method="chat.postMessage", status=503, times=100_000)
        )
        cycles = {
            "fresh-0": now.isoformat(),
            "fresh-1": now.isoformat(),
            "fresh-2": now.isoformat(),
            "gave-up": (now - SLOT_TIMEOUT).isoformat(),
            "no-time": "c",
            "naive": now.replace(tzinfo=None).isoformat(),
        }
        handed = {"handed-fresh": now.isoformat(), "handed-gave-up": cycles["gave-up"]}
        for event_id, cycle in {**cycles, **handed}.items():
            await digest.signal(
                DUE_SIGNAL,
                DueReminder(
                    event_id=event_id,
                    cycle=cycle,
                    line=line,
                    answer_in_digest=event_id not in handed,
                ),
            )
        await _until_a_digest_post_gave_up(env, digest)
        fake_slack.failures.clear()
        [posted] = await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL), within=30)
        waiting = await digest.query("waiting")
        await digest.terminate("test over")
        told = _answered(await digest.fetch_history())
    assert _digest_size(posted.blocks) == 4
    assert waiting == []
    assert told == [("handed-gave-up", False)] + [(f"fresh-{n}", True) for n in range(3)]
