"""Records without a provider id (issue 10, section 2): a retried delivery is a duplicate, the same
text happening again later is a new event; `Idempotency-Key` names a sender's records; and the
README's break-glass `curl` works as written (curl labels its JSON a form)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.sources import RECEIVE_BUCKET, content_id
from powertrip.sources.generic import Reading, parse_generic
from tests.harness import CONFIG_YAML, WEBHOOK_HEADERS, settings_with_config, ssh_line
from tests.servers import ServedApp

CURL_FORM = {**WEBHOOK_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    """The API's clock for this test: when each request arrives."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    config = CONFIG_YAML + "rule_packs: [sshd, custom-example]\n"
    app = create_app(settings_with_config(dev_env, slack_api_url, tmp_path, config))
    app.state.clock = clock
    async with ServedApp(app) as running, httpx.AsyncClient(base_url=running.url) as client:
        yield client


def break_glass(user: str) -> str:
    return json.dumps(
        {
            "host": "db-1",
            "program": "breakglass",
            "message": f'BREAKGLASS user={user} reason="incident 42"',
        }
    )


async def post(
    http: httpx.AsyncClient, body: str | bytes, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    response = await http.post("/webhooks/json", content=body, headers=headers or CURL_FORM)
    assert response.status_code == 202, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_the_readme_curl_works_as_written(http: httpx.AsyncClient) -> None:
    # `curl -d '{...}'` sends Content-Type: application/x-www-form-urlencoded.
    [result] = await post(http, break_glass(f"u{uuid.uuid4().hex[:8]}"))
    assert (result["status"], result["rule_id"]) == ("started", "custom-break-glass")
    # A real form without a `payload` field is still refused with the reason.
    response = await http.post("/webhooks/json", content=b"events=1", headers=CURL_FORM)
    assert response.status_code == 400 and "payload" in response.json()["detail"]


async def test_a_break_glass_sent_twice_days_apart_is_two_events_a_retry_is_one(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    body = break_glass(f"u{uuid.uuid4().hex[:8]}")
    [first] = await post(http, body)
    clock.now += timedelta(seconds=20)  # the sender's retry after a timeout
    [retry] = await post(http, body)
    assert first["status"] == "started"
    assert (retry["status"], retry["event_id"]) == ("duplicate", first["event_id"])
    clock.now += timedelta(days=3)  # the same break-glass, used again
    [again] = await post(http, body)
    assert again["status"] == "started" and again["event_id"] != first["event_id"]


async def test_a_line_with_its_own_time_is_named_by_it(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    line = f"Nov 27 01:02:03 web-1 sshd[77]: {ssh_line(user)}"
    [first] = await post(http, json.dumps({"message": line}))
    clock.now += timedelta(days=2)  # a retry much later is still the same record
    [retry] = await post(http, json.dumps({"message": line}))
    later = line.replace("01:02:03", "01:09:03")
    [other] = await post(http, json.dumps({"message": later}))
    assert first["status"] == "started" and retry["status"] == "duplicate"
    assert other["status"] == "started" and other["event_id"] != first["event_id"]


async def test_an_idempotency_key_names_the_records(http: httpx.AsyncClient) -> None:
    key = f"deploy-{uuid.uuid4().hex[:8]}"
    headers = {**CURL_FORM, "Idempotency-Key": key}
    [single] = await post(http, break_glass("alice"), headers)
    assert single["event_id"] == f"json-{key}"
    [retry] = await post(http, break_glass("alice"), headers)
    assert retry["status"] == "duplicate"

    # Other actions than the single one: alice's again within seconds would be the same action by
    # natural identity (the dedup test_one_event_per_action covers), named after the first.
    batch_key = f"batch-{uuid.uuid4().hex[:8]}"
    body = "[" + ",".join([break_glass("carol"), break_glass("bob")]) + "]"
    results = await post(http, body, {**CURL_FORM, "Idempotency-Key": batch_key})
    assert [r["event_id"] for r in results] == [f"json-{batch_key}:0", f"json-{batch_key}:1"]

    response = await http.post(
        "/webhooks/json",
        content=break_glass("alice"),
        headers={**CURL_FORM, "Idempotency-Key": "has spaces in it"},
    )
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["detail"]


async def test_curl_data_from_an_ndjson_file_and_raw_lines(http: httpx.AsyncClient) -> None:
    # `curl -d @events.ndjson` strips the newlines: the values arrive one after another.
    users = [f"u{uuid.uuid4().hex[:8]}" for _ in range(3)]
    joined = "".join(break_glass(user) for user in users[:2])
    results = await post(http, joined)
    assert [r["rule_id"] for r in results] == ["custom-break-glass"] * 2
    # `curl --data-binary @auth.log -H 'Content-Type: text/plain'`: log lines as they are.
    text = f"Nov 27 01:02:03 web-1 sshd[77]: {ssh_line(users[2])}\nnot a syslog line\n"
    results = await post(http, text, {**WEBHOOK_HEADERS, "Content-Type": "text/plain"})
    assert [r["status"] for r in results] == ["started", "unmatched"]


def test_the_naming_rule() -> None:
    at = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    record = {"program": "breakglass", "message": "BREAKGLASS user=alice"}
    [item] = parse_generic(record, Reading(received=at))
    assert item.raw is not None and item.raw.provider_id == content_id(record, None, at)
    assert item.raw.received_at == at  # stamped with its arrival
    # Within one receive bucket the same content is the same id; in the next, another.
    [same] = parse_generic(record, Reading(received=at + RECEIVE_BUCKET - timedelta(seconds=1)))
    [next_bucket] = parse_generic(record, Reading(received=at + RECEIVE_BUCKET))
    assert same.raw is not None and next_bucket.raw is not None
    assert same.raw.provider_id == item.raw.provider_id != next_bucket.raw.provider_id
    # A record with its own time is named by it, whenever it arrives.
    timed = {**record, "time": "2026-11-20T08:00:00Z"}
    [early] = parse_generic(timed, Reading(received=at))
    [late] = parse_generic(timed, Reading(received=at + timedelta(days=30)))
    assert early.raw is not None and late.raw is not None
    assert early.raw.provider_id == late.raw.provider_id
    assert early.raw.provider_id.startswith("h") and len(early.raw.provider_id) == 33
