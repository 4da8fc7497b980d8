"""ApprovalWorkflow following an event's escalation policy on the time-skipping server, with its
activities faked by name (tests/test_approval_decisions.py's `FakeActivities`): a page after
`page_after`, once; repeats up to their limit; a *Not me* paging at once; decisions resolving
and acknowledging pages; business hours deferring a low-urgency page across a weekend and a DST
change, and opening while another timer is pending; a PagerDuty outage delaying a page without
holding up a decision. What the workflow asks PagerDuty is the assertion
(tests/test_paging_end_to_end.py runs the real client against the fake Events API)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from powertrip.business_hours import WEEKDAYS, BusinessHours, zone
from powertrip.contracts.approval import (
    DECIDE_SIGNAL,
    Action,
    ApprovalInput,
    Click,
    EventRecord,
    MessageKind,
    PostedMessage,
    TimelineEntry,
    TimelineKind,
)
from powertrip.contracts.paging import Page, PageAction, PageStatus
from powertrip.contracts.reminders import HANDED_OFF, SLOT_SIGNAL, HandOff, ReminderSlot
from powertrip.escalation import EscalationPolicy, Severity, TakenStep, Urgency
from powertrip.models import EventStatus
from tests.harness import eventually, make_event, state_eventually
from tests.test_approval_decisions import (
    FakeActivities,
    Handle,
    ask,
    decide_as,
    owner,
    running,
)
from workflows.approval import ApprovalWorkflow

REMINDERS = EscalationPolicy.from_renotify(timedelta(minutes=15))
# A timer fires a few milliseconds after it is due (the workflow task's start): compare
# workflow times to within this.
TICK = timedelta(seconds=1)


def policy(*steps: dict[str, Any]) -> EscalationPolicy:
    return EscalationPolicy.model_validate(list(steps)).with_severity(Severity.WARNING)


def whats(record: EventRecord) -> list[TimelineKind]:
    return [e.what for e in record.timeline]


def entries(record: EventRecord, what: TimelineKind) -> list[TimelineEntry]:
    return [e for e in record.timeline if e.what is what]


async def state(handle: Handle) -> EventRecord:
    record: EventRecord = await handle.query(ApprovalWorkflow.state)
    return record


async def test_an_undecided_event_pages_once_after_page_after_and_approval_resolves_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeActivities(owner())
    event = make_event("alice", escalation=REMINDERS.with_one_page(timedelta(hours=1)))
    async with running(env, fakes) as task_queue:
        handle = await ask(env, event, task_queue)
        await env.sleep(timedelta(minutes=59))
        assert fakes.triggers == []
        await env.sleep(timedelta(hours=6))
        [trigger] = fakes.triggers
        assert trigger.severity is Severity.WARNING
        assert trigger.summary.startswith("Powertrip: Not decided after 1h: alice: ssh login")
        # Reminders went on all the while, every 15 minutes.
        assert len(fakes.asked(MessageKind.REMINDER)) == 4 * 7 - 1
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()

    key = f"powertrip/{event.event_id}/step1-0"
    assert trigger.dedup_key == key
    assert fakes.pages == [(PageAction.TRIGGER, key), (PageAction.RESOLVE, key)]
    [page] = record.pages
    assert (page.name, page.status) == ("step1-0", PageStatus.RESOLVED)
    assert record.asked_at is not None
    assert abs(page.at - record.asked_at - timedelta(hours=1)) < TICK
    [paged] = entries(record, TimelineKind.PAGED)
    assert paged.page is not None and paged.page.http_status == 202
    assert paged.detail == f"Not decided after 1h: trigger {key}: success (Event processed)"
    [resolved] = entries(record, TimelineKind.PAGE_RESOLVED)
    assert resolved.by == "U0ALICE" and resolved.at >= record.decision.at  # type: ignore[union-attr]
    assert whats(record)[-2:] == [TimelineKind.APPROVED, TimelineKind.PAGE_RESOLVED]
    # The record keeps every step it took: 27 reminders and the one page.
    assert [t.step for t in record.taken].count(1) == 1 and len(record.taken) == 28


async def test_renotify_after_alone_reminds_as_before_and_never_pages(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeActivities(owner())
    event = make_event("alice")  # the config's renotify_after: 15m, no pagerduty
    assert event.escalation_policy() == REMINDERS
    async with running(env, fakes) as task_queue:
        handle = await ask(env, event, task_queue)
        await env.sleep(timedelta(hours=2, minutes=5))
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
    reminders = [p for p in fakes.posts if p.kind is MessageKind.REMINDER]
    assert [round(p.waited_seconds / 60) for p in reminders] == [15 * n for n in range(1, 9)]
    assert fakes.page_attempts == 0 and record.pages == []


async def test_pages_repeat_up_to_their_limit_and_approval_resolves_every_one(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeActivities(owner())
    pages = policy({"do": "page", "after": "5m", "every": "1h", "repeat": 2})
    event = make_event("alice", escalation=pages.with_severity(Severity.ERROR))
    async with running(env, fakes) as task_queue:
        handle = await ask(env, event, task_queue)
        await env.sleep(timedelta(hours=12))
        assert len(fakes.triggers) == 3
        await env.sleep(timedelta(days=2))
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()

    keys = [f"powertrip/{event.event_id}/step0-{n}" for n in range(3)]
    assert [t.dedup_key for t in fakes.triggers] == keys
    assert {t.severity for t in fakes.triggers} == {Severity.WARNING}  # the step said warning
    assert "(page 3 of 3)" in fakes.triggers[2].summary
    assert sorted(k for a, k in fakes.pages if a is PageAction.RESOLVE) == keys
    gaps = [b.at - a.at for a, b in itertools.pairwise(record.pages)]
    assert len(gaps) == 2 and all(abs(gap - timedelta(hours=1)) < TICK for gap in gaps), gaps
    assert fakes.asked(MessageKind.REMINDER) == []  # a policy of pages alone reminds nobody


async def test_not_me_pages_critical_at_once_and_the_teams_acknowledgement_settles_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeActivities(owner())
    event = make_event("alice", escalation=REMINDERS.with_one_page(timedelta(hours=1)))
    async with running(env, fakes) as task_queue:
        handle = await ask(env, event, task_queue)
        await env.sleep(timedelta(hours=1, minutes=5))
        assert len(fakes.triggers) == 1  # nobody decided within the hour: on-call is paged
        await decide_as(handle, Action.REPORT, "U0ALICE")
        reported = await env.get_current_time()
        await env.sleep(timedelta(hours=3))
        not_me = f"powertrip/{event.event_id}/not-me"
        step = f"powertrip/{event.event_id}/step1-0"
        # The Not me paged at once (critical); the page about an undecided event was resolved,
        # and no page about it being undecided follows, but the channel is still reminded.
        assert [t.dedup_key for t in fakes.triggers] == [step, not_me]
        assert fakes.triggers[1].severity is Severity.CRITICAL
        assert fakes.triggers[1].custom_details["reported by"] == "U0ALICE"
        assert (PageAction.RESOLVE, step) in fakes.pages
        record = await state(handle)
        assert record.pages[1].at - reported < timedelta(seconds=5)
        reminded = [e.at for e in entries(record, TimelineKind.REMINDED)]
        assert len([at for at in reminded if at > reported]) == 12
        await decide_as(handle, Action.ACKNOWLEDGE, "U0SEC1")
        record = await handle.result()

    assert fakes.pages[-2:] == [(PageAction.ACKNOWLEDGE, not_me), (PageAction.RESOLVE, not_me)]
    assert [p.status for p in record.pages] == [PageStatus.RESOLVED] * 2
    acknowledged, resolved = entries(record, TimelineKind.PAGE_ACKNOWLEDGED)[0], whats(record)[-1]
    assert acknowledged.by == "U0SEC1" and resolved is TimelineKind.PAGE_RESOLVED
    # The incident alert to the channel was posted as before.
    assert fakes.asked(MessageKind.REPORT) == [None]


async def test_a_pagerduty_outage_delays_the_not_me_page_but_not_the_alert_and_pages_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    fakes = FakeActivities(owner(), pagerduty_down=6)  # 5 s + 10 s + ... + 160 s of retries
    event = make_event("alice", escalation=REMINDERS)
    async with running(env, fakes) as task_queue:
        handle = await ask(env, event, task_queue)
        await decide_as(handle, Action.REPORT, "U0ALICE")
        # The incident alert is in Slack while PagerDuty still fails: the page is being sent.
        record = await state_eventually(handle, lambda r: bool(r.messages[1:]))
        assert [p.status for p in record.pages] == [PageStatus.SENDING]
        reported_at = record.report.at  # type: ignore[union-attr]
        await env.sleep(timedelta(minutes=10))
        record = await state_eventually(handle, lambda r: r.pages[0].status is PageStatus.OPEN)
        await decide_as(handle, Action.ACKNOWLEDGE, "U0SEC1")
        record = await handle.result()

    not_me = f"powertrip/{event.event_id}/not-me"
    assert fakes.page_attempts == 6 + 3  # six failures, then trigger, acknowledge, resolve
    assert [k for a, k in fakes.pages if a is PageAction.TRIGGER] == [not_me]  # once
    [paged] = entries(record, TimelineKind.PAGED)
    assert paged.at - reported_at >= timedelta(seconds=5 + 10 + 20 + 40 + 80 + 160)
    [alert] = [m for m in record.messages if m.kind is MessageKind.REPORT]
    assert alert.in_security_channel


async def test_approving_while_pagerduty_fails_calls_the_page_off_and_resolves_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The page fell due while PagerDuty was down; the owner approves before it recovers: the
    decision counts at once, the trigger is cancelled, and a resolve follows it (in case an
    attempt got through), so nobody is paged about an approved event."""
    env = time_skipping_env
    fakes = FakeActivities(owner(), pagerduty_down=8)
    event = make_event("alice", escalation=policy({"do": "page", "after": "1h"}))
    async with running(env, fakes) as task_queue:
        handle = await ask(env, event, task_queue)
        await env.sleep(timedelta(hours=1, seconds=30))
        record = await state(handle)
        assert [p.status for p in record.pages] == [PageStatus.SENDING]
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        await state_eventually(handle, lambda r: r.status is EventStatus.APPROVED)
        # The DM shows the approval while PagerDuty is still down.
        await eventually(lambda: fakes.updates)
        assert fakes.pages == []
        # The time-skipping server's result long-poll can end empty when it skips minutes of
        # retries itself: skip them first.
        await env.sleep(timedelta(minutes=10))
        record = await handle.result()

    key = f"powertrip/{event.event_id}/step0-0"
    assert fakes.pages == [(PageAction.RESOLVE, key)]
    assert [p.status for p in record.pages] == [PageStatus.RESOLVED]
    assert whats(record)[-2:] == [TimelineKind.PAGE_CANCELLED, TimelineKind.PAGE_RESOLVED]


async def test_a_low_urgency_page_waits_for_the_opening_that_comes_while_a_reminder_is_due(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Reminders every 50 minutes keep a timer pending; the business day opens between two of
    them: the low-urgency page goes at the opening, the high-urgency one went at once."""
    env = time_skipping_env
    now = await env.get_current_time()
    day = WEEKDAYS[(now + timedelta(days=2)).weekday()]  # tonight and tomorrow are closed
    hours = BusinessHours(timezone="UTC", days=[day], start="09:00", end="17:00")
    steps = policy({"do": "remind", "after": "50m", "every": "50m"}, {"do": "page", "after": "10m"})
    low = make_event("alice", urgency=Urgency.LOW, escalation=steps, business_hours=hours)
    high = make_event("alice", urgency=Urgency.HIGH, escalation=steps, business_hours=hours)
    opening = hours.opening(now + timedelta(minutes=10))
    assert opening - now > timedelta(days=1)
    fakes = FakeActivities(owner())
    async with running(env, fakes) as task_queue:
        low_handle, high_handle = [await ask(env, e, task_queue) for e in (low, high)]
        await env.sleep(timedelta(minutes=11))
        assert [t.dedup_key.split("/")[1] for t in fakes.triggers] == [high.event_id]
        await env.sleep(opening - now - timedelta(minutes=12))
        assert len(fakes.triggers) == 1  # still closed
        await env.sleep(timedelta(minutes=5))
        for handle in (low_handle, high_handle):
            await decide_as(handle, Action.APPROVE, "U0ALICE")
        low_record, high_record = await low_handle.result(), await high_handle.result()

    [page] = low_record.pages
    assert abs(page.at - opening) < TICK
    assert "deferred to business hours" in page.why
    assert fakes.triggers[1].custom_details["deferred to business hours"] is True
    [high_page] = high_record.pages
    assert abs(high_page.at - high_record.asked_at - timedelta(minutes=10)) < TICK  # type: ignore[operator]
    # Closed hours did not keep the low-urgency event from being reminded in the channel.
    reminded = [t.at for t in low_record.taken if t.step == 0]
    assert len([at for at in reminded if at < opening]) >= (opening - now) // timedelta(minutes=50)


def _next_dst_change(zone_name: str, after: datetime) -> datetime:
    """The first local midnight (aware) of the day on which `zone_name` changes its offset."""
    tz = zone(zone_name)
    day = after.astimezone(tz).date()
    while True:
        day += timedelta(days=1)
        start = datetime.combine(day, time(0), tz)
        if start.utcoffset() != (start + timedelta(days=1)).astimezone(tz).utcoffset():
            return start


async def test_a_low_urgency_page_waits_over_a_weekend_and_a_dst_change_a_high_one_does_not(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The page falls due on the Saturday evening before Berlin changes its clocks (the change
    is always on a Sunday): a low-urgency event is paged on Monday at 09:00 by the new clock,
    a high-urgency one on Saturday evening. Months of time skipped: no reminders in the policy."""
    env = time_skipping_env
    now = await env.get_current_time()
    change_day = _next_dst_change("Europe/Berlin", now + timedelta(days=2))
    assert WEEKDAYS[change_day.weekday()] == "sun"
    tz = change_day.tzinfo
    saturday_evening = datetime.combine(change_day.date() - timedelta(days=1), time(20), tz)
    monday_nine = datetime.combine(change_day.date() + timedelta(days=1), time(9), tz)
    hours = BusinessHours(timezone="Europe/Berlin", days="mon-fri", start="09:00", end="17:00")
    steps = policy({"do": "page", "after": f"{int((saturday_evening - now).total_seconds())}s"})
    low = make_event("alice", urgency=Urgency.LOW, escalation=steps, business_hours=hours)
    high = make_event("alice", urgency=Urgency.HIGH, escalation=steps, business_hours=hours)
    fakes = FakeActivities(owner())
    async with running(env, fakes) as task_queue:
        low_handle, high_handle = [await ask(env, e, task_queue) for e in (low, high)]
        await env.sleep(monday_nine - now - timedelta(minutes=1))
        assert [t.dedup_key.split("/")[1] for t in fakes.triggers] == [high.event_id]
        await env.sleep(timedelta(minutes=2))
        assert len(fakes.triggers) == 2
        for handle in (low_handle, high_handle):
            await decide_as(handle, Action.APPROVE, "U0ALICE")
        low_record, high_record = await low_handle.result(), await high_handle.result()

    # Monday 09:00 in Berlin after the change: 07:00 UTC in summer time, 08:00 in winter time.
    [page] = low_record.pages
    assert abs(page.at - monday_nine) < TICK
    assert saturday_evening.utcoffset() != monday_nine.utcoffset()  # the clocks changed between
    assert abs(high_record.pages[0].at - saturday_evening) < timedelta(seconds=2)


async def test_a_continued_run_keeps_its_schedule_and_resolves_the_pages_it_carried(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """What continue-as-new hands over: the steps taken and the open page. The next run pages
    no second time, and approving resolves the page the first run sent."""
    env = time_skipping_env
    event = make_event("alice", escalation=REMINDERS.with_one_page(timedelta(hours=1)))
    began = datetime.now(UTC) - timedelta(hours=2)
    key = f"powertrip/{event.event_id}/step1-0"
    carried = EventRecord(
        event=event,
        recipient=owner(),
        messages=[PostedMessage(kind=MessageKind.FIRST, channel="DU0ALICE", ts="1.000")],
        timeline=[TimelineEntry(what=TimelineKind.RECEIVED, at=began)],
        asked_at=began,
        taken=[
            TakenStep(step=1, at=began + timedelta(hours=1)),
            TakenStep(step=0, at=began + timedelta(hours=1, minutes=50)),
        ],
        pages=[
            Page(
                dedup_key=key,
                name="step1-0",
                severity=Severity.WARNING,
                why="Not decided after 1h",
                at=began + timedelta(hours=1),
                status=PageStatus.OPEN,
            )
        ],
    )
    fakes = FakeActivities(owner())
    async with running(env, fakes) as task_queue:
        handle = await env.client.start_workflow(
            ApprovalWorkflow.run,
            ApprovalInput(event=event, carried=carried),
            id=event.event_id,
            task_queue=task_queue,
        )
        await env.sleep(timedelta(hours=3))
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
    assert fakes.triggers == []
    assert fakes.pages == [(PageAction.RESOLVE, key)]
    # The reminders keep their cadence from the last one taken before the hand-over.
    reminded = [t.at for t in record.taken if t.step == 0]
    gaps = [b - a for a, b in itertools.pairwise(reminded)]
    assert len(gaps) == 12 and all(abs(gap - timedelta(minutes=15)) < TICK for gap in gaps)


async def test_a_flood_continues_as_new_mid_escalation_without_losing_a_step_or_a_page(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Forged `decide` signals make the run continue as new (`signals_per_run`) before the page
    falls due and again once it is open: the next runs remind every 15 minutes and page once,
    at the hour, counted from when the owner was asked; a flood while PagerDuty is still
    failing waits for the trigger (its answer belongs to the run that sent it); approving in
    the last run resolves the page the run before sent."""
    env, fakes = time_skipping_env, FakeActivities(owner(), pagerduty_down=10**6)
    event = make_event("alice", escalation=REMINDERS.with_one_page(timedelta(hours=1)))
    key = f"powertrip/{event.event_id}/step1-0"

    async def flood(handle: Handle) -> None:
        for _ in range(5):
            forged = Click(action=Action.APPROVE, user="U0MALLORY", at=datetime.now(UTC))
            await handle.signal(DECIDE_SIGNAL, forged)

    async with running(env, fakes) as task_queue:
        handle = await env.client.start_workflow(
            ApprovalWorkflow.run,
            ApprovalInput(event=event, signals_per_run=5),
            id=event.event_id,
            task_queue=task_queue,
        )
        runs = [(await handle.describe()).run_id]

        async def continued() -> str | None:
            run_id = (await handle.describe()).run_id
            return run_id if run_id not in runs else None

        await env.sleep(timedelta(minutes=20))
        await flood(handle)
        runs.append(await eventually(continued))

        await env.sleep(timedelta(minutes=45))  # the page fell due; PagerDuty fails
        sending = await state(handle)
        assert [p.status for p in sending.pages] == [PageStatus.SENDING]
        await flood(handle)
        await state_eventually(handle, lambda r: whats(r).count(TimelineKind.REJECTED) == 10)
        assert (await handle.describe()).run_id == runs[-1]  # the trigger is still in flight

        fakes.pagerduty_down = 0
        await env.sleep(timedelta(minutes=20))  # the trigger lands; the next reminder hands over
        runs.append(await eventually(continued))
        assert [p.status for p in (await state(handle)).pages] == [PageStatus.OPEN]

        await env.sleep(timedelta(minutes=30))
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()

    assert len(runs) == 3
    assert [t.dedup_key for t in fakes.triggers] == [key]
    assert fakes.pages == [(PageAction.TRIGGER, key), (PageAction.RESOLVE, key)]
    [page] = record.pages
    assert page.status is PageStatus.RESOLVED and record.asked_at is not None
    assert abs(page.at - record.asked_at - timedelta(hours=1)) < TICK
    reminded = [t.at for t in record.taken if t.step == 0]
    assert abs(reminded[0] - record.asked_at - timedelta(minutes=15)) < TICK
    gaps = [b - a for a, b in itertools.pairwise(reminded)]
    assert len(gaps) >= 6 and all(abs(gap - timedelta(minutes=15)) < TICK for gap in gaps), gaps
    assert record.status is EventStatus.APPROVED
    assert whats(record)[-2:] == [TimelineKind.APPROVED, TimelineKind.PAGE_RESOLVED]


async def test_a_fixed_loop_run_continued_into_the_policy_keeps_its_reminder_due(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A run of the fixed reminder loop (started before escalation-schedule) that continued as
    new hands over `next_reminder_at` and no `asked_at`: the next run's policy reminds when that
    reminder was due, not `renotify_after` after the hand-over, so flooding such a run every few
    minutes cannot put its reminders off."""
    env, fakes = time_skipping_env, FakeActivities(owner())
    event = make_event("alice")  # renotify_after: 15m
    began = datetime.now(UTC) - timedelta(minutes=10)
    carried = EventRecord(
        event=event,
        recipient=owner(),
        messages=[PostedMessage(kind=MessageKind.FIRST, channel="DU0ALICE", ts="1.000")],
        timeline=[TimelineEntry(what=TimelineKind.RECEIVED, at=began)],
    )
    due = began + timedelta(minutes=15)
    async with running(env, fakes) as task_queue:
        handle = await env.client.start_workflow(
            ApprovalWorkflow.run,
            ApprovalInput(event=event, carried=carried, next_reminder_at=due),
            id=event.event_id,
            task_queue=task_queue,
        )
        await env.sleep(timedelta(minutes=36))
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
    reminded = [t.at for t in record.taken if t.step == 0]
    assert record.asked_at is not None and abs(record.asked_at - began) < TICK
    assert len(reminded) >= 2 and abs(reminded[0] - due) < timedelta(minutes=1), reminded


async def _handed_off(
    env: WorkflowEnvironment, fakes: FakeActivities, task_queue: str
) -> tuple[Handle, HandOff, Callable[[], Awaitable[bool]]]:
    """An approval (continuing as new after 5 signals) past its first reminder, handed to the
    digest: its handle, the hand-off, and a check that the run has continued as new since."""
    event = make_event("alice")
    handle = await env.client.start_workflow(
        ApprovalWorkflow.run,
        ApprovalInput(event=event, signals_per_run=5),
        id=event.event_id,
        task_queue=task_queue,
    )
    first_run = (await handle.describe()).run_id
    await env.sleep(timedelta(minutes=16))
    [handed] = await eventually(lambda: fakes.handed_off or None)

    async def continued() -> bool:
        return (await handle.describe()).run_id != first_run

    return handle, handed, continued


async def _forge(handle: Handle, count: int) -> None:
    for _ in range(count):
        forged = Click(action=Action.APPROVE, user="U0MALLORY", at=datetime.now(UTC))
        await handle.signal(DECIDE_SIGNAL, forged)


async def test_a_reminder_the_digest_did_not_take_is_posted_even_by_the_next_run(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A reminder handed to the digest (patch `reminders-handed-off`) costs no post of its own;
    when the digest answers that it did not take it, the event posts it, also when the run
    continued as new in between (a flood of forged signals). The same answer again, or one for
    another cycle, posts nothing more."""
    env, fakes = time_skipping_env, FakeActivities(owner(), digest_running=True)
    async with running(env, fakes) as task_queue:
        handle, handed, continued = await _handed_off(env, fakes, task_queue)
        await _forge(handle, 5)
        await eventually(continued)
        assert fakes.asked(MessageKind.REMINDER) == []
        not_taken = ReminderSlot(cycle=handed.reminder.cycle, in_digest=False)
        await handle.signal(SLOT_SIGNAL, ReminderSlot(cycle="another", in_digest=False))
        await handle.signal(SLOT_SIGNAL, not_taken)
        await eventually(lambda: fakes.asked(MessageKind.REMINDER) == [None])
        await handle.signal(SLOT_SIGNAL, not_taken)
        await decide_as(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
    assert fakes.asked(MessageKind.REMINDER) == [None]
    handed_note, posted_note = [
        e.detail or "" for e in record.timeline if e.what is TimelineKind.REMINDED
    ]
    assert handed_note == f"{HANDED_OFF}, waited 900s"
    assert posted_note.endswith(", not taken into a digest")
    # The digest gathers from when the reminder was scheduled, not from when its task ran.
    assert record.asked_at is not None
    due_at = datetime.fromisoformat(handed.reminder.due_at)
    assert due_at == record.asked_at + timedelta(minutes=15)


async def test_a_decision_supersedes_the_reminder_handed_off_before_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The team approves on the owner's behalf after the reminder was handed to the digest; the
    digest's late "not taken" answer then posts nothing, and does not keep the run (open for
    the owner's *Not me*) from continuing as new before Temporal's signal limit."""
    env, fakes = time_skipping_env, FakeActivities(owner(), digest_running=True)
    async with running(env, fakes) as task_queue:
        handle, handed, continued = await _handed_off(env, fakes, task_queue)
        await decide_as(handle, Action.APPROVE, "U0SEC1")
        await state_eventually(handle, lambda r: r.contest_until is not None)
        await handle.signal(SLOT_SIGNAL, ReminderSlot(cycle=handed.reminder.cycle))
        await _forge(handle, 3)
        await eventually(continued)
        await handle.terminate("test over")
    assert fakes.asked(MessageKind.REMINDER) == []
