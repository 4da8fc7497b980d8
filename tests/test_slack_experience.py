"""What people see in Slack and who may act: message content, reminder threads and digests, the
security team from a user group, cached directory lookups, start-up checks and the manifest."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.reminders import ReminderActivities
from powertrip import messages
from powertrip.contracts.approval import Action, Authority, EventRecord, MessageKind, Recipient
from powertrip.contracts.reminders import (
    DUE_BATCH_SIGNAL,
    DigestLine,
    DueBatch,
    DueReminder,
    HandOff,
    ReminderDigestInput,
    reminder_collector_id,
    reminder_collector_ids,
    reminder_digest_id,
    reminder_task_queue,
)
from powertrip.directory import Identity
from powertrip.models import EventStatus, SecurityEvent
from powertrip.origins import Origins
from powertrip.pacing import ChannelPacer
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.services.starts import ensure_reminder_digest
from powertrip.slack_checks import SCOPES, SlackSetupError, check_slack
from tests.harness import (
    activity_inputs,
    buttons,
    decide,
    eventually,
    make_config,
    make_event,
    make_settings,
    posted_to,
    reminders_posted,
    running_worker,
    start,
    state_eventually,
    text_of,
)
from tests.servers import SECURITY_CHANNEL, SLACK_TOKEN
from workflows.approval import ApprovalWorkflow
from workflows.reminders import (
    DRAIN_PAUSE,
    GATHER_WINDOW,
    LISTED_CARRIED,
    ReminderDigestWorkflow,
)

REPO = Path(__file__).resolve().parents[1]


def record_for(actor: str, slack_user: str | None, **event: Any) -> EventRecord:
    identity = Identity.MAPPED if slack_user else Identity.BOT
    return EventRecord(
        event=make_event(actor, **event),
        recipient=Recipient(
            identity=identity,
            slack_user=slack_user,
            authority=Authority(actor_slack_user=slack_user, security_team=["U0SEC1"]),
        ),
    )


def block_text(blocks: list) -> str:
    return text_of(SlackMessage(channel="X", ts="1", blocks=[b.to_dict() for b in blocks]))


def test_dm_reads_at_a_glance_with_origin_label_and_relative_time() -> None:
    record = record_for("alice", "U0ALICE", address="10.8.3.4")
    origins = Origins({"10.0.0.0/8": "corporate", "10.8.0.0/16": "office VPN"})
    now = record.event.occurred_at + timedelta(minutes=12)
    text, blocks = messages.notification(
        record,
        MessageKind.FIRST,
        ui_url="http://ui/namespaces/default/workflows/x",
        origin=origins.label("10.8.3.4"),
        now=now,
    )
    shown = block_text(blocks)
    assert "Was this you?" in text
    for fact in ("alice", "bastion", "10.8.3.4", "office VPN", "12 min ago", "papertrail"):
        assert fact in shown, fact
    assert "<http://ui/namespaces/default/workflows/x|Open in Temporal>" in shown
    actions = next(b.to_dict() for b in blocks if b.type == "actions")["elements"]
    assert [(a["action_id"], a["text"]["text"], a.get("style")) for a in actions] == [
        ("approve", "Approve — this was me", "primary"),
        ("approve_expect", "Approve, and expect the same from me here for 1 h", None),
        ("not_me", "Not me", "danger"),
    ]
    assert actions[2]["confirm"]["confirm"]["text"] == "Yes, not me"
    # The button value is only a reference to the event.
    assert {a["value"] for a in actions} == {record.event.event_id}


def test_channel_messages_offer_approve_on_behalf() -> None:
    bot = record_for("deploy", None)
    _, blocks = messages.notification(bot, MessageKind.FIRST, in_channel=True)
    assert buttons(SlackMessage(channel="C", ts="1", blocks=[b.to_dict() for b in blocks])) == [
        "approve_on_behalf",
        "not_me",
    ]
    # A reminder about bob's login in the channel offers what the channel's readers (the
    # security team) can do; bob's own "Approve — this was me" stays in bob's DM.
    person = record_for("bob", "U0BOB")
    _, blocks = messages.notification(person, MessageKind.REMINDER, 900, in_channel=True)
    message = SlackMessage(channel="C", ts="1", blocks=[b.to_dict() for b in blocks])
    assert buttons(message) == ["approve_on_behalf", "not_me"]
    actions = next(b.to_dict() for b in blocks if b.type == "actions")["elements"]
    assert [(a["text"]["text"], a.get("style")) for a in actions] == [
        ("Approve on behalf", "primary"),
        ("Report as suspicious", "danger"),
    ]
    assert "Still unconfirmed after 15m" in text_of(message)
    assert "Asked: <@U0BOB>" in text_of(message)
    _, blocks = messages.notification(person, MessageKind.FIRST)
    dm = SlackMessage(channel="D0BOB", ts="1", blocks=[b.to_dict() for b in blocks])
    assert buttons(dm) == ["approve", "approve_expect", "not_me"]
    assert messages.action_for("approve_on_behalf") is Action.APPROVE
    with pytest.raises(ValueError):
        messages.action_for("make_me_admin")


async def test_origins_label_most_specific_network_and_reverse_dns_only_when_enabled() -> None:
    origins = Origins({"10.0.0.0/8": "corporate", "10.8.0.0/16": "office VPN", "::1/128": "me"})
    assert origins.label("10.8.1.1") == "office VPN"
    assert origins.label("10.9.1.1") == "corporate"
    assert origins.label("::1") == "me"
    # An IPv4 peer of a dual-stack socket, written IPv6-mapped, is in the IPv4 network.
    assert origins.label("::ffff:10.8.1.1") == "office VPN"
    assert origins.label("[10.9.1.1]") == "corporate"
    assert origins.label("203.0.113.7") is None and origins.label("not-an-ip") is None
    assert await origins.describe("127.0.0.1") is None  # reverse DNS is off by default
    resolving = Origins({}, reverse_dns=True)
    assert await resolving.describe("127.0.0.1") == "localhost"  # from /etc/hosts, offline


async def test_pacer_spaces_posts_per_channel_not_across_channels() -> None:
    pacer = ChannelPacer(0.2)
    started = time.monotonic()
    for _ in range(3):
        async with pacer.turn("C1"):
            pass
    async with pacer.turn("C2"):
        pass
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 0.6


async def test_bot_event_reminders_thread_under_the_channel_post_first_one_broadcast(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    async with running_worker(time_skipping_env.client, settings):
        handle = await start(time_skipping_env, make_event("deploy"), settings.task_queue)
        [root] = await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL))
        assert buttons(root) == ["approve_on_behalf", "not_me"]
        assert "bot account" in text_of(root)
        await time_skipping_env.sleep(timedelta(minutes=46))
        await state_eventually(handle, lambda r: sum(e.what == "reminded" for e in r.timeline) == 3)
        reminders = [m for m in posted_to(fake_slack, SECURITY_CHANNEL) if m.ts != root.ts]
        assert len(reminders) == 3
        assert all(m.thread_ts == root.ts for m in reminders)
        assert [m.reply_broadcast for m in reminders] == [True, False, False]
        await decide(handle, Action.APPROVE, "U0SEC1")
        await handle.result()
    assert all(buttons(m) == [] for m in fake_slack.messages.values())


async def test_many_due_reminders_become_one_digest(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    config = make_config(digest_after=2)
    async with running_worker(time_skipping_env.client, settings, config):
        await ensure_reminder_digest(time_skipping_env.client, settings.task_queue, 2)
        events = [make_event("alice") for _ in range(4)]
        handles = [await start(time_skipping_env, e, settings.task_queue) for e in events]
        await eventually(lambda: len(posted_to(fake_slack, "D0ALICE")) == 4)
        await time_skipping_env.sleep(timedelta(minutes=15, seconds=30))
        for handle in handles:
            await state_eventually(handle, lambda r: any(e.what == "reminded" for e in r.timeline))
        channel = posted_to(fake_slack, SECURITY_CHANNEL)
        assert len(channel) == 1, [text_of(m) for m in channel]
        digest = text_of(channel[0])
        assert "4 events still need a decision" in digest
        assert all(e.event_id in digest for e in events)
        assert buttons(channel[0]) == []
        record = await handles[0].query(ApprovalWorkflow.state)
        assert "handed to the reminder digest" in (record.timeline[-1].detail or "")
        # Each event's reminder cost it one workflow task: no signal out, no answer back.
        for handle in handles:
            after = _after_first_reminder(await handle.fetch_history())
            assert after.count("WorkflowTaskCompleted") == 1, after
            assert not [e for e in after if "Signal" in e], after

        # Three decided; the one left is reminded on its own, in its own message.
        for handle in handles[1:]:
            await decide(handle, Action.APPROVE, "U0ALICE")
            await handle.result()
        await time_skipping_env.sleep(timedelta(minutes=15))
        await state_eventually(handles[0], lambda r: reminders_posted(r) == 1)
        channel = posted_to(fake_slack, SECURITY_CHANNEL)
        assert len(channel) == 2
        assert buttons(channel[1]) == ["approve_on_behalf", "not_me"]
        await decide(handles[0], Action.APPROVE, "U0ALICE")
        await handles[0].result()


async def test_the_digest_gathers_from_when_reminders_fell_due(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Reminders due together reach the digest seconds late under load. It gathered for 5 s
    after the first one arrived, and at 10,000 pending a digested reminder reached Slack 12 s
    after it fell due (issue 16). Now it gathers until 5 s after the oldest waiting one fell
    due: one 4 s late is posted after a second (the channel's pace), one on time still waits
    the whole window for others, and a forged one with a time to come, or none, cannot make
    the window longer; nor can the latest time there is fail the digest's task (an overflow
    would fail it on every attempt, and no reminder would be posted again)."""
    env = time_skipping_env
    settings = make_settings(slack_api_url)
    line = DigestLine(event=make_event("alice"), asked="<@U0ALICE>")
    async with running_worker(env.client, settings):
        await ensure_reminder_digest(env.client, settings.task_queue, 2)
        digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))
        now = await env.get_current_time()
        batches = {
            "late": (now - timedelta(seconds=4)).isoformat(),
            "on-time": "now",
            "to-come": (now + timedelta(hours=1)).isoformat(),
            "forged": "not a time",
            # The latest and earliest times there are: neither may fail the digest's task.
            "year-9999": "9999-12-31T23:59:59.999999+00:00",
            "year-1": "0001-01-01T00:00:00+00:00",
        }
        for n, (name, due_at) in enumerate(batches.items(), 1):
            if due_at == "now":
                due_at = (await env.get_current_time()).isoformat()
            # One signal, as a collector hands them on: three would split a 1 s gathering.
            batch = [
                DueReminder(
                    event_id=f"{name}-{i}",
                    cycle=due_at,
                    due_at=due_at,
                    line=line,
                    answer_in_digest=False,
                )
                for i in range(3)
            ]
            await digest.signal(DUE_BATCH_SIGNAL, DueBatch(reminders=batch))
            await env.sleep(GATHER_WINDOW)

            def posted(count: int = n) -> bool:
                return len(posted_to(fake_slack, SECURITY_CHANNEL)) == count

            await eventually(posted)
        history = await digest.fetch_history()
        await digest.terminate("test over")
    gathered = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.HasField("timer_started_event_attributes")
    ]
    assert gathered[0] == DRAIN_PAUSE, gathered
    assert DRAIN_PAUSE < gathered[1] <= GATHER_WINDOW, gathered
    assert gathered[2:] == [GATHER_WINDOW, GATHER_WINDOW, GATHER_WINDOW, DRAIN_PAUSE], gathered
    assert all("3 events still need" in text_of(m) for m in posted_to(fake_slack, SECURITY_CHANNEL))


def _handed_off(event: SecurityEvent, cycle: str) -> DueReminder:
    """`event`'s reminder of `cycle` as its approval hands it off."""
    return DueReminder(
        event_id=event.event_id,
        cycle=cycle,
        due_at=cycle,
        line=DigestLine(event=event, asked="<@U0ALICE>"),
        answer_in_digest=False,
    )


def _told(history: WorkflowHistory) -> list[list[tuple[str, str]]]:
    """Each `answer_slots` the digest scheduled: (event id, cycle) of every answer in it."""
    return [
        [(a["event_id"], a["slot"]["cycle"]) for a in answers["answers"]]
        for _, answers in activity_inputs(history, "answer_slots")
    ]


async def _told_at_least(digest: WorkflowHandle[Any, Any], count: int) -> WorkflowHistory | None:
    """The digest's history once it has scheduled `count` `answer_slots` or more, else None."""
    history = await digest.fetch_history()
    return history if len(_told(history)) >= count else None


async def test_a_reminder_handed_on_twice_is_listed_once_and_its_next_cycle_again(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """A hand-off retried into a collector's next run (Temporal's request-id dedup ends with
    a run), or into a collector after its first attempt went to the digest, hands a reminder on
    twice, and it was listed twice: one event twice in a digest, or in two. Now a copy of a
    reminder (same event, same cycle) pending, listed or told lately is dropped. The event's
    next reminder is listed; a copy from the approval's task run again after its worker died
    (a new cycle, which the run then waits on) is told on its own cycle, not dropped."""
    env = time_skipping_env
    settings = make_settings(slack_api_url)
    events = [make_event("alice", provider_id=f"twice-{n}") for n in range(7)]
    first, fresh, alone = events[:3], events[3:6], events[6]

    def listed(message: SlackMessage) -> list[str]:
        return sorted(e.event_id for e in events if e.event_id in text_of(message))

    async with running_worker(env.client, settings):
        await ensure_reminder_digest(env.client, settings.task_queue, 2)
        digest = env.client.get_workflow_handle(reminder_digest_id(settings.task_queue))

        async def hand_on(reminders: list[DueReminder], posts: int = 1) -> list[SlackMessage]:
            """The digests posted for `reminders` handed on in one batch (`posts` awaited)."""
            before = len(posted_to(fake_slack, SECURITY_CHANNEL))
            await digest.signal(DUE_BATCH_SIGNAL, DueBatch(reminders=reminders))
            await env.sleep(GATHER_WINDOW)
            await eventually(lambda: len(posted_to(fake_slack, SECURITY_CHANNEL)) >= before + posts)
            await env.sleep(GATHER_WINDOW * 2)  # a second digest would be posted by now
            return posted_to(fake_slack, SECURITY_CHANNEL)[before:]

        at = (await env.get_current_time()).isoformat()
        # Copies in one batch: the first attempt's and its retry's, handed on together.
        [one] = await hand_on([_handed_off(e, at) for e in [first[0], *first, first[2]]])
        # Copies that come later (a retry through a collector's next run), with new reminders.
        later = (await env.get_current_time()).isoformat()
        [two] = await hand_on(
            [*(_handed_off(e, at) for e in first), *(_handed_off(e, later) for e in fresh)]
        )
        # Each first event's next reminder, a cycle of its own.
        nxt = (await env.get_current_time()).isoformat()
        [three] = await hand_on([_handed_off(e, nxt) for e in first])
        # Too few for a digest: told to post its own, once; then the copy its task run again
        # hands on (a new cycle, the same due time) is told on that cycle.
        rerun = (await env.get_current_time()).isoformat()
        assert await hand_on([_handed_off(alone, at), _handed_off(alone, at)], posts=0) == []
        await eventually(lambda: _told_at_least(digest, 1))
        again = _handed_off(alone, rerun).model_copy(update={"due_at": at})
        assert await hand_on([again], posts=0) == []
        await eventually(lambda: _told_at_least(digest, 2))
        await env.sleep(GATHER_WINDOW * 2)  # a third answer would be scheduled by now
        history = await digest.fetch_history()
        await digest.terminate("test over")
    assert listed(one) == sorted(e.event_id for e in first)
    assert "3 events still need" in text_of(one)
    assert listed(two) == sorted(e.event_id for e in fresh)
    assert "3 events still need" in text_of(two)
    assert listed(three) == sorted(e.event_id for e in first)
    assert _told(history) == [[(alone.event_id, at)], [(alone.event_id, rerun)]]


async def test_the_digest_carries_the_reminders_it_listed_lately_over_continue_as_new(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """What the digest listed lately goes to its next run, the newest `LISTED_CARRIED` of it
    (the input stays small): a copy that arrives after continue-as-new is still dropped."""
    start = datetime(2026, 12, 2, tzinfo=UTC)
    listed = {f"{n:032x}": (start + timedelta(seconds=n)).isoformat() for n in range(2050)}
    run = ReminderDigestWorkflow(ReminderDigestInput(listed={**listed, "forged": "not a time"}))
    run.lists_once = True
    carried = run._next_run([]).listed
    assert carried == dict(list(listed.items())[-LISTED_CARRIED:])  # the newest, with times
    assert ReminderDigestWorkflow(ReminderDigestInput(listed=carried))._carried_listing() == carried
    # Forged `due` signals choose their event ids: 2,000 of 5 kB would be 10 MB carried, over
    # Temporal's 2 MB, and the run could never continue. A key is 32 characters whatever.
    huge = make_event("alice").model_copy(update={"event_id": "x" * 5_000})
    forged = {_handed_off(huge, str(n)).key(): start.isoformat() for n in range(LISTED_CARRIED)}
    size = len(ReminderDigestInput(listed=forged).model_dump_json())
    assert len(forged) == LISTED_CARRIED and size < 200_000, size

    env = time_skipping_env
    settings = make_settings(slack_api_url)
    known, new = make_event("alice", provider_id="carried"), make_event("alice")
    at = (await env.get_current_time()).isoformat()
    async with running_worker(env.client, settings):
        # A digest's next run, as its last run carried what it had listed.
        digest = await env.client.start_workflow(
            ReminderDigestWorkflow.run,
            ReminderDigestInput(digest_after=2, listed={_handed_off(known, at).key(): at}),
            id=f"digest-carried-{uuid.uuid4().hex[:8]}",
            task_queue=reminder_task_queue(settings.task_queue),
        )
        reminders = [_handed_off(known, at), _handed_off(new, at)]
        await digest.signal(ReminderDigestWorkflow.due_batch, DueBatch(reminders=reminders))
        await env.sleep(GATHER_WINDOW)
        await eventually(lambda: _told_at_least(digest, 1))
        await env.sleep(GATHER_WINDOW * 2)  # a second answer would be scheduled by now
        history = await digest.fetch_history()
        await digest.terminate("test over")
    assert _told(history) == [[(new.event_id, at)]]


async def test_a_hand_off_retried_after_its_signal_landed_is_one_reminder(
    dev_env: WorkflowEnvironment, slack_api_url: str
) -> None:
    """A hand-off attempt that times out after its signal landed is retried, and the retry's
    signal used to be a second one: the reminder listed twice (45 and 83 such attempts in two
    runs at 10,000 pending, issue 16). Temporal now takes the retries as the same signal (the
    request id is the reminder's), while the next cycle's reminder is a new one."""
    task_queue = make_settings(slack_api_url).task_queue
    await ensure_reminder_digest(dev_env.client, task_queue, 2)  # no worker: they only hold
    event = make_event("alice")
    line = DigestLine(event=event, asked="<@U0ALICE>")
    hand_off = ReminderActivities(dev_env.client).hand_off
    try:
        for cycle in ("cycle-1", "cycle-1", "cycle-1", "cycle-2"):
            due = DueReminder(event_id=event.event_id, cycle=cycle, line=line)
            assert await hand_off(HandOff(task_queue=task_queue, reminder=due))
        collector = dev_env.client.get_workflow_handle(
            reminder_collector_id(task_queue, event.event_id)
        )
        history = await collector.fetch_history()
    finally:
        for workflow_id in [*reminder_collector_ids(task_queue), reminder_digest_id(task_queue)]:
            await dev_env.client.get_workflow_handle(workflow_id).terminate("test over")
    signalled = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signalled) == 2


def _after_first_reminder(history: WorkflowHistory) -> list[str]:
    """The history's event types from the first timer that fired on, without the prefix."""
    types = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    fired = types.index("TIMER_FIRED")
    return ["".join(w.title() for w in t.split("_")) for t in types[fired + 1 :]]


async def test_security_team_from_a_slack_user_group_and_cached_email_lookups(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    fake_slack.usergroups["S0SECTEAM"] = ["U0BOB"]
    settings = make_settings(slack_api_url)
    config = make_config(security_team=[], security_team_group="S0SECTEAM")
    async with running_worker(time_skipping_env.client, settings, config):
        # Bob is in the group: he may approve a bot's login on behalf; Mallory may not.
        handle = await start(time_skipping_env, make_event("deploy"), settings.task_queue)
        await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL))
        await decide(handle, Action.APPROVE, "U0MALLORY")
        await decide(handle, Action.APPROVE, "U0BOB")
        record = await handle.result()
        assert record.decision is not None and record.decision.by == "U0BOB"
        assert record.authority is not None and record.authority.security_team == ["U0BOB"]

        # Two of bob's own logins: one users.lookupByEmail, the second answered from the cache.
        for _ in range(2):
            handle = await start(time_skipping_env, make_event("bob"), settings.task_queue)
            await state_eventually(handle, lambda r: r.recipient is not None)
            await decide(handle, Action.APPROVE, "U0BOB")
            await handle.result()
    lookups = [c for c in fake_slack.calls if c["method"] == "users.lookupByEmail"]
    assert len(lookups) == 1
    group_calls = [c for c in fake_slack.calls if c["method"] == "usergroups.users.list"]
    assert len(group_calls) == 1


async def test_not_me_incident_mentions_team_and_is_renotified_until_acknowledged(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    config = make_config(security_team=["U0SEC1", "U0SEC2"])
    async with running_worker(time_skipping_env.client, settings, config):
        handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
        await eventually(lambda: posted_to(fake_slack, "D0ALICE"))
        await decide(handle, Action.REPORT, "U0ALICE")
        [alert] = await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL))
        assert "<@U0SEC1> <@U0SEC2>" in text_of(alert)
        # The alert is in the memo at once, so the API accepts its Acknowledge button.
        record = await state_eventually(handle, lambda r: len(r.messages) == 2)
        assert record.messages[-1].ts == alert.ts
        await time_skipping_env.sleep(timedelta(minutes=31))
        record = await state_eventually(
            handle, lambda r: sum(e.what == "reminded" for e in r.timeline) == 2
        )
        assert record.status is EventStatus.REPORTED
        await decide(handle, Action.ACKNOWLEDGE, "U0SEC2")
        record = await handle.result()
    assert record.status is EventStatus.ACKNOWLEDGED
    assert [e.what for e in record.timeline][-1] == "acknowledged"
    assert record.decision is not None and record.decision.by == "U0SEC2"


async def test_startup_checks_name_what_to_fix(fake_slack: FakeSlack, slack_api_url: str) -> None:
    config = make_config()
    slack = AsyncWebClient(token=SLACK_TOKEN, base_url=slack_api_url)
    identity = await check_slack(slack, config, SECURITY_CHANNEL)
    assert identity.team == "Powertrip Fake" and "chat:write" in (identity.scopes or [])

    with pytest.raises(SlackSetupError, match="bot token"):
        await check_slack(
            AsyncWebClient(token="xoxb-wrong", base_url=slack_api_url), config, SECURITY_CHANNEL
        )
    with pytest.raises(SlackSetupError, match=r"C0NOPE.*invite"):
        await check_slack(slack, config, "C0NOPE")
    try:
        fake_slack.scopes = [s for s in SCOPES if s != "users:read.email"]
        with pytest.raises(SlackSetupError, match=r"lacks scopes users:read\.email"):
            await check_slack(slack, config, SECURITY_CHANNEL)
        fake_slack.scopes = [s for s in SCOPES if s != "channels:read"]
        with pytest.raises(SlackSetupError, match="lacks scope channels:read"):
            await check_slack(slack, config, SECURITY_CHANNEL)
    finally:
        fake_slack.scopes = sorted(SCOPES)


def test_manifest_grants_exactly_the_scopes_used_and_points_at_interactions() -> None:
    manifest = yaml.safe_load((REPO / "slack" / "manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(SCOPES)
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].endswith("/slack/interactions")
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/powertrip"
    assert command["url"] == interactivity["request_url"]


def test_digest_lists_each_event_with_wait_and_link() -> None:
    record = record_for("deploy", None)
    line = messages.DigestLine(
        event=record.event, asked="the security channel", waited_seconds=3600, ui_url="http://u/x"
    )
    text, blocks = messages.reminder_digest([line, line], now=datetime.now(UTC))
    shown = block_text(blocks)
    assert "2 events still need a decision" in text
    assert "waited 1h" in shown and "<http://u/x|" in shown


async def test_reverse_dns_name_shown_only_when_it_resolves_back_to_the_address() -> None:
    """Whoever controls 203.0.113.7's reverse zone can give it the PTR `vpn.corp.example.com`;
    the name is shown only if that name's own (forward) records point back at the address."""
    ptr = {
        "203.0.113.7": "vpn.corp.example.com",  # forged: corp's zone says otherwise
        "198.51.100.1": "vpn.corp.example.com",
        "2001:db8::1": "v6.example.com",
        "192.0.2.9": "nowhere.example.com",  # does not resolve forward at all
    }
    forward = {
        "vpn.corp.example.com": ["198.51.100.1"],
        "v6.example.com": ["2001:db8:0:0::1"],
    }

    async def reverse(address: str) -> str | None:
        if address not in ptr:
            raise OSError("no PTR")
        return ptr[address]

    async def resolve(name: str) -> list[str]:
        if name not in forward:
            raise OSError("NXDOMAIN")
        return forward[name]

    origins = Origins(
        {"203.0.113.0/24": "partner"}, reverse_dns=True, reverse=reverse, forward=resolve
    )
    assert await origins.describe("203.0.113.7") == "partner"  # the forged name is not shown
    assert await origins.describe("198.51.100.1") == "vpn.corp.example.com"
    assert await origins.describe("2001:db8::1") == "v6.example.com"
    assert await origins.describe("192.0.2.9") is None
    assert await origins.describe("192.0.2.10") is None

    async def slow(address: str) -> str | None:
        await asyncio.sleep(5)
        return "slow.example.com"

    hurried = Origins({}, reverse_dns=True, timeout=0.05, reverse=slow, forward=resolve)
    assert await hurried.describe("192.0.2.11") is None
