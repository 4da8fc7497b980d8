"""The channel pacer (`powertrip.pacing`) and the Slack activities' use of it: a post whose turn
in its channel is more than a moment away leaves it to Temporal (a retry at its reserved turn)
instead of holding an activity slot while it waits (issue 16); the digest's post goes first."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.slack import CHANNEL_PACED, POST_METADATA, SlackActivities
from powertrip.contracts.approval import (
    Authority,
    EventRecord,
    MessageKind,
    PostRequest,
    Recipient,
)
from powertrip.contracts.reminders import DigestLine, ReminderDigestRequest
from powertrip.directory import Identity
from powertrip.pacing import ChannelPacer, Deferred
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from tests.harness import (
    activity_attempts,
    eventually,
    make_config,
    make_event,
    make_settings,
    posted_to,
    running_worker,
    start,
)
from tests.servers import SECURITY_CHANNEL, SLACK_TOKEN


class Clock:
    """A clock the test moves (the pacer's waits are then none, or short real ones)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def post(pacer: ChannelPacer, channel: str, key: str | None = None, **how: object) -> float:
    """One post through `pacer`: 0.0 if it was made, the delay if it was deferred."""
    try:
        async with pacer.turn(channel, key, **how):  # type: ignore[arg-type]
            return 0.0
    except Deferred as wait:
        return wait.delay


async def test_long_waits_are_deferred_to_turns_reserved_in_order_of_arrival() -> None:
    clock = Clock()
    pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    delays = [await post(pacer, "C1", f"k{n}") for n in range(6)]
    # The first posts at once; the others each get their own turn, a second apart, not all
    # the same retry time (no herd coming back at once).
    assert delays == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert pacer.reserved("C1", "k3") and not pacer.reserved("C1", "k0")
    assert pacer.reservations() == 5
    # Another channel has its own queue.
    assert await post(pacer, "C2", "k0") == 0.0

    clock.now += 2.5
    assert await post(pacer, "C1", "k2") == 0.0  # came back half a second late: posts
    assert not pacer.reserved("C1", "k2")
    assert await post(pacer, "C1", "k5") == 2.5  # came back early: its own turn again
    assert await post(pacer, "C1", "k6") == 3.5  # a new post queues behind every reservation
    clock.now += 1.1
    assert await post(pacer, "C1", "k1") == 0.0  # long past its turn: posts, never re-queued
    assert pacer.reservations() == 4  # k3, k4, k5 and k6


async def test_the_digest_goes_first_and_the_queue_grows_by_its_turn() -> None:
    clock = Clock()
    pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    for n in range(5):
        await post(pacer, "C1", f"k{n}")
    clock.now += 1.0
    assert await post(pacer, "C1", first=True) == 0.0  # ahead of k1..k4, not deferred
    # The turns reserved keep their times; the next new post comes after them and the digest.
    assert await post(pacer, "C1", "k5") == 5.0


async def test_a_post_is_not_reserved_past_its_deadline() -> None:
    clock = Clock()
    pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    for n in range(10):
        await post(pacer, "C1", f"k{n}")
    assert await post(pacer, "C1", "late", deadline=clock.now + 4) == 4.0
    clock.now += 1
    assert await post(pacer, "C1", "now", deadline=clock.now - 1) == 0.0
    assert await post(pacer, "C1", "after") == 11.0  # both squeezed in still took a turn


async def test_expired_reservations_and_idle_channels_are_forgotten() -> None:
    clock = Clock()
    pacer = ChannelPacer(1.0, defer_after=0.5, keep_for=60.0, clock=clock)
    for n in range(100):
        await post(pacer, "C1", f"k{n}")  # 99 reserved; their attempts never come back
    for user in range(50):
        await post(pacer, f"U{user}", "dm")  # a DM's channel is its user's
    assert pacer.reservations() == 99
    clock.now += 99 + 60 + 7  # the last turn, then `keep_for`, then the next pruning
    assert await post(pacer, "C2") == 0.0
    assert pacer.reservations() == 0
    # Only the channel just posted to is remembered: memory does not grow with every user.
    assert set(pacer._last) == {"C2"} and set(pacer._locks) == {"C2"}
    # An attempt that comes back after its reservation was forgotten queues as a new post.
    assert await post(pacer, "C1", "k50") == 0.0


async def test_short_waits_are_still_waited_for_in_the_worker() -> None:
    pacer = ChannelPacer(0.2, defer_after=0.5)
    started = time.monotonic()
    delays = [await post(pacer, "C1", f"k{n}") for n in range(3)]
    assert delays == [0.0, 0.0, 0.0]
    assert 0.4 <= time.monotonic() - started < 0.7


def channel_post(kind: MessageKind = MessageKind.REMINDER) -> PostRequest:
    record = EventRecord(
        event=make_event("deploy"),
        recipient=Recipient(
            identity=Identity.BOT, authority=Authority(security_team=["U0SEC1"]), slack_user=None
        ),
    )
    return PostRequest(record=record, kind=kind)


def activity_env(
    attempt: int = 1, give_up_after: timedelta = timedelta(hours=1)
) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_id="event-1",
        workflow_run_id="run-1",
        activity_id="7",
        attempt=attempt,
        scheduled_time=datetime.now(UTC),
        schedule_to_close_timeout=give_up_after,
    )
    return env


@pytest.fixture
def activities(fake_slack: FakeSlack, slack_api_url: str) -> SlackActivities:
    slack = AsyncWebClient(token=SLACK_TOKEN, base_url=slack_api_url)
    return SlackActivities(slack, make_config(), SECURITY_CHANNEL)


async def test_a_post_far_from_its_turn_asks_temporal_to_retry_it_at_its_turn(
    activities: SlackActivities, fake_slack: FakeSlack
) -> None:
    clock = Clock()
    activities.pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    for n in range(10):  # ten posts ahead of it in the channel's queue: 0 s to 9 s
        await post(activities.pacer, SECURITY_CHANNEL, f"other-{n}")

    with pytest.raises(ApplicationError) as raised:
        await activity_env().run(activities.post_notification, channel_post())
    error = raised.value
    assert error.type == CHANNEL_PACED and not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=10)
    assert error.category is ApplicationErrorCategory.BENIGN  # no warning per deferral
    assert posted_to(fake_slack, SECURITY_CHANNEL) == []

    # Temporal retries it at its turn: it posts, and does not first look for an earlier
    # attempt's message (a conversations.history call per deferral would hit Slack's limits).
    clock.now += 10
    posted = await activity_env(attempt=2).run(activities.post_notification, channel_post())
    assert [m.ts for m in posted_to(fake_slack, SECURITY_CHANNEL)] == [posted.ts]
    assert not [c for c in fake_slack.calls if c["method"] == "conversations.history"]


async def test_a_deferred_post_comes_back_before_its_schedule_to_close(
    activities: SlackActivities,
) -> None:
    """The approval workflow gives a post `max(renotify_after, 1 min)` (schedule-to-close): a
    queue longer than that must not make it give up the reminder."""
    clock = Clock()
    activities.pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    for n in range(120):
        await post(activities.pacer, SECURITY_CHANNEL, f"other-{n}")
    with pytest.raises(ApplicationError) as raised:
        env = activity_env(give_up_after=timedelta(minutes=1))
        await env.run(activities.post_notification, channel_post())
    delay = raised.value.next_retry_delay
    # One minute less one attempt's 20 s: back at most 40 s after it was scheduled.
    assert delay is not None and timedelta(seconds=38) < delay <= timedelta(seconds=40)


async def test_a_local_first_question_waits_for_its_turn_past_its_own_short_timeout(
    activities: SlackActivities, fake_slack: FakeSlack
) -> None:
    """A first question runs as a local activity that gives up within seconds and then goes on
    as an activity (patch `bounded-local-slack-calls`); the post gives up only at `give_up_at`.
    Counted from its own 15 s it would be posted at once, ahead of its turn: it is deferred to
    its turn instead."""
    clock = Clock()
    activities.pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    for n in range(30):
        await post(activities.pacer, SECURITY_CHANNEL, f"other-{n}")
    request = channel_post(MessageKind.FIRST)
    request.give_up_at = datetime.now(UTC) + timedelta(minutes=30)
    env = activity_env(give_up_after=timedelta(seconds=15))
    env.info = dataclasses.replace(env.info, is_local=True)
    with pytest.raises(ApplicationError) as raised:
        await env.run(activities.post_notification, request)
    delay = raised.value.next_retry_delay
    assert delay is not None and timedelta(seconds=25) < delay <= timedelta(seconds=31)
    assert posted_to(fake_slack, SECURITY_CHANNEL) == []
    # Another post, counted from its own 15 s: squeezed in at once, ahead of its turn.
    request.give_up_at, request.key = None, "another"
    posted = await activity_env(give_up_after=timedelta(seconds=15)).run(
        activities.post_notification, request
    )
    assert [m.ts for m in posted_to(fake_slack, SECURITY_CHANNEL)] == [posted.ts]


async def test_the_digest_is_posted_at_once_however_long_the_queue(
    activities: SlackActivities, fake_slack: FakeSlack
) -> None:
    clock = Clock()
    activities.pacer = ChannelPacer(1.0, defer_after=0.5, clock=clock)
    for n in range(50):
        await post(activities.pacer, SECURITY_CHANNEL, f"other-{n}")
    clock.now += 1
    line = DigestLine(event=make_event("alice"), asked="<@U0ALICE>")
    request = ReminderDigestRequest(lines=[line] * 6)
    started = time.monotonic()
    posted = await activity_env().run(activities.post_digest, request)
    assert time.monotonic() - started < 1
    assert [m.ts for m in posted_to(fake_slack, SECURITY_CHANNEL)] == [posted.ts]


async def test_a_burst_of_channel_posts_waits_in_temporal_and_is_posted_a_second_apart(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Six bots' logins at once, each asked in the security channel: the posts after the first
    few are retried by Temporal at their turns (attempt 2), none is lost or posted twice, and
    the channel still gets them at least a second apart."""
    settings = make_settings(slack_api_url)
    async with running_worker(dev_env.client, settings):
        handles = await asyncio.gather(
            *(start(dev_env, make_event("deploy"), settings.task_queue) for _ in range(6))
        )
        posted = await eventually(
            lambda: (found := posted_to(fake_slack, SECURITY_CHANNEL))[5:] and found, within=30
        )
        attempts = [await _post_attempts(h) for h in handles]
        for handle in handles:
            await handle.terminate("test over")
    assert len(posted) == 6
    assert sorted(a for [a] in attempts)[-3:] == [2, 2, 2], attempts
    times = sorted(float(m.ts) for m in posted)
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(times)), times


async def _post_attempts(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """The attempt that completed each `post_notification` of `handle`'s run."""
    return activity_attempts(await handle.fetch_history(), "post_notification")


@pytest.mark.parametrize("attempt, is_local", [(4, True), (1, True), (1, False)])
async def test_a_first_question_run_again_long_after_its_task_finds_its_earlier_post(
    activities: SlackActivities, fake_slack: FakeSlack, attempt: int, is_local: bool
) -> None:
    """The first question is a local activity: its retry after a wait on a timer is scheduled
    anew (a later scheduled time), and a rerun of a lost task starts at attempt 1, both long
    after the task that asked. Either looks for the post as far back as that task's time
    (`PostRequest.scheduled_at`), so a DM posted minutes before is found, not posted again. An
    activity of its own, at attempt 1, has no earlier attempt to find and posts at once."""
    asked = datetime.now(UTC) - timedelta(minutes=5)
    earlier = SlackMessage(
        channel="D0ALICE",
        ts=f"{(asked + timedelta(seconds=1)).timestamp():.6f}",
        metadata={"event_type": POST_METADATA, "event_payload": {"post": "event-1/run-1/first"}},
    )
    fake_slack.messages[(earlier.channel, earlier.ts)] = earlier
    request = channel_post(MessageKind.FIRST)
    request.to_user, request.key, request.scheduled_at = "U0ALICE", "first", asked
    env = activity_env(attempt)
    env.info = dataclasses.replace(env.info, is_local=is_local)
    posted = await env.run(activities.post_notification, request)
    dms = posted_to(fake_slack, "D0ALICE")
    if is_local:
        assert (posted.channel, posted.ts) == ("D0ALICE", earlier.ts)
        assert dms == [earlier]
    else:
        assert len(dms) == 2 and posted.ts != earlier.ts
