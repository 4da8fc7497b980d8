"""Bounded work per request: a user's regex cannot stall the API, one request carries a bounded
number of records, and a page token the API did not issue is a 400, never a 500."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.config import ConfigError, load_config
from powertrip.services.starts import ResultStatus, start_approval
from tests.harness import (
    API_HEADERS,
    CONFIG_YAML,
    WEBHOOK_HEADERS,
    api_client,
    eventually,
    make_event,
    make_settings,
)

EVIL_RULE = """
rules:
  - id: user-evil
    title: A rule with nested quantifiers
    kind: other
    match:
      message: '^(a+)+$'
    event: {actor: '{host}', action: 'nothing'}
"""


@pytest.fixture
async def evil_http(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_YAML + EVIL_RULE)
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        config=config,
        max_records_per_request=50,
    )
    async with api_client(settings) as http:
        yield http


async def test_a_catastrophic_user_regex_does_not_stall_the_api(
    evil_http: httpx.AsyncClient,
) -> None:
    """The issue's example: `^(a+)+$` and a 28-character line took seconds in the event loop
    (each extra character doubled it); RE2 answers in linear time."""
    # (Longer lines would run for hours on a backtracking engine; the 16 KiB cap is the limit.)
    lines = ["a" * 27 + "!", "a" * 28 + "!", "a" * 16_000 + "!"]
    records = [{"host": "h", "program": "x", "message": line} for line in lines]
    began = time.monotonic()
    # A health check sent at the same time is not held up behind the matching.
    response, health = await asyncio.gather(
        evil_http.post("/webhooks/json", json=records, headers=WEBHOOK_HEADERS),
        evil_http.get("/healthz"),
    )
    elapsed = time.monotonic() - began
    assert response.status_code == 202 and health.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["unmatched"] * 3
    assert elapsed < 2.0, f"matching took {elapsed:.1f}s"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("^(?!root).*$", "no lookaround"),
        ("(?<=from )\\S+", "no lookaround"),
        ("^(\\w+) \\1$", "no backreferences"),
        ("(a{1000}){1000}", "repetition"),
    ],
)
def test_config_loading_refuses_what_re2_cannot_bound_naming_the_rule(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG_YAML
        + "rules:\n  - id: mine\n    title: t\n    match: {message: '"
        + pattern.replace("'", "''")
        + "'}\n    event: {actor: x, action: y}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "'mine'" in str(caught.value) and reason in str(caught.value)


async def test_more_records_than_the_cap_is_413_with_the_reason_and_starts_nothing(
    evil_http: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    tag = uuid.uuid4().hex[:8]
    records = [
        {"id": f"{tag}-{i}", "host": "h", "program": "sshd", "message": f"Accepted x{i}"}
        for i in range(51)
    ]
    response = await evil_http.post("/webhooks/json", json=records, headers=WEBHOOK_HEADERS)
    assert response.status_code == 413
    assert "51 records" in response.text and "at most 50" in response.text
    assert "POWERTRIP_MAX_RECORDS_PER_REQUEST" in response.text
    ndjson = "\n".join(f'{{"id": "{tag}-n{i}", "message": "x"}}' for i in range(51))
    response = await evil_http.post(
        "/webhooks/json",
        content=ndjson,
        headers={**WEBHOOK_HEADERS, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 413
    papertrail = {"events": [{"id": f"{tag}{i}", "message": "x"} for i in range(51)]}
    response = await evil_http.post(
        "/webhooks/papertrail", json=papertrail, headers=WEBHOOK_HEADERS
    )
    assert response.status_code == 413
    fifty = await evil_http.post("/webhooks/json", json=records[:50], headers=WEBHOOK_HEADERS)
    assert fifty.status_code == 202


def _tampered(token: str) -> list[str]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))

    def text(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return [
        text(raw[:-1] + bytes([raw[-1] ^ 0x01])),  # one bit of Temporal's token
        text(raw[:30] + b"\x00\x01garbage"),  # Temporal's token replaced
        text(raw[:-4]),  # truncated
        text(raw[:6] + raw[22:]),  # our check stripped
        token[:-2],
    ]


async def test_a_tampered_page_token_is_400_not_500(
    served: tuple[httpx.AsyncClient, object], dev_env: WorkflowEnvironment
) -> None:
    http, _ = served
    actor = f"pager-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        event = make_event(actor)
        assert await start_approval(dev_env.client, event, "no-worker") is ResultStatus.STARTED

    async def first_page() -> dict | None:
        response = await http.get(
            "/v1/events", params={"actor": actor, "page_size": 1}, headers=API_HEADERS
        )
        body = response.json()
        return body if body["next_page_token"] else None

    page = await eventually(first_page)
    for token in _tampered(page["next_page_token"]):
        began = time.monotonic()
        response = await http.get(
            "/v1/events",
            params={"actor": actor, "page_size": 1, "page_token": token},
            headers=API_HEADERS,
        )
        assert response.status_code == 400, (token, response.text)
        assert "page_token" in response.json()["detail"]
        assert time.monotonic() - began < 2.0
    good = await http.get(
        "/v1/events",
        params={"actor": actor, "page_size": 1, "page_token": page["next_page_token"]},
        headers=API_HEADERS,
    )
    assert good.status_code == 200 and len(good.json()["events"]) == 1


@pytest.fixture
async def big_http(
    dev_env: WorkflowEnvironment, slack_api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the default caps: 5 MB bodies, 10,000 records a request."""
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    async with api_client(settings) as http:
        yield http


async def test_a_big_request_leaves_the_event_loop_free_for_other_requests(
    big_http: httpx.AsyncClient,
) -> None:
    """Red-team F3: one allowed request (10,000 lines, 4.99 MB) held the event loop 3.2 s
    (parsing, recognising, the non-event check and review shapes), and Slack gives up on an
    interaction after 3 s. The API shares this test's event loop, so its stalls are measured
    here; a health check sent meanwhile is answered at once."""
    pad = "x" * 400
    tag = uuid.uuid4().hex[:8]
    lines = [
        f"Nov 30 05:00:00 web-{i % 50} app[{i}]: order {tag}-{i} shipped {pad}"
        for i in range(10_000)
    ]
    body = "\n".join(lines).encode()
    assert len(body) < 5_000_000
    worst, done = 0.0, asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - began - 0.01)

    async def big() -> httpx.Response:
        try:
            return await big_http.post(
                "/webhooks/json",
                content=body,
                headers={**WEBHOOK_HEADERS, "Content-Type": "text/plain"},
                timeout=120,
            )
        finally:
            done.set()

    async def health_while_busy() -> float:
        await asyncio.sleep(0.5)  # the big request is being read and parsed by now
        began = time.perf_counter()
        assert (await big_http.get("/healthz")).status_code == 200
        return time.perf_counter() - began

    response, _, health = await asyncio.gather(big(), probe(), health_while_busy())
    assert response.status_code == 202, response.text[:300]
    assert response.json()["summary"] == {"unmatched": 10_000}
    # Generous against a busy 2-core CI machine: the loop never waits for the whole request.
    assert worst < 0.5, f"the event loop stalled {worst:.2f}s"
    assert health < 0.5, f"/healthz took {health:.2f}s during the big request"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/approvals/match", {"at": "9999-12-31T23:59:59Z"}),
        ("/v1/approvals/match", {"at": "0001-01-01T00:00:00+23:59"}),
        ("/v1/approvals/match", {"at": "2026-11-30T05:00:00Z", "window": "99999999999d"}),
        ("/v1/approvals/match", {"at": "2026-11-30T05:00:00Z", "tolerance": "99999999999d"}),
        ("/v1/events", {"since": "0001-01-01T00:00:00+23:59"}),
        ("/v1/events", {"until": "9999-12-31T23:59:59-23:59"}),
    ],
)
async def test_a_question_with_a_time_or_duration_no_record_has_is_422_not_500(
    served: tuple[httpx.AsyncClient, object], path: str, params: dict[str, str]
) -> None:
    """Times a record can have lie between 1970 and 2999 (`models.RecordTime`); beyond, the
    window around them overflowed into a 500."""
    http, _ = served
    question = {"host": "bastion", "user": "alice", **params} if "match" in path else params
    response = await http.get(path, params=question, headers=API_HEADERS)
    assert response.status_code == 422, response.text
    assert any(word in response.text for word in ("between 1970", "not a duration"))
