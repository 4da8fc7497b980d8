"""The whole SSH slice over HTTP on the real Temporal dev server: Papertrail webhook in, DM out
through the fake Slack, a signed click approves, the record says so."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from temporalio.testing import WorkflowEnvironment

from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.sandbox.interactions import block_action_payload, signed_request
from powertrip.settings import Settings
from tests.harness import (
    API_HEADERS,
    WEBHOOK_HEADERS,
    alert,
    deliver_login,
    eventually,
    message_for,
    papertrail_event,
    running_worker,
    state_eventually,
)
from tests.servers import SIGNING_SECRET
from workflows.approval import ApprovalWorkflow


async def test_webhook_to_dm_to_signed_click_to_approved_record(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    provider_id = uuid.uuid4().int % 10**12
    form = urlencode({"payload": json.dumps(alert(papertrail_event(provider_id)))})
    async with running_worker(dev_env.client, settings):
        response = await http.post(
            "/webhooks/papertrail?token=hook-secret",
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 202
        [result] = response.json()["results"]
        assert result["status"] == "started"
        event_id = result["event_id"]
        assert event_id == f"papertrail-{provider_id}"

        # A retried delivery (JSON this time) is the same event: no second workflow, no second DM.
        again = await http.post(
            "/webhooks/papertrail",
            json=alert(papertrail_event(provider_id)),
            headers=WEBHOOK_HEADERS,
        )
        assert again.json()["results"][0]["status"] == "duplicate"

        dm = (
            await eventually(
                lambda: [m for m in fake_slack.messages.values() if m.channel == "D0ALICE"]
            )
        )[0]

        # The DM goes out from the workflow's first task; the record shows it once that task
        # completes (a moment later).
        async def asked() -> dict[str, Any] | None:
            view = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
            return view if view["asked"] is not None else None

        pending = await eventually(asked)
        assert (pending["status"], pending["actor"], pending["host"]) == (
            "pending",
            "alice",
            "bastion",
        )
        assert pending["decision"] is None and pending["asked"] == "@alice (U0ALICE)"

        body, headers = signed_request(
            SIGNING_SECRET,
            block_action_payload(
                "U0ALICE",
                "approve",
                event_id,
                channel=dm.channel,
                message_ts=dm.ts,
                response_url=slack_api_url.replace("/api/", "/response/click"),
            ),
        )
        click = await http.post("/slack/interactions", content=body, headers=headers)
        assert click.status_code == 200

        async def approved() -> dict | None:
            view = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
            return view if view["status"] == EventStatus.APPROVED else None

        record = await eventually(approved)
        assert record["decision"]["by"] == "U0ALICE"
        await eventually(lambda: dm.updates >= 1)
        assert "Approved" in dm.text

        # Delivered again after the event is closed: still the same event.
        late = await http.post(
            "/webhooks/papertrail",
            json=alert(papertrail_event(provider_id)),
            headers=WEBHOOK_HEADERS,
        )
        assert late.json()["results"][0]["status"] == "duplicate"

    assert len([m for m in fake_slack.messages.values() if m.channel == "D0ALICE"]) == 1


async def test_click_while_workers_are_down_is_not_lost(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    provider_id = f"down-{uuid.uuid4().hex[:10]}"
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http, provider_id=provider_id)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        # The worker goes down only once the workflow has recorded its DM (a click is checked
        # against the messages the event recorded; one on a DM it never recorded is refused).
        handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
        await state_eventually(handle, lambda record: bool(record.messages))
    # No worker now. The click is accepted, answered at once, and waits in the workflow history.
    body, headers = signed_request(
        SIGNING_SECRET,
        block_action_payload("U0ALICE", "approve", event_id, channel=dm.channel, message_ts=dm.ts),
    )
    click = await http.post("/slack/interactions", content=body, headers=headers)
    assert click.status_code == 200
    assert (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()[
        "status"
    ] == "pending"
    async with running_worker(dev_env.client, settings):
        record = await handle.result()
    assert record.status is EventStatus.APPROVED
    view = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
    assert view["status"] == "approved" and view["decision"]["by"] == "U0ALICE"


async def test_wrong_user_gets_an_ephemeral_refusal_and_only_a_trace_is_recorded(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    provider_id = f"wrong-{uuid.uuid4().hex[:10]}"
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http, provider_id=provider_id)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        body, headers = signed_request(
            SIGNING_SECRET,
            block_action_payload(
                "U0MALLORY",
                "approve",
                event_id,
                channel=dm.channel,
                message_ts=dm.ts,
                response_url=slack_api_url.replace("/api/", "/response/mallory"),
            ),
        )
        click = await http.post("/slack/interactions", content=body, headers=headers)
        assert click.status_code == 200
        [reply] = await eventually(lambda: fake_slack.responses)
        assert reply["response_type"] == "ephemeral" and "not allowed" in reply["text"]

        async def traced() -> dict | None:
            view = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
            return view if view["timeline"][-1]["what"] == "refused" else None

        view = await eventually(traced)
        assert view["status"] == "pending" and view["decision"] is None
        assert view["timeline"][-1]["by"] == "U0MALLORY"


async def test_bad_signature_and_stale_timestamp_change_nothing(
    served: tuple[httpx.AsyncClient, Settings],
    fake_slack: FakeSlack,
) -> None:
    http, _ = served
    payload = block_action_payload("U0SEC1", "approve", "papertrail-nonexistent")
    body, headers = signed_request("not-the-secret", payload)
    assert (
        await http.post("/slack/interactions", content=body, headers=headers)
    ).status_code == 401
    body, headers = signed_request(SIGNING_SECRET, payload, timestamp=1_000_000_000)
    assert (
        await http.post("/slack/interactions", content=body, headers=headers)
    ).status_code == 401
    assert fake_slack.responses == []
