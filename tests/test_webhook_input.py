"""Bad input gets a clear 4xx and starts nothing; a bad member of a good batch is reported by
index while the others proceed."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness import WEBHOOK_HEADERS, api_client, exists, make_settings, ssh_line


@pytest.fixture
async def http(
    dev_env: WorkflowEnvironment, slack_api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        max_body_bytes=20_000,
    )
    async with api_client(settings) as client:
        yield client


def good_event(provider_id: str) -> dict:
    return {"id": provider_id, "hostname": "web1", "program": "sshd", "message": ssh_line("alice")}


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, ""),
        ({"Authorization": "Bearer wrong"}, ""),
        ({}, "?token=wrong"),
        ({"Authorization": "Basic aG9vay1zZWNyZXQ="}, ""),
    ],
)
async def test_missing_or_wrong_token_is_401_and_starts_nothing(
    http: httpx.AsyncClient, dev_env: WorkflowEnvironment, headers: dict, query: str
) -> None:
    provider_id = uuid.uuid4().hex
    response = await http.post(
        f"/webhooks/papertrail{query}", json={"events": [good_event(provider_id)]}, headers=headers
    )
    assert response.status_code == 401
    assert not await exists(dev_env, f"papertrail-{provider_id}")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason"),
    [
        (b'{"events": [', "application/json", 400, "not valid JSON"),
        (b"payload=%7B%22events%22%3A", "application/x-www-form-urlencoded", 400, "not valid JSON"),
        (b"events=1", "application/x-www-form-urlencoded", 400, "no `payload` field"),
        # A proxy reading the first `payload` and Powertrip another lost the second's logins.
        (
            b"payload=%7B%22events%22%3A%5B%5D%7D&payload=%7B%22events%22%3A%5B%5D%7D",
            "application/x-www-form-urlencoded",
            400,
            "more than one `payload`",
        ),
        (b"<xml/>", "application/xml", 415, "unsupported content type"),
        (b'{"evnts": []}', "application/json", 422, "`events` list"),
        (b"[1, 2]", "application/json", 422, "`events` list"),
        (b"", "application/json", 400, "empty body"),
    ],
)
async def test_malformed_requests_get_a_clear_4xx(
    http: httpx.AsyncClient, content: bytes, content_type: str, status: int, reason: str
) -> None:
    response = await http.post(
        "/webhooks/papertrail",
        content=content,
        headers={**WEBHOOK_HEADERS, "Content-Type": content_type},
    )
    assert response.status_code == status
    assert reason in response.json()["detail"]


async def test_body_over_the_limit_is_413_and_starts_nothing(
    http: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    provider_id = uuid.uuid4().hex
    padding = [{"id": f"pad{i}", "message": "x" * 200} for i in range(100)]
    body = json.dumps({"events": [good_event(provider_id), *padding]}).encode()
    assert len(body) > 20_000
    response = await http.post(
        "/webhooks/papertrail",
        content=body,
        headers={**WEBHOOK_HEADERS, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert not await exists(dev_env, f"papertrail-{provider_id}")


async def test_bad_members_are_reported_by_index_and_the_rest_proceed(
    http: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    first, last = uuid.uuid4().hex, uuid.uuid4().hex
    events = [
        good_event(first),
        {"hostname": "web1", "program": "sshd", "message": ssh_line("bob")},  # no id
        {"id": "no-message", "hostname": "web1"},
        {"id": ["not", "an", "id"], "message": ssh_line("bob")},
        {"id": "typed", "message": 42},
        "not even an object",
        {"id": "noise", "program": "cron", "message": "(root) CMD (run-parts /etc/cron.hourly)"},
        good_event(last),
    ]
    response = await http.post(
        "/webhooks/papertrail", json={"events": events}, headers=WEBHOOK_HEADERS
    )
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(events)))
    assert [r["status"] for r in results] == [
        "started",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "unmatched",
        "started",
    ]
    assert "id" in results[1]["reason"] and "message" in results[2]["reason"]
    assert all(r["reason"] for r in results if r["status"] != "started")
    assert await exists(dev_env, f"papertrail-{first}") and await exists(
        dev_env, f"papertrail-{last}"
    )


async def test_the_query_token_never_reaches_the_access_log(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # The line uvicorn writes for every request, through the logger the app has set up.
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5555",
            "POST",
            "/webhooks/papertrail?token=hook-secret&x=1",
            "1.1",
            202,
        )
    assert "hook-secret" not in caplog.text
    # Only the values of the query parameters the API documents are kept.
    assert "/webhooks/papertrail?token=[redacted]&x=[redacted]" in caplog.text


@pytest.mark.parametrize(
    "query",
    [
        "t%6Fken=hook-secret",  # the example: the server decodes the name, the log did not
        "%74%6F%6B%65%6E=hook-secret",
        "TOKEN=hook-secret&token=hook-secret",
        "x=1&token=hook%2Dsecret",
    ],
)
async def test_an_encoded_query_token_authenticates_but_never_reaches_the_access_log(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    """The real server's access line: whatever the spelling that authenticates, no secret."""
    provider_id = uuid.uuid4().hex
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        response = await http.post(
            f"/webhooks/papertrail?{query}", json={"events": [good_event(provider_id)]}
        )
    assert response.status_code == 202, response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/webhooks/papertrail?" in line for line in logged), logged
    assert not any("hook-secret" in line or "hook%2Dsecret" in line for line in logged), logged
    assert any("[redacted]" in line for line in logged)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ('a="&token=hook-secret', 202),  # red-team F12: the redaction regex stopped at the quote
        ("a=%22&token=hook-secret", 202),
        ("a='&token=hook-secret", 202),
        ('status="&token=hook-secret', 202),  # after a parameter the API documents
        ("token=wrong&token=hook-secret", 422),  # repeated: refused (api.deps.unambiguous_request)
        ("token=hook-secret#&frag", 202),
        ("x=1;token=hook-secret", 401),  # not a separator to the server, but to others
        ("TOKEN=hook-secret", 401),
        ("token%3Dhook-secret", 401),
        ("a=%26token%3Dhook-secret", 401),
        ("hook-secret", 401),
    ],
)
async def test_no_spelling_of_a_query_secret_reaches_the_access_log(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, query: str, status: int
) -> None:
    """Sent as raw bytes, as a client that does not normalise its URL sends them: whatever
    the server makes of the query, the access line keeps no secret and still names the route."""
    url = httpx.URL(str(http.base_url))
    assert url.host and url.port
    body = json.dumps({"events": [good_event(uuid.uuid4().hex)]}).encode()
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            f"POST /webhooks/papertrail?{query} HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Content-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    logged = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/webhooks/papertrail?" in line for line in logged), logged
    assert not any("hook-secret" in line for line in logged), logged


async def test_a_url_an_http_client_logs_keeps_no_query_secret(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs each request's URL: confirming an SNS subscription fetches a `SubscribeURL`
    whose `Token` confirms it."""
    confirm = httpx.URL(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
        "&TopicArn=arn:aws:sns:us-east-1:123456789012:logs&Token=2336412f37fb687f5d51e6e2425"
    )
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s %d %s"', "GET", confirm, "HTTP/1.1", 200, "OK"
        )
    [line] = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert "2336412f37" not in line and "Token=[redacted]" in line, line
    assert line.startswith("HTTP Request: GET https://sns.us-east-1.amazonaws.com/?Action=")


async def test_every_line_of_a_text_body_is_answered_and_only_real_markers_skipped(
    http: httpx.AsyncClient,
) -> None:
    """The report: lines merely shaped like a saved journalctl or `log show` header (`-- ...
    --`, `Log - x: ...`) were skipped without a result, 1 result for 4 lines, so a line could
    hide behind the shape. They are records now; a real marker is answered `non_event`."""
    lines = [
        f"Nov 27 01:02:03 bastion sshd[{uuid.uuid4().int % 10**6}]: {ssh_line('alice')}",
        "-- BREAKGLASS user=mallory --",
        "-" * 60,  # `log show`'s rule above its summary
        "Log - x: Accepted publickey for carol",
        "-- Boot 3f2b1c0e9d8a4b7c8e6f5a4b3c2d1e0f --",
        "-- Boot not-a-boot-id --",
    ]
    response = await http.post(
        "/webhooks/json",
        content="\n".join(lines) + "\n",
        headers={**WEBHOOK_HEADERS, "Content-Type": "text/plain"},
    )
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(lines)))
    assert [(r["status"], r["rule_id"]) for r in results] == [
        ("started", "sshd-accepted"),
        ("unmatched", None),
        ("non_event", None),
        ("unmatched", None),
        ("non_event", None),
        ("unmatched", None),
    ]
    assert "journalctl" in results[4]["reason"]
