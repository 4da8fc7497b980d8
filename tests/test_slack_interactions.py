"""Slack interactivity over HTTP on the real dev server: signatures and replay window, a click can
only decide the event whose message it was on, retries are taken once, and Slack is answered
quickly even when Temporal is slow."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.contracts.approval import Action
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.sandbox.interactions import signed_request, slash_command_fields
from powertrip.settings import Settings
from tests.harness import (
    API_HEADERS,
    click_request,
    decide,
    deliver_login,
    eventually,
    logins_asked,
    make_config,
    make_settings,
    message_for,
    running_worker,
)
from tests.servers import ServedApp
from tests.tcp_delay import DelayProxy
from workflows.approval import ApprovalWorkflow


async def signals(dev_env: WorkflowEnvironment, event_id: str) -> int:
    history = [e async for e in dev_env.client.get_workflow_handle(event_id).fetch_history_events()]
    return sum(e.HasField("workflow_execution_signaled_event_attributes") for e in history)


async def last_entry(http: httpx.AsyncClient, event_id: str, what: str) -> dict[str, Any] | None:
    """The event's last timeline entry, if it is a `what`."""
    view = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
    entry: dict[str, Any] = view["timeline"][-1]
    return entry if entry["what"] == what else None


async def status_of(http: httpx.AsyncClient, event_id: str) -> str:
    return str((await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()["status"])


async def test_bad_signature_stale_or_missing_timestamp_is_refused(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        reply_to = slack_api_url.replace("/api/", "/response/x")

        stale_body, stale = click_request(
            "U0ALICE", "approve", event_id, dm, reply_to, timestamp=int(time.time()) - 6 * 60
        )
        response = await http.post("/slack/interactions", content=stale_body, headers=stale)
        assert response.status_code == 401 and "stale" in response.json()["detail"]

        body, headers = click_request("U0ALICE", "approve", event_id, dm, reply_to)
        forged = {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
        response = await http.post("/slack/interactions", content=body, headers=forged)
        assert response.status_code == 401 and "signature" in response.json()["detail"]

        tampered = body.replace(b"U0ALICE", b"U0SEC1")
        response = await http.post("/slack/interactions", content=tampered, headers=headers)
        assert response.status_code == 401

        no_stamp = {k: v for k, v in headers.items() if k != "X-Slack-Request-Timestamp"}
        response = await http.post("/slack/interactions", content=body, headers=no_stamp)
        assert response.status_code == 401

        assert await signals(dev_env, event_id) == 0
        assert await status_of(http, event_id) == "pending"


async def test_a_click_on_event_a_can_never_decide_event_b(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    async with running_worker(dev_env.client, settings):
        (event_a, dm_a), (event_b, _) = await logins_asked(http, fake_slack, 2)
        reply_to = slack_api_url.replace("/api/", "/response/ab")

        # Alice's click on A's message, with the button value pointing at B (as a modified
        # client or a mixed-up payload would send): B is not decided, and neither is A; B's
        # timeline shows the attempt.
        body, headers = click_request("U0ALICE", "approve", event_b, dm_a, reply_to)
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        [reply] = await eventually(lambda: fake_slack.responses, within=15)
        assert "does not belong" in reply["text"]
        await eventually(lambda: last_entry(http, event_b, "refused"))
        assert await signals(dev_env, event_b) == 1
        assert (await status_of(http, event_a), await status_of(http, event_b)) == (
            "pending",
            "pending",
        )

        # The real button on A decides A only.
        body, headers = click_request("U0ALICE", "approve", event_a, dm_a, reply_to)
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        await dev_env.client.get_workflow_handle(event_a).result()
        assert await status_of(http, event_a) == "approved"
        assert await status_of(http, event_b) == "pending"
        # Let B finish too, so it does not linger on the shared dev server.
        await decide(dev_env.client.get_workflow_handle(event_b), Action.APPROVE, "U0ALICE")


async def test_button_value_never_grants_authority(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    # Alice may contest the team's approval on her behalf for a second, not a week.
    config = make_config(contest_window="1s")
    async with running_worker(dev_env.client, settings, config):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        reply_to = slack_api_url.replace("/api/", "/response/mallory")
        # Mallory presses "Approve on behalf" (a security-team button) on Alice's event, and a
        # button that Powertrip never posted: both refused; the first leaves a trace.
        body, headers = click_request("U0MALLORY", "approve_on_behalf", event_id, dm, reply_to)
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        [reply] = await eventually(lambda: fake_slack.responses)
        assert "not allowed" in reply["text"]
        body, headers = click_request("U0SEC1", "grant_admin", event_id, dm, reply_to)
        response = await http.post("/slack/interactions", content=body, headers=headers)
        assert response.status_code == 400
        assert await signals(dev_env, event_id) == 1
        assert await status_of(http, event_id) == "pending"
        # The security team's "Approve on behalf" is an approval on behalf.
        body, headers = click_request("U0SEC1", "approve_on_behalf", event_id, dm, reply_to)
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        record = await dev_env.client.get_workflow_handle_for(
            ApprovalWorkflow.run, event_id
        ).result()
    assert record.status is EventStatus.APPROVED
    assert record.decision is not None
    assert (record.decision.by, record.decision.on_behalf) == ("U0SEC1", True)


async def test_slack_retries_and_double_clicks_decide_once(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        reply_to = slack_api_url.replace("/api/", "/response/retry")
        body, headers = click_request("U0ALICE", "approve", event_id, dm, reply_to)
        for retry in range(3):
            extra = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            response = await http.post(
                "/slack/interactions", content=body, headers={**headers, **(extra if retry else {})}
            )
            assert response.status_code == 200
        assert await signals(dev_env, event_id) == 1  # the retries were taken once
        # A real double click is two requests; the second finds the event decided.
        body2, headers2 = click_request("U0ALICE", "approve", event_id, dm, reply_to)
        await http.post("/slack/interactions", content=body2, headers=headers2)
        handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
        record = await handle.result()
        history = await handle.fetch_history()
    assert [e.what.value for e in record.timeline].count("approved") == 1
    await eventually(lambda: dm.updates >= 1)
    # The message is updated by the task that decided, which also completes the workflow (patch
    # `local-message-updates`); a second click arriving meanwhile makes Temporal refuse that
    # completion, and the task's rerun updates the message again (the same approval).
    reruns = sum(
        e.workflow_task_failed_event_attributes.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
        for e in history.events
    )
    assert sum(m.updates for m in fake_slack.messages.values()) == 1 + reruns


async def test_slack_is_answered_quickly_while_temporal_is_slow(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    host, port = dev_env.client.service_client.config.target_host.rsplit(":", 1)
    fast = make_settings(slack_api_url, temporal_address=f"{host}:{port}")
    async with DelayProxy(host, int(port), delay=1.0) as proxy:
        slow = fast.model_copy(update={"temporal_address": proxy.address})
        async with (
            ServedApp(create_app(fast)) as fast_app,
            ServedApp(create_app(slow)) as slow_app,
            httpx.AsyncClient(timeout=10) as http,
            running_worker(dev_env.client, fast),
        ):
            fast_http = httpx.AsyncClient(base_url=fast_app.url, timeout=10)
            event_id = await deliver_login(fast_http)
            dm = await eventually(lambda: message_for(fake_slack, event_id))
            body, headers = click_request(
                "U0ALICE", "approve", event_id, dm, slack_api_url.replace("/api/", "/response/s")
            )
            started = time.monotonic()
            response = await http.post(
                f"{slow_app.url}/slack/interactions", content=body, headers=headers
            )
            answered = time.monotonic() - started
            assert response.status_code == 200
            assert answered < 1.0, f"Slack waited {answered:.2f}s"
            # The click still lands once Temporal answers.
            record = await dev_env.client.get_workflow_handle_for(
                ApprovalWorkflow.run, event_id
            ).result()
            await fast_http.aclose()
    assert record.status is EventStatus.APPROVED


async def test_an_unreadable_or_oversized_slack_request_is_refused_with_a_reason(
    served: tuple[httpx.AsyncClient, Settings],
) -> None:
    """Signed requests Bolt cannot read get a 4xx that says why; the door stays open after."""
    http, settings = served
    assert settings.slack_signing_secret is not None
    secret = settings.slack_signing_secret.get_secret_value()

    def signed(body: bytes) -> dict[str, str]:
        # Slack's v0 signature by hand: slack_sdk's own signer cannot sign bytes that are not UTF-8.
        stamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
        }

    for body in (b"payload=\xff\xfe", b"payload=%7Bnot+json"):
        response = await http.post("/slack/interactions", content=body, headers=signed(body))
        assert response.status_code == 400, (body, response.text)
        assert "unsupported interaction" in response.json()["detail"]
    huge = b"payload=" + b"x" * settings.max_body_bytes
    response = await http.post("/slack/interactions", content=huge, headers=signed(huge))
    assert response.status_code == 413
    assert "body over" in response.json()["detail"]
    # The next request, a slash command, is read and answered as usual.
    fields = slash_command_fields("U0ALICE", "help")
    body, headers = signed_request(secret, {}, form=fields)
    response = await http.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert "/powertrip" in response.json()["text"]


async def test_the_events_request_url_answers_slacks_challenge(
    served: tuple[httpx.AsyncClient, Settings],
) -> None:
    """Saving the manifest's Events request URL: Slack posts a signed `url_verification` and
    accepts the URL only if the challenge comes back; an unsigned one is refused."""
    http, settings = served
    assert settings.slack_signing_secret is not None
    secret = settings.slack_signing_secret.get_secret_value()
    challenge = {"type": "url_verification", "token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV"}
    body, headers = signed_request(secret, challenge, as_json=True)
    response = await http.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV"}
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    response = await http.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 401
