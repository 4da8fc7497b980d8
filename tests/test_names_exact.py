"""Unix user names are compared exactly: `ALICE` is not `alice`, neither when deciding whom to
ask nor when the HIDS asks about a login. A source may fold case where its systems do."""

from __future__ import annotations

import uuid

import httpx
from temporalio.testing import WorkflowEnvironment

from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.sandbox.interactions import block_action_payload, signed_request
from powertrip.settings import Settings
from tests.harness import (
    API_HEADERS,
    WEBHOOK_HEADERS,
    alert,
    eventually,
    make_config,
    message_for,
    papertrail_event,
    running_worker,
    ssh_line,
)
from tests.servers import SECURITY_CHANNEL, SIGNING_SECRET
from workflows.approval import ApprovalWorkflow


async def post_login(http: httpx.AsyncClient, user: str, host: str) -> str:
    event = papertrail_event(uuid.uuid4().hex[:12], user, host=host)
    response = await http.post("/webhooks/papertrail", json=alert(event), headers=WEBHOOK_HEADERS)
    [result] = response.json()["results"]
    assert result["status"] == "started", result
    return str(result["event_id"])


async def match(http: httpx.AsyncClient, host: str, user: str) -> dict:
    params = {"host": host, "user": user, "at": "2026-11-27T09:02:03Z", "window": "1m"}
    response = await http.get("/v1/approvals/match", params=params, headers=API_HEADERS)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_upper_case_user_is_not_dmd_to_alice_nor_answers_for_her(
    served: tuple[httpx.AsyncClient, Settings], dev_env: WorkflowEnvironment, fake_slack: FakeSlack
) -> None:
    """The issue's example: `Accepted publickey for ALICE` went to alice's DM and, once
    approved, `match user=alice` said approved. ALICE is another (unmapped) account."""
    http, settings = served
    host = f"exact-{uuid.uuid4().hex[:6]}"
    async with running_worker(dev_env.client, settings):
        event_id = await post_login(http, "ALICE", host)
        posted = await eventually(lambda: message_for(fake_slack, event_id))
        assert posted.channel == SECURITY_CHANNEL  # unmapped: the channel decides
        assert not any(m.channel == "D0ALICE" for m in fake_slack.messages.values())
        # The security team approves on ALICE's behalf, by a signed click in the channel.
        body, headers = signed_request(
            SIGNING_SECRET,
            block_action_payload(
                "U0SEC1",
                "approve_on_behalf",
                event_id,
                channel=posted.channel,
                message_ts=posted.ts,
            ),
        )
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
        await handle.result()

    async def answered() -> dict | None:
        upper = await match(http, host, "ALICE")
        return upper if upper["approved"] else None

    assert [e["event_id"] for e in (await eventually(answered, within=15))["events"]] == [event_id]
    for other in ("alice", "Alice", "alice ", "ALICE\u200b"):
        assert (await match(http, host, other))["answer"] == "not_found", other


async def test_a_case_insensitive_source_folds_case_for_its_own_events_only(
    served: tuple[httpx.AsyncClient, Settings], dev_env: WorkflowEnvironment, fake_slack: FakeSlack
) -> None:
    http, settings = served
    config = make_config(sources={"papertrail": {"case_insensitive_users": True}})
    host = f"fold-{uuid.uuid4().hex[:6]}"
    async with running_worker(dev_env.client, settings, config):
        event_id = await post_login(http, "ALICE", host)
        posted = await eventually(lambda: message_for(fake_slack, event_id))
        assert posted.channel == "D0ALICE"
        # Another source's upper-case actor stays another account.
        line = f"Nov 27 09:02:03 {host} sshd[7]: {ssh_line('ALICE', '192.0.2.1', 1)}"
        response = await http.post(
            "/webhooks/json",
            json={"message": line, "id": uuid.uuid4().hex},
            headers=WEBHOOK_HEADERS,
        )
        [result] = response.json()["results"]
        other = await eventually(lambda: message_for(fake_slack, result["event_id"]))
        assert other.channel == SECURITY_CHANNEL
