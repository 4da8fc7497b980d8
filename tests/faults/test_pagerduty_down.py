"""PagerDuty down while a *Not me* comes in: its Events API first refuses connections (nothing
listens on its port), then answers 503 and 429 for a while, then recovers. On-call is paged once
it is back: one trigger accepted, one incident, one `dedup_key`, and the event's record says so,
with two workers and two API replicas sharing the work.

tests/test_paging_end_to_end.py::test_pagerduty_failing_for_a_while_pages_once_not_zero_or_two_times
covers HTTP refusals alone; this adds the outage a network sees (connection refused), on the
time-skipping server so the retries' backoff (up to 5 minutes) costs no real time."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio.runtime import MetricBuffer
from temporalio.testing import WorkflowEnvironment

from powertrip.config import load_config
from powertrip.contracts.approval import EventRecord, TimelineKind
from powertrip.contracts.paging import PageStatus
from powertrip.models import EventStatus
from powertrip.sandbox.fake_pagerduty import (
    FakePagerDuty,
    InjectedFailure,
    create_fake_pagerduty_app,
)
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.temporal import ensure_search_attributes
from tests.faults import second_client, task_identities
from tests.harness import (
    CONFIG_YAML,
    api_client,
    deliver_login,
    eventually,
    message_for,
    running_worker,
    settings_with_config,
    slack_click,
    state_eventually,
)
from tests.servers import PAGERDUTY_ROUTING_KEY, SECURITY_CHANNEL, ServedApp, free_port
from tests.test_paging import metered_env  # noqa: F401  (a fixture)
from workflows.approval import ApprovalWorkflow

DOWN_FOR = timedelta(minutes=30)  # of skipped time, connections refused
REFUSED_AFTER = [  # then PagerDuty answers, but refuses for a while
    InjectedFailure(status=503, times=2),
    InjectedFailure(status=429, retry_after=90, times=1),
]


def drain(buffer: MetricBuffer, into: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Add the PagerDuty attempts counted since the last drain (action, outcome) to `into`."""
    for update in buffer.retrieve_updates():
        if update.metric.name == "powertrip_pagerduty_events":
            key = (str(update.attributes["action"]), str(update.attributes["outcome"]))
            into[key] += int(update.value)
    return into


async def test_not_me_while_pagerduty_is_down_pages_once_when_it_is_back(
    metered_env: tuple[WorkflowEnvironment, MetricBuffer],  # noqa: F811
    fake_slack: FakeSlack,
    slack_api_url: str,
    pagerduty_tls: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    env, buffer = metered_env
    await ensure_search_attributes(env.client, env.client.namespace)
    attempts: Counter[tuple[str, str]] = Counter()
    fake = FakePagerDuty(routing_keys={PAGERDUTY_ROUTING_KEY})
    port = free_port()  # nothing listens on it until PagerDuty is "back"
    settings = settings_with_config(
        env,
        slack_api_url,
        tmp_path,
        CONFIG_YAML,
        pagerduty_routing_key=PAGERDUTY_ROUTING_KEY,
        pagerduty_events_url=f"https://127.0.0.1:{port}",
        pagerduty_ca_file=pagerduty_tls[0],
    )
    config = load_config(settings.config)
    # Two workers (the second on a client of its own, whose tasks carry its identity) and two
    # API replicas: the report comes through one, the acknowledgement through the other. (Not
    # one worker stopped mid-outage: on the time-skipping server a run whose sticky worker is
    # gone holds time still, and `env.sleep` times out.)
    second = await second_client(env.client)
    async with (
        running_worker(env.client, settings, config),
        running_worker(second, settings, config),
        api_client(settings) as http,
        api_client(settings) as other_replica,
    ):
        event_id = await deliver_login(http)
        handle = env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        said = await slack_click(http, "U0ALICE", "not_me", event_id, dm, name="alice")
        assert said.status_code == 200
        # The report is taken and the security channel alerted while PagerDuty is down.
        alert = await eventually(lambda: message_for(fake_slack, event_id, SECURITY_CHANNEL))
        await eventually(lambda: drain(buffer, attempts)[("trigger", "unreachable")] >= 1)
        await env.sleep(DOWN_FOR)
        record = await state_eventually(handle, lambda r: bool(r.pages))
        assert record.status is EventStatus.REPORTED
        assert [p.status for p in record.pages] == [PageStatus.SENDING]
        unreachable = drain(buffer, attempts)[("trigger", "unreachable")]
        assert unreachable >= 3, attempts  # retried through the outage, not given up
        assert fake.received == []

        fake.failures += [f.model_copy() for f in REFUSED_AFTER]
        async with ServedApp(create_fake_pagerduty_app(fake), port=port, tls=pagerduty_tls):
            # The backoff (up to 5 minutes by now) and the Retry-After wait.
            await env.sleep(timedelta(minutes=30))
            [incident] = await eventually(lambda: fake.incidents, within=30)
            record = await state_eventually(
                handle, lambda r: [p.status for p in r.pages] == [PageStatus.OPEN]
            )
            # Nothing more is sent however long it waits: the page is taken, once.
            await env.sleep(timedelta(hours=2))
            assert len(fake.received) == sum(f.times for f in REFUSED_AFTER) + 1  # and the trigger
            said = await slack_click(
                other_replica, "U0SEC1", "acknowledge", event_id, alert, name="sec1"
            )
            assert said.status_code == 200
            final: EventRecord = await handle.result()
        tasks = await task_identities(env.client, [event_id])

    drain(buffer, attempts)
    dedup_key = f"powertrip/{event_id}/not-me"
    assert [r.http_status for r in fake.received] == [503, 503, 429, 202, 202, 202]
    assert [r.event["event_action"] for r in fake.received[3:]] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert {r.event["dedup_key"] for r in fake.received} == {dedup_key}
    assert fake.incidents == [incident]
    assert (incident.dedup_key, incident.severity) == (dedup_key, "critical")
    assert [e.action for e in incident.log] == ["trigger", "acknowledge", "resolve"]
    assert [e.what for e in final.timeline].count(TimelineKind.PAGED) == 1
    assert [e.what for e in final.timeline].count(TimelineKind.REPORTED) == 1
    assert final.status is EventStatus.ACKNOWLEDGED
    assert attempts[("trigger", "accepted")] == 1
    assert attempts[("trigger", "unavailable")] == 2
    assert attempts[("trigger", "rate_limited")] == 1
    print(
        f"FIGURES refused connections {attempts[('trigger', 'unreachable')]}, "
        f"HTTP refusals 3, triggers accepted 1, incidents {len(fake.incidents)}; "
        f"tasks per worker {dict(tasks)}"
    )
