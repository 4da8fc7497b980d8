"""The escalation schedule as a pure function: no Temporal, no clock. Business hours across
weekends and DST changes in both directions, repeats and their limits, a page given once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from powertrip.business_hours import BusinessHours, zone
from powertrip.escalation import (
    DueStep,
    EscalationPolicy,
    EscalationStep,
    Severity,
    StepKind,
    TakenStep,
    Urgency,
    next_step,
)

BERLIN = BusinessHours(timezone="Europe/Berlin", days=["mon-fri"], start="09:00", end="17:00")
NEW_YORK = BusinessHours(timezone="America/New_York", start="09:00", end="17:00")

POLICY = EscalationPolicy.model_validate(
    [
        {"do": "remind", "after": "15m", "every": "15m"},
        {"do": "page", "after": "1h", "every": "4h", "repeat": 2, "severity": "warning"},
    ]
)
PAGE = 1


def berlin(*args: int) -> datetime:
    """A Berlin wall-clock time (fold=0: the first of a repeated hour)."""
    return datetime(*args, tzinfo=zone("Europe/Berlin"))  # type: ignore[arg-type,misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


def next_page(
    started: datetime,
    urgency: Urgency,
    hours: BusinessHours | None = BERLIN,
    taken: list[TakenStep] | None = None,
    policy: EscalationPolicy = POLICY,
) -> DueStep | None:
    """The next page, whatever reminders come before it."""
    pages = [i for i, s in enumerate(policy.steps) if s.do is StepKind.PAGE]
    only_pages = EscalationPolicy(steps=[policy.steps[i] for i in pages])
    renumbered = [
        TakenStep(step=pages.index(t.step), at=t.at) for t in taken or [] if t.step in pages
    ]
    due = next_step(only_pages, started, urgency, hours, renumbered)
    return due if due is None else due.model_copy(update={"step": pages[due.step]})


def run(
    policy: EscalationPolicy,
    started: datetime,
    urgency: Urgency,
    hours: BusinessHours | None,
    until: datetime,
) -> list[DueStep]:
    """Take every step when due, as a workflow would, until `until`."""
    taken: list[TakenStep] = []
    done: list[DueStep] = []
    while (due := next_step(policy, started, urgency, hours, taken)) and due.due <= until:
        done.append(due)
        taken.append(TakenStep(step=due.step, at=due.due))
    return done


# --- today's renotify_after -------------------------------------------------------------------


def test_renotify_after_is_a_reminder_every_so_long_forever() -> None:
    policy = EscalationPolicy.from_renotify(timedelta(minutes=15))
    started = utc(2026, 12, 5, 3, 0)
    steps = run(policy, started, Urgency.HIGH, BERLIN, started + timedelta(days=3))
    assert len(steps) == 3 * 24 * 4
    assert {s.do for s in steps} == {StepKind.REMIND}
    assert [s.due - started for s in steps[:3]] == [timedelta(minutes=m) for m in (15, 30, 45)]
    assert steps[-1].occurrences is None  # without end


# --- urgency and business hours ---------------------------------------------------------------


def test_high_urgency_pages_at_3am_on_a_saturday() -> None:
    started = berlin(2026, 12, 5, 3, 0)  # Saturday
    page = next_page(started, Urgency.HIGH)
    assert page is not None
    assert page.due == started + timedelta(hours=1) and not page.deferred
    assert page.severity is Severity.WARNING


def test_low_urgency_at_3am_on_a_saturday_is_reminded_but_pages_on_monday_morning() -> None:
    started = berlin(2026, 12, 5, 3, 0)
    first = next_step(POLICY, started, Urgency.LOW, BERLIN, [])
    assert first is not None and first.do is StepKind.REMIND
    assert first.due == started + timedelta(minutes=15)  # still listed in the channel
    page = next_page(started, Urgency.LOW)
    assert page is not None and page.deferred
    assert page.planned == started + timedelta(hours=1)
    assert page.due == berlin(2026, 12, 7, 9, 0) == utc(2026, 12, 7, 8, 0)  # Monday, CET


def test_low_urgency_within_business_hours_pages_on_time() -> None:
    started = berlin(2026, 12, 8, 10, 0)  # Tuesday
    page = next_page(started, Urgency.LOW)
    assert page is not None and page.due == berlin(2026, 12, 8, 11, 0) and not page.deferred


def test_low_urgency_page_planned_after_friday_close_waits_for_monday() -> None:
    assert next_page(berlin(2026, 12, 4, 15, 30), Urgency.LOW).due == berlin(2026, 12, 4, 16, 30)  # type: ignore[union-attr]
    late = next_page(berlin(2026, 12, 4, 16, 30), Urgency.LOW)
    assert late is not None and late.due == berlin(2026, 12, 7, 9, 0)


def test_without_business_hours_low_urgency_pages_at_any_hour() -> None:
    started = berlin(2026, 12, 5, 3, 0)
    page = next_page(started, Urgency.LOW, hours=None)
    assert page is not None and page.due == started + timedelta(hours=1)


def test_a_business_period_that_starts_while_the_page_timer_is_pending() -> None:
    # Monday 07:30: the page is planned for 08:30, before the office opens at 09:00.
    started = berlin(2026, 12, 7, 7, 30)
    steps = run(POLICY, started, Urgency.LOW, BERLIN, berlin(2026, 12, 7, 9, 0))
    pages = [s for s in steps if s.do is StepKind.PAGE]
    assert [p.due for p in pages] == [berlin(2026, 12, 7, 9, 0)]
    # The reminders went on meanwhile, and the 09:00 reminder is taken too (policy order).
    reminders = [s.due for s in steps if s.do is StepKind.REMIND]
    assert reminders[0] == berlin(2026, 12, 7, 7, 45) and reminders[-1] == berlin(2026, 12, 7, 9)
    # Monday 08:50: planned for 09:50, by which time the office is open; not moved to 09:00.
    later = next_page(berlin(2026, 12, 7, 8, 50), Urgency.LOW)
    assert later is not None and later.due == berlin(2026, 12, 7, 9, 50) and not later.deferred


# --- DST --------------------------------------------------------------------------------------


def test_spring_forward_weekend_moves_monday_opening_an_hour_earlier_in_utc() -> None:
    # Saturday 28 March 2026, 22:00 CET; Berlin's clocks jump 02:00 -> 03:00 on Sunday.
    page = next_page(berlin(2026, 3, 28, 22, 0), Urgency.LOW)
    assert page is not None
    assert page.due == berlin(2026, 3, 30, 9, 0) == utc(2026, 3, 30, 7, 0)  # CEST
    # The Monday before, 09:00 was 08:00 UTC.
    before = next_page(berlin(2026, 3, 21, 22, 0), Urgency.LOW)
    assert before is not None and before.due == utc(2026, 3, 23, 8, 0)


def test_page_after_is_elapsed_time_across_the_spring_forward_gap() -> None:
    started = utc(2026, 3, 29, 0, 30)  # 01:30 CET
    page = next_page(started, Urgency.HIGH)
    assert page is not None and page.due == utc(2026, 3, 29, 1, 30)
    local = page.due.astimezone(zone("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 30)  # one real hour; the wall clock moved two


def test_fall_back_weekend_moves_monday_opening_an_hour_later_in_utc() -> None:
    page = next_page(berlin(2026, 10, 23, 16, 30), Urgency.LOW)  # Friday, CEST
    assert page is not None and page.due == berlin(2026, 10, 26, 9, 0) == utc(2026, 10, 26, 8, 0)


def test_page_after_is_elapsed_time_across_the_repeated_hour() -> None:
    started = utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first time the clock shows it
    page = next_page(started, Urgency.HIGH)
    assert page is not None and page.due == utc(2026, 10, 25, 1, 30)
    local = page.due.astimezone(zone("Europe/Berlin"))
    assert (local.hour, local.minute) == (2, 30)  # 02:30 CET: the same wall time, an hour on


def test_new_york_spring_forward_weekend() -> None:
    started = datetime(2026, 3, 6, 18, 0, tzinfo=zone("America/New_York"))  # Friday, EST
    page = next_page(started, Urgency.LOW, hours=NEW_YORK)
    assert page is not None and page.due == utc(2026, 3, 9, 13, 0)  # Monday 09:00 EDT


def test_business_hours_starting_in_a_dst_gap_start_when_the_clocks_jump() -> None:
    night = BusinessHours(timezone="Europe/Berlin", days=["sun"], start="02:30", end="05:00")
    # 29 March 2026: 02:30 never happens in Berlin; at 01:00 UTC the clocks jump to 03:00.
    assert night.opening(utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 0)
    assert not night.contains(utc(2026, 3, 29, 0, 59, 59))
    assert night.contains(utc(2026, 3, 29, 1, 0))
    # 25 October 2026: 02:30 happens twice; the period starts at the first.
    assert night.opening(utc(2026, 10, 24, 23, 0)) == utc(2026, 10, 25, 0, 30)
    # ...and lasts until 05:00 CET: three and a half hours, plus the repeated hour.
    assert night.contains(utc(2026, 10, 25, 3, 59)) and not night.contains(utc(2026, 10, 25, 4))


@pytest.mark.parametrize(
    ("hours", "start"),
    [
        (BERLIN, utc(2026, 3, 20)),  # spring forward
        (BERLIN, utc(2026, 10, 16)),  # fall back
        (NEW_YORK, utc(2026, 3, 1)),
        (NEW_YORK, utc(2026, 10, 28)),  # fall back (1 November)
        (
            BusinessHours(timezone="Asia/Kolkata", days=["sun-thu"], start="10:30", end="19:00"),
            utc(2026, 6, 1),
        ),
    ],
)
def test_opening_is_the_first_business_minute_after_any_time(
    hours: BusinessHours, start: datetime
) -> None:
    """Against an oracle that reads the local wall clock minute by minute, for two weeks."""
    tz = zone(hours.timezone)

    def open_at(at: datetime) -> bool:
        local = at.astimezone(tz)
        return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[
            local.weekday()
        ] in hours.days and hours.start <= local.time() < hours.end

    minutes = [start + timedelta(minutes=m) for m in range(0, 14 * 24 * 60 + 1)]
    is_open = [open_at(m) for m in minutes]
    next_open: list[datetime | None] = [None] * len(minutes)
    upcoming = None
    for i in range(len(minutes) - 1, -1, -1):
        if is_open[i]:
            upcoming = minutes[i]
        next_open[i] = upcoming
    for i in range(0, len(minutes) - 7 * 24 * 60, 17):  # every 17 minutes over the first week
        assert hours.contains(minutes[i]) is is_open[i], minutes[i]
        assert hours.opening(minutes[i]) == next_open[i], minutes[i]


# --- repeats, limits, once ---------------------------------------------------------------------


def test_pages_repeat_every_so_long_after_the_last_and_stop_at_the_limit() -> None:
    started = utc(2026, 12, 5, 3, 0)
    steps = run(POLICY, started, Urgency.HIGH, None, started + timedelta(days=2))
    pages = [s for s in steps if s.do is StepKind.PAGE]
    assert [p.due - started for p in pages] == [timedelta(hours=h) for h in (1, 5, 9)]
    assert [p.describe() for p in pages] == ["page 1 of 3", "page 2 of 3", "page 3 of 3"]
    # The reminders never stop.
    assert steps[-1].do is StepKind.REMIND and steps[-1].due > started + timedelta(hours=47)


def test_a_repeat_counts_from_when_the_last_page_was_taken_not_when_it_was_due() -> None:
    started = utc(2026, 12, 5, 3, 0)
    # The worker was down: the first page, due 04:00, was taken at 07:00.
    late = [TakenStep(step=PAGE, at=utc(2026, 12, 5, 7, 0))]
    page = next_page(started, Urgency.HIGH, taken=late)
    assert page is not None and page.occurrence == 1 and page.due == utc(2026, 12, 5, 11, 0)


def test_after_an_outage_one_overdue_step_is_taken_at_once_then_the_cadence_resumes() -> None:
    started = utc(2026, 12, 5, 3, 0)
    now = started + timedelta(days=1)  # nothing ran for a day
    due = next_step(POLICY, started, Urgency.HIGH, None, [])
    assert due is not None and due.do is StepKind.REMIND and due.due < now  # take it now
    taken = [TakenStep(step=due.step, at=now)]
    page = next_step(POLICY, started, Urgency.HIGH, None, taken)
    assert page is not None and page.do is StepKind.PAGE and page.due < now  # also overdue
    taken.append(TakenStep(step=page.step, at=now))
    after = next_step(POLICY, started, Urgency.HIGH, None, taken)
    assert after is not None and after.due == now + timedelta(minutes=15)  # no burst


def test_low_urgency_repeats_wait_for_business_hours_too() -> None:
    started = berlin(2026, 12, 4, 14, 0)  # Friday
    pages = [
        s
        for s in run(POLICY, started, Urgency.LOW, BERLIN, berlin(2026, 12, 8, 0, 0))
        if s.do is StepKind.PAGE
    ]
    assert [p.due for p in pages] == [
        berlin(2026, 12, 4, 15, 0),  # page_after 1h, in hours
        berlin(2026, 12, 7, 9, 0),  # 19:00 Friday -> Monday's opening
        berlin(2026, 12, 7, 13, 0),  # 4 h after the page actually taken
    ]
    assert [p.deferred for p in pages] == [False, True, False]


def test_page_after_pages_once_even_after_a_weekend_deferral() -> None:
    policy = EscalationPolicy.from_renotify(timedelta(minutes=15)).with_one_page(timedelta(hours=1))
    started = berlin(2026, 12, 5, 3, 0)
    steps = run(policy, started, Urgency.LOW, BERLIN, started + timedelta(days=7))
    pages = [s for s in steps if s.do is StepKind.PAGE]
    assert [p.due for p in pages] == [berlin(2026, 12, 7, 9, 0)]
    assert pages[0].describe() == "page 1 of 1"
    taken = [TakenStep(step=1, at=pages[0].due)]
    assert next_page(started, Urgency.LOW, taken=taken, policy=policy) is None


def test_equal_due_times_go_in_policy_order() -> None:
    policy = EscalationPolicy(
        steps=[
            EscalationStep(do=StepKind.PAGE, after=timedelta(hours=1)),
            EscalationStep(do=StepKind.REMIND, after=timedelta(hours=1)),
        ]
    )
    due = next_step(policy, utc(2026, 1, 1), Urgency.HIGH, None, [])
    assert due is not None and due.step == 0


def test_nothing_left_and_unknown_steps() -> None:
    started = utc(2026, 12, 5, 3, 0)
    assert next_step(EscalationPolicy(), started, Urgency.HIGH, BERLIN, []) is None
    once = EscalationPolicy(steps=[EscalationStep(do=StepKind.REMIND, after=timedelta(0))])
    first = next_step(once, started, Urgency.HIGH, None, [TakenStep(step=7, at=started)])
    assert first is not None and first.due == started  # `after: 0`: at once
    assert next_step(once, started, Urgency.HIGH, None, [TakenStep(step=0, at=started)]) is None


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="without a zone"):
        next_step(POLICY, datetime(2026, 12, 5, 3, 0), Urgency.HIGH, BERLIN, [])
    with pytest.raises(ValueError, match="without a zone"):
        BERLIN.opening(datetime(2026, 12, 5, 3, 0))


def test_the_clock_parser_takes_what_yaml_makes_of_unquoted_times() -> None:
    import yaml

    data = yaml.safe_load("timezone: Europe/Berlin\ndays: mon-fri\nstart: 9:00\nend: 17:30\n")
    assert data["start"] == 540  # YAML 1.1 reads 9:00 as base 60
    hours = BusinessHours.model_validate(data)
    assert (hours.start, hours.end) == (time(9), time(17, 30))
    assert hours.describe() == "mon-fri 09:00-17:30 Europe/Berlin"
    assert BusinessHours(timezone="UTC", days=["fri-mon"]).days == ["mon", "fri", "sat", "sun"]


@pytest.mark.parametrize(
    ("urgency", "pages"),
    [
        (Urgency.HIGH, [(5, 4, 0), (5, 8, 0), (5, 12, 0)]),
        (Urgency.LOW, [(7, 9, 0), (7, 13, 0), (8, 9, 0)]),
    ],
)
def test_what_happens_at_3am_as_the_readme_says(
    urgency: Urgency, pages: list[tuple[int, int, int]]
) -> None:
    """README, "Paging and escalation": the policy shown there, an event at 03:00 on Saturday."""
    started = berlin(2026, 12, 5, 3, 0)
    steps = run(POLICY, started, urgency, BERLIN, started + timedelta(days=7))
    assert [s.due for s in steps if s.do is StepKind.PAGE] == [
        berlin(2026, 12, day, hour, minute) for day, hour, minute in pages
    ]
    reminders = [s.due for s in steps if s.do is StepKind.REMIND]
    assert reminders[:2] == [berlin(2026, 12, 5, 3, 15), berlin(2026, 12, 5, 3, 30)]
