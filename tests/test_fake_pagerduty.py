"""The fake Events API v2 speaks PagerDuty's wire format over https and applies events the way
PagerDuty documents, so tests against it mean something."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from powertrip.sandbox.fake_pagerduty import FakePagerDuty, InjectedFailure, render_page
from tests.servers import PAGERDUTY_ROUTING_KEY, PagerDutyAt

OTHER_KEY = "AnotherServiceIntegrationKey0002"


@pytest.fixture
def fake_pagerduty(pagerduty: PagerDutyAt) -> FakePagerDuty:
    return pagerduty.fake


@pytest.fixture
async def events_api(pagerduty: PagerDutyAt) -> Any:
    context = ssl.create_default_context(cafile=str(pagerduty.ca_file))
    async with httpx.AsyncClient(base_url=pagerduty.url, verify=context) as http:
        yield http


def trigger(key: str = "k-1", routing_key: str = PAGERDUTY_ROUTING_KEY, **payload: Any) -> dict:
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {"summary": "alice: ssh login", "source": "bastion", "severity": "warning"}
        | payload,
    }


def update(action: str, key: str = "k-1", routing_key: str = PAGERDUTY_ROUTING_KEY) -> dict:
    return {"routing_key": routing_key, "event_action": action, "dedup_key": key}


async def test_an_event_is_accepted_with_pagerdutys_answer(
    events_api: httpx.AsyncClient, fake_pagerduty: FakePagerDuty
) -> None:
    answer = await events_api.post("/v2/enqueue", json=trigger())
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "k-1"}
    # Without a dedup_key PagerDuty makes one up and says which.
    bare = trigger()
    del bare["dedup_key"]
    made_up = (await events_api.post("/v2/enqueue", json=bare)).json()["dedup_key"]
    assert made_up and made_up != "k-1" and len(fake_pagerduty.incidents) == 2
    # The record keeps the routing key's last four characters only; incidents a fingerprint.
    assert fake_pagerduty.received[0].event["routing_key"] == "*0001"
    for view in ("/_fake/events", "/_fake/incidents", "/"):
        assert PAGERDUTY_ROUTING_KEY not in (await events_api.get(view)).text


async def test_the_incident_lifecycle_follows_dedup_key_and_routing_key(
    events_api: httpx.AsyncClient, fake_pagerduty: FakePagerDuty
) -> None:
    fake_pagerduty.routing_keys = {PAGERDUTY_ROUTING_KEY, OTHER_KEY}
    try:
        for body in (
            trigger(),
            trigger(),  # a retry: the same alert
            update("acknowledge"),
            update("resolve", routing_key=OTHER_KEY),  # another service's key: dropped
            update("resolve"),
            update("resolve"),  # nothing open: dropped, still 202
            trigger(),  # after a resolve: a new incident
        ):
            assert (await events_api.post("/v2/enqueue", json=body)).status_code == 202
    finally:
        fake_pagerduty.routing_keys = {PAGERDUTY_ROUTING_KEY}
    first, second = fake_pagerduty.incidents_for("k-1")
    assert first.status == "resolved" and first.acknowledged_at and first.resolved_at
    assert [e.action for e in first.log] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert second.status == "triggered" and second.number == 2
    assert [r.outcome for r in fake_pagerduty.received] == [
        "opened incident #1",
        "trigger on incident #1 (now triggered)",
        "acknowledge on incident #1 (now acknowledged)",
        "dropped: no open incident with this dedup_key to resolve",
        "resolve on incident #1 (now resolved)",
        "dropped: no open incident with this dedup_key to resolve",
        "opened incident #2",
    ]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            trigger(routing_key="short"),
            ["Length of 'routing_key' is incorrect (should be 32 characters)"],
        ),
        (
            trigger(routing_key="e+23rschqsESqk9Q6_-gXXXXXXXXXXXX"),
            ["'routing_key' cannot contain non-alphanumeric characters."],
        ),
        (trigger(routing_key="UnknownServiceIntegrationKey0003"), ["Invalid routing key"]),
        (
            trigger(severity="urgent"),
            ["'payload.severity' must be one of critical, error, warning, info"],
        ),
        (trigger(summary=""), ["'payload.summary' is missing"]),
        (trigger(summary="x" * 1025), ["'payload.summary' is longer than 1024 characters"]),
        (trigger(key="k" * 256), ["'dedup_key' must be a string of at most 255 characters"]),
        (update("acknowledge", key=""), ["'dedup_key' is required for acknowledge events"]),
        (update("escalate"), ["'event_action' must be one of trigger, acknowledge, resolve"]),
        ([1, 2], ["Event object must be a JSON object"]),
    ],
)
async def test_an_invalid_event_is_refused_with_pagerdutys_400(
    events_api: httpx.AsyncClient, fake_pagerduty: FakePagerDuty, body: Any, errors: list[str]
) -> None:
    answer = await events_api.post("/v2/enqueue", json=body)
    assert answer.status_code == 400
    assert answer.json() == {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": errors,
    }
    assert fake_pagerduty.incidents == []


async def test_a_body_that_is_not_json_is_refused(events_api: httpx.AsyncClient) -> None:
    answer = await events_api.post("/v2/enqueue", content=b"{not json")
    assert answer.status_code == 400 and answer.json()["status"] == "invalid event"


async def test_injected_failures_answer_before_anything_is_applied(
    events_api: httpx.AsyncClient, fake_pagerduty: FakePagerDuty
) -> None:
    await events_api.post("/_fake/failures", json={"status": 429, "retry_after": 7, "times": 2})
    fake_pagerduty.failures.append(InjectedFailure(status=502))
    answers = [await events_api.post("/v2/enqueue", json=trigger()) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 502, 202]
    assert answers[0].headers["retry-after"] == "7"
    [incident] = fake_pagerduty.incidents
    assert len(incident.log) == 1
    assert [r["http_status"] for r in (await events_api.get("/_fake/events")).json()] == [
        429,
        429,
        502,
        202,
    ]


async def test_the_page_shows_what_pagerduty_would_have_received(
    events_api: httpx.AsyncClient, fake_pagerduty: FakePagerDuty
) -> None:
    await events_api.post(
        "/v2/enqueue",
        json=trigger(summary="<script>alert(1)</script> on bastion", severity="critical"),
    )
    await events_api.post("/v2/enqueue", json=update("acknowledge"))
    page = (await events_api.get("/")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; on bastion" in page and "<script>" not in page
    assert ">acknowledged</span>" in page and "critical" in page
    assert "acknowledge on incident #1 (now acknowledged)" in page
    [incident] = (await events_api.get("/_fake/incidents")).json()
    assert incident["status"] == "acknowledged" and incident["dedup_key"] == "k-1"


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "fake-pagerduty.json"
    fake = FakePagerDuty(state=state)
    fake.enqueue(trigger())
    again = FakePagerDuty(state=state)
    assert [i.dedup_key for i in again.incidents] == ["k-1"]
    again.enqueue(update("resolve"))
    assert again.incidents[0].status == "resolved" and again.received[-1].number == 2
    assert "Incidents" in render_page(again)
