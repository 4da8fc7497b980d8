"""Paging end to end on the time-skipping server: a login through the Papertrail webhook, the real
worker (the `pagerduty` client over https to the fake Events API v2), the real API taking Slack's
clicks from the fake Slack. A *Not me* pages at once, the security team's *Acknowledge* in Slack
acknowledges (and closes) the page, approving resolves the page `page_after` sent, and PagerDuty
failing with 429 and 5xx for a while pages once: not zero times, not twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.runtime import MetricBuffer
from temporalio.testing import WorkflowEnvironment

from powertrip.config import load_config
from powertrip.contracts.approval import EventRecord, TimelineKind
from powertrip.sandbox.fake_pagerduty import InjectedFailure
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.settings import Settings
from powertrip.temporal import ensure_search_attributes
from tests.harness import (
    API_HEADERS,
    CONFIG_YAML,
    api_client,
    deliver_login,
    eventually,
    message_for,
    running_worker,
    settings_with_config,
    slack_click,
)
from tests.servers import PAGERDUTY_ROUTING_KEY, SECURITY_CHANNEL, PagerDutyAt
from tests.test_paging import metered_env, page_counts  # noqa: F401  (a fixture)
from workflows.approval import ApprovalWorkflow

PAGE_AFTER = "pagerduty: {page_after: 1h}\n"


@asynccontextmanager
async def powertrip(
    env: WorkflowEnvironment,
    slack_api_url: str,
    pagerduty: PagerDutyAt,
    folder: Path,
    config_yaml: str = CONFIG_YAML,
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The API and the worker with one config file, paging the fake Events API."""
    settings = settings_with_config(
        env,
        slack_api_url,
        folder,
        config_yaml,
        pagerduty_routing_key=PAGERDUTY_ROUTING_KEY,
        pagerduty_events_url=pagerduty.url,
        pagerduty_ca_file=pagerduty.ca_file,
    )
    config = load_config(settings.config)
    async with running_worker(env.client, settings, config), api_client(settings) as http:
        yield http, settings


async def view(http: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
    return data


async def test_not_me_pages_at_once_and_the_teams_acknowledge_in_slack_acknowledges_it(
    time_skipping_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    pagerduty: PagerDutyAt,
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    async with powertrip(env, slack_api_url, pagerduty, tmp_path) as (http, _):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        said = await slack_click(http, "U0ALICE", "not_me", event_id, dm, name="alice")
        assert said.status_code == 200
        [incident] = await eventually(lambda: pagerduty.fake.incidents)
        assert (incident.severity, incident.status) == ("critical", "triggered")
        assert incident.summary.startswith("Powertrip: Not me: alice: ssh login")
        assert incident.custom_details["reported by"] == "@alice (U0ALICE)"
        assert incident.dedup_key == f"powertrip/{event_id}/not-me"

        alert = await eventually(lambda: message_for(fake_slack, event_id, SECURITY_CHANNEL))
        said = await slack_click(http, "U0SEC1", "acknowledge", event_id, alert, name="sec1")
        assert said.status_code == 200
        handle = env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
        record: EventRecord = await handle.result()
        shown = await view(http, event_id)

    # PagerDuty saw the trigger, the acknowledgement and the resolve, once each.
    assert [e.action for e in incident.log] == ["trigger", "acknowledge", "resolve"]
    assert incident.acknowledged_at is not None and incident.status == "resolved"
    assert [r.http_status for r in pagerduty.fake.received] == [202, 202, 202]
    paging = [e for e in record.timeline if e.page is not None]
    assert [e.what for e in paging] == [
        TimelineKind.PAGED,
        TimelineKind.PAGE_ACKNOWLEDGED,
        TimelineKind.PAGE_RESOLVED,
    ]
    assert all(e.page and e.page.message == "Event processed" for e in paging)
    assert paging[1].by == "U0SEC1"
    # The record readers get from the API says so too.
    assert [e["what"] for e in shown["timeline"] if e["what"] != "reminded"][-5:] == [
        "reported",
        "paged",
        "acknowledged",
        "page_acknowledged",
        "page_resolved",
    ]


async def test_an_undecided_login_pages_after_page_after_and_approving_in_slack_resolves_it(
    time_skipping_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    pagerduty: PagerDutyAt,
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    config = CONFIG_YAML + PAGE_AFTER
    async with powertrip(env, slack_api_url, pagerduty, tmp_path, config) as (http, _):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        await env.sleep(timedelta(minutes=59))
        assert pagerduty.fake.incidents == []
        await env.sleep(timedelta(hours=3))
        [incident] = await eventually(lambda: pagerduty.fake.incidents)
        assert incident.severity == "warning"
        assert incident.summary.startswith("Powertrip: Not decided after 1h: alice")
        said = await slack_click(http, "U0ALICE", "approve", event_id, dm, name="alice")
        assert said.status_code == 200
        record: EventRecord = await env.client.get_workflow_handle_for(
            ApprovalWorkflow.run, event_id
        ).result()

    assert incident.status == "resolved"
    assert [e.action for e in incident.log] == ["trigger", "resolve"]
    assert len(pagerduty.fake.incidents) == 1  # once: no second page hours later
    [resolved] = [e for e in record.timeline if e.what is TimelineKind.PAGE_RESOLVED]
    assert resolved.by == "U0ALICE"


async def test_pagerduty_failing_for_a_while_pages_once_not_zero_or_two_times(
    metered_env: tuple[WorkflowEnvironment, MetricBuffer],  # noqa: F811
    fake_slack: FakeSlack,
    slack_api_url: str,
    pagerduty: PagerDutyAt,
    tmp_path: Path,
) -> None:
    env, buffer = metered_env
    await ensure_search_attributes(env.client, env.client.namespace)
    pagerduty.fake.failures += [
        InjectedFailure(status=429, retry_after=120, times=2),
        InjectedFailure(status=503, times=1),
        InjectedFailure(status=500, times=1),
    ]
    async with powertrip(env, slack_api_url, pagerduty, tmp_path) as (http, _):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        await slack_click(http, "U0ALICE", "not_me", event_id, dm, name="alice")
        # The incident alert is in Slack at once, whatever PagerDuty answers.
        alert = await eventually(lambda: message_for(fake_slack, event_id, SECURITY_CHANNEL))
        await eventually(lambda: len(pagerduty.fake.received) >= 1)
        await env.sleep(timedelta(minutes=10))  # both Retry-After waits and the backoff
        [incident] = await eventually(lambda: pagerduty.fake.incidents)
        await slack_click(http, "U0SEC1", "acknowledge", event_id, alert, name="sec1")
        await env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id).result()

    statuses = [r.http_status for r in pagerduty.fake.received]
    assert statuses == [429, 429, 503, 500, 202, 202, 202]
    assert {r.event["dedup_key"] for r in pagerduty.fake.received} == {incident.dedup_key}
    assert [e.action for e in incident.log] == ["trigger", "acknowledge", "resolve"]
    assert page_counts(buffer) == {
        ("trigger", "rate_limited"): 2,
        ("trigger", "unavailable"): 2,
        ("trigger", "accepted"): 1,
        ("acknowledge", "accepted"): 1,
        ("resolve", "accepted"): 1,
    }
