"""Paging on the time-skipping server, through the real `pagerduty` client over https to the fake
Events API v2: pages after `page_after` once, repeats and their limit, business-hours deferral,
Not me and acknowledge, approve and resolve, and PagerDuty's failures (429 with Retry-After,
5xx, a lost answer, a bad routing key, an untrusted certificate, no answer at all)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.pagerduty import PagerDutyActivities, paging_unset_warning
from powertrip.binaries import temporal_test_server
from powertrip.business_hours import WEEKDAYS, BusinessHours, zone
from powertrip.contracts.paging import (
    MAX_DEDUP_KEY,
    PAGERDUTY_PERMANENT,
    PageAction,
    dedup_key,
    event_trigger,
    group_trigger,
    not_me_trigger,
)
from powertrip.escalation import EscalationPolicy, Severity, Urgency
from powertrip.models import SecurityEvent
from powertrip.sandbox.fake_pagerduty import InjectedFailure
from powertrip.settings import Settings, SettingsError, load_settings
from tests.harness import eventually, make_event
from tests.paging_workflow import (
    Entry,
    EscalationLoopWorkflow,
    NextStepWorkflow,
    PageOnceWorkflow,
    ScheduleQuestion,
)
from tests.servers import PAGERDUTY_ROUTING_KEY, PagerDutyAt, free_port


@asynccontextmanager
async def paging_worker(
    env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
    *,
    routing_key: str | None = PAGERDUTY_ROUTING_KEY,
    request_timeout: float = 10.0,
) -> AsyncIterator[str]:
    task_queue = f"paging-{uuid.uuid4().hex[:8]}"
    paging = PagerDutyActivities(
        routing_key, pagerduty.url, pagerduty.ca_file, request_timeout=request_timeout
    )
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[PageOnceWorkflow, EscalationLoopWorkflow, NextStepWorkflow],
        activities=[paging.trigger_page, paging.acknowledge_page, paging.resolve_page],
    ):
        yield task_queue


def policy(*steps: dict[str, Any]) -> EscalationPolicy:
    return EscalationPolicy.model_validate(list(steps))


async def start_loop(
    env: WorkflowEnvironment, task_queue: str, event: SecurityEvent
) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow(
        EscalationLoopWorkflow.run, event, id=event.event_id, task_queue=task_queue
    )


def whats(entries: list[Entry]) -> list[str]:
    return [e.what for e in entries]


async def test_an_undecided_event_pages_once_after_page_after_and_approval_resolves_it(
    time_skipping_env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
) -> None:
    event = make_event(
        "alice",
        escalation=EscalationPolicy.from_renotify(timedelta(minutes=15))
        .with_one_page(timedelta(hours=1))
        .with_severity(Severity.WARNING),
    )
    env = time_skipping_env
    async with paging_worker(env, pagerduty) as task_queue:
        handle = await start_loop(env, task_queue, event)
        began = await env.get_current_time()
        await env.sleep(timedelta(minutes=59))
        assert pagerduty.fake.incidents == []
        await env.sleep(timedelta(hours=6))
        [incident] = await eventually(lambda: pagerduty.fake.incidents)
        await handle.signal(EscalationLoopWorkflow.decide, "approve")
        entries: list[Entry] = await handle.result()

    assert incident.dedup_key == f"powertrip/{event.event_id}/step1-0"
    assert incident.severity == "warning" and incident.status == "resolved"
    assert incident.summary.startswith("Powertrip: Not decided after 1h: alice: ssh login")
    assert incident.custom_details["event id"] == event.event_id
    assert incident.custom_details["host"] == "bastion"
    assert [e.action for e in incident.log] == ["trigger", "resolve"]
    # The timeline: reminders every 15 minutes, one page with PagerDuty's answer, the resolve.
    [paged] = [e for e in entries if e.what == "paged"]
    # An hour after the workflow began (workflow time, to within its first task's start).
    assert abs(paged.at - began - timedelta(hours=1)) < timedelta(seconds=1)
    assert paged.detail == (
        f"trigger powertrip/{event.event_id}/step1-0: success (Event processed)"
    )
    assert paged.result is not None and paged.result.http_status == 202
    assert whats(entries).count("reminded") >= 4 * 6
    assert entries[-1].what == "page_resolved"
    assert entries[-1].detail.endswith("step1-0: success (Event processed)")
    assert len(pagerduty.fake.received) == 2


async def test_pages_repeat_up_to_their_limit_and_approval_resolves_every_one(
    time_skipping_env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
) -> None:
    event = make_event(
        "alice",
        escalation=policy({"do": "page", "after": "5m", "every": "1h", "repeat": 2}).with_severity(
            Severity.ERROR
        ),
    )
    env = time_skipping_env
    async with paging_worker(env, pagerduty) as task_queue:
        handle = await start_loop(env, task_queue, event)
        await env.sleep(timedelta(hours=12))
        await eventually(lambda: len(pagerduty.fake.incidents) == 3)
        await env.sleep(timedelta(days=2))
        await handle.signal(EscalationLoopWorkflow.decide, "approve")
        entries: list[Entry] = await handle.result()

    keys = [f"powertrip/{event.event_id}/step0-{n}" for n in range(3)]
    assert [i.dedup_key for i in pagerduty.fake.incidents] == keys
    assert {i.status for i in pagerduty.fake.incidents} == {"resolved"}
    assert {i.severity for i in pagerduty.fake.incidents} == {"error"}
    assert "(page 3 of 3)" in pagerduty.fake.incidents[2].summary
    paged = [e.at for e in entries if e.what == "paged"]
    gaps = [b - a for a, b in itertools.pairwise(paged)]
    assert len(gaps) == 2
    assert all(abs(gap - timedelta(hours=1)) < timedelta(seconds=1) for gap in gaps), gaps
    assert whats(entries).count("page_resolved") == 3


async def test_not_me_pages_critical_at_once_and_acknowledge_acknowledges_it(
    time_skipping_env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
) -> None:
    event = make_event("alice", escalation=EscalationPolicy.from_renotify(timedelta(minutes=15)))
    env = time_skipping_env
    async with paging_worker(env, pagerduty) as task_queue:
        handle = await start_loop(env, task_queue, event)
        await handle.signal(EscalationLoopWorkflow.decide, "not_me")
        [incident] = await eventually(lambda: pagerduty.fake.incidents)
        assert incident.status == "triggered"
        await handle.signal(EscalationLoopWorkflow.acknowledge)
        entries: list[Entry] = await handle.result()

    assert incident.dedup_key == f"powertrip/{event.event_id}/not-me"
    assert incident.severity == "critical" and incident.status == "acknowledged"
    assert incident.summary.startswith("Powertrip: Not me: alice: ssh login")
    assert incident.custom_details["reported by"] == "U0ALICE"
    assert whats(entries)[-2:] == ["paged", "page_acknowledged"]


async def test_a_low_urgency_page_waits_for_the_next_business_period_a_high_one_does_not(
    time_skipping_env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
) -> None:
    env = time_skipping_env
    now = await env.get_current_time()
    # The only business day is the day after tomorrow (UTC): tonight and tomorrow are "closed".
    day = WEEKDAYS[(now + timedelta(days=2)).weekday()]
    hours = BusinessHours(timezone="UTC", days=[day], start="09:00", end="17:00")
    pages = policy({"do": "page", "after": "10m"}).with_severity(Severity.WARNING)
    low = make_event("bob", urgency=Urgency.LOW, escalation=pages, business_hours=hours)
    high = make_event("carol", urgency=Urgency.HIGH, escalation=pages, business_hours=hours)
    opening = hours.opening(now + timedelta(minutes=10))
    assert opening - now > timedelta(days=1)
    async with paging_worker(env, pagerduty) as task_queue:
        low_handle = await start_loop(env, task_queue, low)
        high_handle = await start_loop(env, task_queue, high)
        await env.sleep(timedelta(minutes=11))
        [first] = await eventually(lambda: pagerduty.fake.incidents)
        assert first.dedup_key.startswith(f"powertrip/{high.event_id}/")
        await env.sleep(opening - now - timedelta(minutes=30))
        assert len(pagerduty.fake.incidents) == 1  # still closed
        await env.sleep(timedelta(hours=1))
        await eventually(lambda: len(pagerduty.fake.incidents) == 2)
        for handle in (low_handle, high_handle):
            await handle.signal(EscalationLoopWorkflow.decide, "approve")
        low_entries: list[Entry] = await low_handle.result()

    [paged] = [e for e in low_entries if e.what == "paged"]
    assert opening <= paged.at < opening + timedelta(minutes=1)
    assert pagerduty.fake.incidents[1].custom_details["deferred to business hours"] is True


@pytest.fixture
async def metered_env() -> AsyncIterator[tuple[WorkflowEnvironment, MetricBuffer]]:
    """A time-skipping server whose client (and so its worker) records metrics in a buffer."""
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(),
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    async with env:
        yield env, buffer


def page_counts(buffer: MetricBuffer) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for update in buffer.retrieve_updates():
        if update.metric.name == "powertrip_pagerduty_events":
            key = (str(update.attributes["action"]), str(update.attributes["outcome"]))
            counts[key] = counts.get(key, 0) + int(update.value)
    return counts


async def test_rate_limited_then_down_then_back_pages_exactly_once_after_retry_after(
    metered_env: tuple[WorkflowEnvironment, MetricBuffer],
    pagerduty: PagerDutyAt,
) -> None:
    env, buffer = metered_env
    pagerduty.fake.failures += [
        InjectedFailure(status=429, retry_after=120, times=2),
        InjectedFailure(status=503, times=1),
        InjectedFailure(status=500, times=1),
    ]
    trigger = event_trigger(make_event("alice"), page="step1-0", severity=Severity.WARNING, why="x")
    async with paging_worker(env, pagerduty) as task_queue:
        outcome = await env.client.execute_workflow(
            PageOnceWorkflow.run, trigger, id=f"page-{uuid.uuid4().hex}", task_queue=task_queue
        )

    assert outcome.error is None and outcome.result is not None
    assert outcome.result.status == "success"
    assert outcome.waited_seconds >= 240  # both Retry-After waits were honoured
    assert [r.http_status for r in pagerduty.fake.received] == [429, 429, 503, 500, 202]
    assert {r.event["dedup_key"] for r in pagerduty.fake.received} == {trigger.dedup_key}
    [incident] = pagerduty.fake.incidents
    assert incident.dedup_key == trigger.dedup_key and len(incident.log) == 1
    assert page_counts(buffer) == {
        ("trigger", "rate_limited"): 2,
        ("trigger", "unavailable"): 2,
        ("trigger", "accepted"): 1,
    }


async def test_an_answer_lost_in_transit_is_retried_without_a_second_incident(
    time_skipping_env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
) -> None:
    # PagerDuty applies the first trigger but its answer comes after the client gave up.
    pagerduty.fake.failures.append(InjectedFailure(delay=3.0))
    trigger = not_me_trigger(make_event("alice"), "U0ALICE", None)
    env = time_skipping_env
    async with paging_worker(env, pagerduty, request_timeout=1.0) as task_queue:
        outcome = await env.client.execute_workflow(
            PageOnceWorkflow.run, trigger, id=f"page-{uuid.uuid4().hex}", task_queue=task_queue
        )

    assert outcome.result is not None and outcome.result.status == "success"
    assert len(pagerduty.fake.received) == 2
    [incident] = pagerduty.fake.incidents
    assert [e.action for e in incident.log] == ["trigger", "trigger"]


@pytest.mark.parametrize(
    ("routing_key", "said"),
    [
        ("WrongKeyWrongKeyWrongKeyWrongKey", "Invalid routing key"),
        ("e+23rschqsESqk9Q6_-g", "Length of 'routing_key' is incorrect (should be 32 characters)"),
    ],
)
async def test_a_bad_routing_key_fails_at_once_and_says_why(
    time_skipping_env: WorkflowEnvironment,
    pagerduty: PagerDutyAt,
    routing_key: str,
    said: str,
) -> None:
    env = time_skipping_env
    trigger = not_me_trigger(make_event("alice"), "U0ALICE", None)
    async with paging_worker(env, pagerduty, routing_key=routing_key) as task_queue:
        outcome = await env.client.execute_workflow(
            PageOnceWorkflow.run, trigger, id=f"page-{uuid.uuid4().hex}", task_queue=task_queue
        )

    assert outcome.result is None and outcome.non_retryable
    assert outcome.error_type == PAGERDUTY_PERMANENT
    assert outcome.error is not None
    assert outcome.error.startswith(
        "PagerDuty refused the event (HTTP 400): Event object is invalid"
    )
    assert said in outcome.error
    assert routing_key not in outcome.error  # the secret is not repeated in the failure
    assert len(pagerduty.fake.received) == 1  # no retries
    assert pagerduty.fake.incidents == []


async def test_an_untrusted_certificate_is_a_permanent_failure_naming_the_setting(
    pagerduty: PagerDutyAt,
) -> None:
    paging = PagerDutyActivities(PAGERDUTY_ROUTING_KEY, pagerduty.url, ca_file=None)
    trigger = not_me_trigger(make_event("alice"), "U0ALICE", None)
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(paging.trigger_page, trigger)
    assert failure.value.non_retryable and failure.value.type == PAGERDUTY_PERMANENT
    assert "POWERTRIP_PAGERDUTY_CA_FILE" in failure.value.message
    assert pagerduty.fake.received == []


async def test_pagerduty_unreachable_is_retried(pagerduty: PagerDutyAt) -> None:
    closed = f"https://127.0.0.1:{free_port()}"
    paging = PagerDutyActivities(PAGERDUTY_ROUTING_KEY, closed, pagerduty.ca_file)
    trigger = not_me_trigger(make_event("alice"), "U0ALICE", None)
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(paging.trigger_page, trigger)
    assert not failure.value.non_retryable and failure.value.type == "PagerDutyUnreachable"
    assert "ConnectError" in failure.value.message


async def test_without_a_routing_key_nothing_is_sent_and_the_result_says_so(
    pagerduty: PagerDutyAt,
) -> None:
    paging = PagerDutyActivities(None, pagerduty.url, pagerduty.ca_file)
    event = make_event("alice")
    result = await ActivityEnvironment().run(
        paging.trigger_page, not_me_trigger(event, "U0ALICE", None)
    )
    assert result.action is PageAction.TRIGGER and result.status == "skipped"
    assert not result.sent and "POWERTRIP_PAGERDUTY_ROUTING_KEY" in result.message
    assert pagerduty.fake.received == []


def test_dedup_keys_fit_pagerdutys_limit_and_stay_distinct() -> None:
    long_id = "papertrail-" + "x" * 300
    keys = {dedup_key(long_id, "not-me"), dedup_key(long_id, "step1-0"), dedup_key("a", "not-me")}
    assert len(keys) == 3 and all(len(k) <= MAX_DEDUP_KEY for k in keys)
    assert dedup_key("papertrail-1", "step1-0") == "powertrip/papertrail-1/step1-0"


def test_a_group_page_summarises_its_events_and_lists_the_latest() -> None:
    start = datetime(2026, 12, 5, 10, 2, tzinfo=UTC)
    events = [
        make_event(
            "alice",
            action=f"sudo as root #{n}",
            occurred_at=start + timedelta(minutes=n),
            provider_id=f"p{n}",
        )
        for n in range(20)
    ]
    trigger = group_trigger(
        "group-alice-bastion-1",
        events,
        page="step1-0",
        severity=Severity.WARNING,
        why="Not decided after 1h",
    )
    assert trigger.dedup_key == "powertrip/group-alice-bastion-1/step1-0"
    assert trigger.summary == (
        "Powertrip: Not decided after 1h: alice on bastion: 20 events "
        "(sudo as root #0, sudo as root #1, sudo as root #2, ...)"
    )
    details = trigger.custom_details
    assert details["events"] == 20 and details["not listed"] == 10 and details["urgency"] == "high"
    assert [e["action"] for e in details["latest"]][:2] == ["sudo as root #19", "sudo as root #18"]
    assert trigger.timestamp == (start + timedelta(minutes=19)).isoformat()
    with pytest.raises(ValueError, match="no events"):
        group_trigger("g", [], page="not-me", severity=Severity.CRITICAL, why="Not me")


def test_a_trigger_keeps_the_events_fields_over_the_rules_details() -> None:
    event = make_event("alice", details={"host": "spoofed", "command": "id"})
    details = not_me_trigger(event, "U0ALICE", None).custom_details
    assert details["host"] == "bastion" and details["command"] == "id"


def test_the_worker_says_when_its_policy_pages_but_no_routing_key_is_set() -> None:
    pages = policy({"do": "page", "after": "1h"})
    quiet = EscalationPolicy.from_renotify(timedelta(minutes=15))
    warning = paging_unset_warning(Settings(), [quiet, pages])
    assert warning is not None and "POWERTRIP_PAGERDUTY_ROUTING_KEY" in warning
    assert paging_unset_warning(Settings(), [quiet]) is None
    keyed = Settings(pagerduty_routing_key=PAGERDUTY_ROUTING_KEY)
    assert paging_unset_warning(keyed, [pages]) is None


def test_a_trigger_fits_pagerdutys_limits_whatever_the_event() -> None:
    event = make_event("alice", message="x" * 20_000, action="a" * 2_000)
    trigger = not_me_trigger(event, "U0ALICE", "r" * 10)
    assert len(trigger.summary) <= 1024 and len(trigger.custom_details["log line"]) <= 4096
    assert datetime.fromisoformat(str(trigger.timestamp)).tzinfo is not None
    assert trigger.severity is Severity.CRITICAL and trigger.source == "bastion"


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com"),
        ("https://events.eu.pagerduty.com/", "https://events.eu.pagerduty.com"),
    ],
)
def test_the_events_url_may_be_the_documented_endpoint_or_its_base(given: str, base: str) -> None:
    assert Settings(pagerduty_events_url=given).pagerduty_events_url == base


def test_the_events_url_must_be_https() -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("POWERTRIP_PAGERDUTY_EVENTS_URL", "http://127.0.0.1:8766")
        with pytest.raises(SettingsError, match=r"POWERTRIP_PAGERDUTY_EVENTS_URL: .*https:// only"):
            load_settings()


async def test_the_schedule_loads_zone_rules_inside_the_workflow_sandbox(
    time_skipping_env: WorkflowEnvironment, pagerduty: PagerDutyAt
) -> None:
    """A fresh worker replaying an event computes its first opening in workflow code: the zone
    must load there (from the tzdata package), not only in the test process."""
    zone.cache_clear()
    hours = BusinessHours(timezone="Pacific/Chatham", days=["mon-fri"], start="09:00", end="17:00")
    zone.cache_clear()  # validating the model loaded it: forget it again
    question = ScheduleQuestion(
        policy=policy({"do": "page", "after": "1h"}),
        started_at=datetime(2026, 12, 5, 3, 0, tzinfo=UTC),  # Saturday 16:45 in Chatham
        urgency=Urgency.LOW,
        business_hours=hours,
    )
    async with paging_worker(time_skipping_env, pagerduty) as task_queue:
        due = await time_skipping_env.client.execute_workflow(
            NextStepWorkflow.run, question, id=f"next-{uuid.uuid4().hex}", task_queue=task_queue
        )
    assert due is not None and due.deferred
    # Monday 09:00 in Chatham (UTC+13:45 in December) is Sunday 19:15 UTC.
    assert due.due == datetime(2026, 12, 6, 19, 15, tzinfo=UTC)
