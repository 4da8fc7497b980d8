"""A decision counts only if the component that verified the human signed it: forged, replayed
and misdirected `decide` signals change nothing and are recorded as rejected. Through the real
interfaces: the `temporal` CLI against the dev server, signed Slack requests to the API, and the
worker that verifies them."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from powertrip.binaries import temporal_cli
from powertrip.contracts.approval import Action, EventRecord, Verdict
from powertrip.models import CredentialRef, EventStatus, StepUpMethod
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.settings import Settings
from powertrip.signing import Signer, signed_click, verify
from tests.harness import (
    API_HEADERS,
    deliver_login,
    eventually,
    logins_asked,
    make_config,
    message_for,
    running_worker,
    slack_click,
)
from tests.servers import CLI_DECISION_KEY, SECURITY_CHANNEL
from workflows.approval import ApprovalWorkflow


def temporal_signal(dev_env: WorkflowEnvironment, workflow_id: str, payload: str) -> None:
    """`temporal workflow signal ... --name decide`: what anyone who reaches Temporal can run."""
    subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "signal",
            "--address",
            dev_env.client.service_client.config.target_host,
            "--namespace",
            dev_env.client.namespace,
            "--workflow-id",
            workflow_id,
            "--name",
            "decide",
            "--input",
            payload,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def view_of(http: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)
    view: dict[str, Any] = response.json()
    return view


async def timeline_has(
    http: httpx.AsyncClient, event_id: str, what: str, count: int = 1
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        view = await view_of(http, event_id)
        return view if [e["what"] for e in view["timeline"]].count(what) >= count else None

    return await eventually(probe, within=20)


def replies_at_least(fake: FakeSlack, count: int) -> list[dict[str, Any]] | None:
    """The ephemeral replies sent so far, once there are `count` of them."""
    return fake.responses if len(fake.responses) >= count else None


async def test_a_forged_decide_signal_from_the_temporal_cli_changes_nothing(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        # The example, and the same with a made-up signature and nonce.
        forged = {"action": "approve", "user": "U0ALICE", "at": "2026-11-27T01:00:00Z"}
        temporal_signal(dev_env, event_id, json.dumps({**forged, "via": "slack"}))
        made_up = {**forged, "nonce": "n1", "signature": "v1=" + "ab" * 32}
        await asyncio.to_thread(temporal_signal, dev_env, event_id, json.dumps(made_up))
        view = await timeline_has(http, event_id, "rejected", count=2)
        assert view["status"] == "pending" and view["decision"] is None
        unsigned, bad = [e for e in view["timeline"] if e["what"] == "rejected"]
        assert unsigned["by"] is None and "'U0ALICE'" in unsigned["detail"]
        assert unsigned["detail"].endswith("unsigned")
        assert "bad signature" in bad["detail"]

        # Alice's real click through Slack counts, at the time the workflow received it.
        sent = datetime.now(UTC)
        reply_to = slack_api_url.replace("/api/", "/response/forged")
        response = await slack_click(
            http, "U0ALICE", "approve", event_id, dm, reply_to, name="alice"
        )
        assert response.status_code == 200
        record: EventRecord = await dev_env.client.get_workflow_handle_for(
            ApprovalWorkflow.run, event_id
        ).result()
    decision = record.decision
    assert record.status is EventStatus.APPROVED and decision is not None
    assert (decision.by, decision.name, decision.via, decision.authenticated) == (
        "U0ALICE",
        "alice",
        "slack",
        True,
    )
    assert decision.requested_at is not None and sent <= decision.requested_at <= decision.at
    assert decision.at.year == 2026 and decision.at >= sent


async def test_a_signed_decision_replayed_or_sent_to_another_event_is_rejected(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    async with running_worker(dev_env.client, settings):
        (event_a, dm_a), (event_b, _) = await logins_asked(http, fake_slack, 2)
        reply_to = slack_api_url.replace("/api/", "/response/replay")
        # Alice reports A: a real, signed decision, readable by anyone who can read A's history.
        await slack_click(http, "U0ALICE", "not_me", event_a, dm_a, reply_to)
        await timeline_has(http, event_a, "reported")
        history = dev_env.client.get_workflow_handle(event_a).fetch_history_events()
        [signed] = [
            e.workflow_execution_signaled_event_attributes.input.payloads[0].data.decode()
            async for e in history
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert '"signature":"v1=' in signed

        await asyncio.to_thread(temporal_signal, dev_env, event_a, signed)
        await asyncio.to_thread(temporal_signal, dev_env, event_b, signed)
        view_a = await timeline_has(http, event_a, "rejected")
        view_b = await timeline_has(http, event_b, "rejected")
    assert "replayed" in view_a["timeline"][-1]["detail"]
    assert [e["what"] for e in view_a["timeline"]].count("reported") == 1
    assert view_a["status"] == "reported" and view_a["report"]["by"] == "U0ALICE"
    assert "bad signature" in view_b["timeline"][-1]["detail"]
    assert view_b["status"] == "pending" and view_b["report"] is None


async def test_the_clis_key_can_record_an_override_never_the_owners_own_click(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    """Red team F10: every `events approve` operator holds the CLI's key. Used without the CLI,
    it signs alice's own click (`via: slack`, no operator), or her *Not me*, or an "override"
    in her name: each is rejected or refused. With the API's key the same click counts: the API
    is the one signer that vouches for Slack."""
    http, settings = served
    async with running_worker(dev_env.client, settings):
        (event_id, dm), (other_id, _) = await logins_asked(http, fake_slack, 2)
        forgeries = [
            signed_click(CLI_DECISION_KEY, event_id, Action.APPROVE, "U0ALICE", name="alice"),
            signed_click(CLI_DECISION_KEY, event_id, Action.APPROVE, "U0ALICE", via="Slack"),
            signed_click(CLI_DECISION_KEY, event_id, Action.REPORT, "U0SEC1", via="cli"),
        ]
        for forged in forgeries:
            payload = forged.model_dump_json(exclude_none=True)
            await asyncio.to_thread(temporal_signal, dev_env, event_id, payload)
        view = await timeline_has(http, event_id, "rejected", count=len(forgeries))
        rejected = [e["detail"] for e in view["timeline"] if e["what"] == "rejected"]
        assert all("signed with the CLI's key" in detail for detail in rejected), rejected
        # Dressed as an operator's override in alice's name: it is one (via cli), and only the
        # security team overrides.
        override = signed_click(
            CLI_DECISION_KEY, event_id, Action.APPROVE, "U0ALICE", via="cli", operator="x@y"
        )
        await asyncio.to_thread(
            temporal_signal, dev_env, event_id, override.model_dump_json(exclude_none=True)
        )
        view = await timeline_has(http, event_id, "refused")
        assert "only the security team may decide from the CLI" in view["timeline"][-1]["detail"]
        assert view["status"] == "pending" and view["decision"] is None

        # The CLI's key still does its job: the team's override, recorded as one.
        override = signed_click(
            CLI_DECISION_KEY,
            other_id,
            Action.APPROVE,
            "U0SEC1",
            via="cli",
            reason="on call",
            operator="root@admin-1",
        )
        await asyncio.to_thread(
            temporal_signal, dev_env, other_id, override.model_dump_json(exclude_none=True)
        )
        other = await timeline_has(http, other_id, "approved")
        # And alice's real click, through Slack and the API, counts.
        reply_to = slack_api_url.replace("/api/", "/response/cli-key")
        await slack_click(http, "U0ALICE", "approve", event_id, dm, reply_to, name="alice")
        view = await timeline_has(http, event_id, "approved")
    assert (other["decision"]["by"], other["decision"]["via"]) == ("U0SEC1", "cli")
    assert other["decision"]["operator"] == "root@admin-1" and other["decision"]["on_behalf"]
    d = view["decision"]
    assert (d["by"], d["via"], d["on_behalf"], d["authenticated"], d["operator"]) == (
        "U0ALICE",
        "slack",
        False,
        True,
        None,
    )


def test_a_key_per_signer_binds_what_it_may_sign_and_keeps_rotation() -> None:
    """What the worker's verifier answers, key by key: each signer's current and previous key
    verify what that signer may sign; the CLI's never a Slack click; a decision signed before
    the keys were split (one key, now the API's) still verifies, whatever its `via`."""
    old, new, cli_old, cli_new = ("o" * 32, "n" * 32, "c" * 32, "d" * 32)
    keys = {Signer.API: [new, old], Signer.CLI: [cli_new, cli_old]}

    def verdict(key: str, action: Action = Action.APPROVE, **fields: Any) -> Verdict:
        return verify(keys, "e1", signed_click(key, "e1", action, "U0ALICE", **fields))

    for key in (new, old):
        assert verdict(key) == Verdict(authentic=True, signer="api")
        # An older CLI's override, signed with the one shared key: still verifies.
        assert verdict(key, via="cli", operator="root@h").authentic
    for key in (cli_new, cli_old):
        assert verdict(key, via="cli") == Verdict(authentic=True, signer="cli")
        assert not verdict(key).authentic  # via slack
        assert not verdict(key, Action.REPORT, via="cli").authentic
        # A field the CLI never sets (here the Slack reply address, as a stand-in for one a
        # later release gives a meaning) is not the CLI's.
        assert not verdict(key, via="cli", response_url="https://hooks.example.com/x").authentic
        # Nor a step-up's proof: only the API vouches that a passkey answered.
        stepped_up = verdict(
            key,
            via="cli",
            step_up=StepUpMethod.PASSKEY,
            credential=CredentialRef(credential_id="Y3JlZC0x", label="MacBook"),
        )
        assert not stepped_up.authentic
        assert "carrying credential, step_up" in str(stepped_up.reason)
    assert verdict(new, step_up=StepUpMethod.PASSKEY).authentic  # the API's, via slack
    assert "bad signature" in str(verdict("x" * 32).reason)
    only_api = verify({Signer.API: [new]}, "e1", signed_click(cli_new, "e1", Action.APPROVE, "U1"))
    assert not only_api.authentic


async def test_a_click_without_a_message_container_is_checked_and_refused(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    """Issue 10 §7: a click that names no message used to skip "this message belongs to this
    event" and decide any event whose id it carried."""
    http, settings = served
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        reply_to = slack_api_url.replace("/api/", "/response/nocontainer")
        for container in ({}, {"type": "view", "view_id": "V1"}):
            response = await slack_click(
                http, "U0ALICE", "approve", event_id, None, reply_to, container=container
            )
            assert response.status_code == 200
        # The same click from a message of the event's own, but a view container naming it.
        view_container = {"type": "view", "channel_id": dm.channel, "message_ts": dm.ts}
        await slack_click(
            http, "U0ALICE", "approve", event_id, None, reply_to, container=view_container
        )
        replies = await eventually(lambda: replies_at_least(fake_slack, 3))
        assert all("does not belong" in r["text"] for r in replies)
        view = await timeline_has(http, event_id, "refused", count=3)
    assert view["status"] == "pending" and view["decision"] is None
    assert all(
        "names no message" in e["detail"] for e in view["timeline"] if e["what"] == "refused"
    )


async def test_not_me_racing_an_approval_on_behalf_is_never_dropped(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    """Alice's *Not me* and the team's *Approve on behalf* at the same moment, and the *Not me*
    just after the approval (the API used to answer "already approved")."""
    http, settings = served
    config = make_config(contest_window="1h")
    async with running_worker(dev_env.client, settings, config):
        reply_to = slack_api_url.replace("/api/", "/response/race")
        dms = dict(await logins_asked(http, fake_slack, 4))
        *together, after = dms

        await asyncio.gather(
            *(
                click
                for e in together
                for click in (
                    slack_click(http, "U0SEC1", "approve_on_behalf", e, dms[e], reply_to),
                    slack_click(http, "U0ALICE", "not_me", e, dms[e], reply_to),
                )
            )
        )
        await slack_click(http, "U0SEC1", "approve_on_behalf", after, dms[after], reply_to)
        approved = await timeline_has(http, after, "approved")
        assert approved["status"] == "approved" and approved["contest_until"]
        await slack_click(http, "U0ALICE", "not_me", after, dms[after], reply_to)

        for event_id in [*together, after]:
            view = await timeline_has(http, event_id, "reported")
            assert view["status"] == "reported", event_id
            assert view["report"]["by"] == "U0ALICE"
            await eventually(partial(message_for, fake_slack, event_id, SECURITY_CHANNEL))
        view = await view_of(http, after)
        assert view["contested"]["by"] == "U0SEC1" and view["decision"] is None
    assert not [r for r in fake_slack.responses if "already" in r["text"]]


async def test_refusals_name_who_may_do_what(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    """Issue 17: alice pressing *Acknowledge* on the alert about her own *Not me* was told
    "Only @alice or the security team can"."""
    http, settings = served
    async with running_worker(dev_env.client, settings):
        event_id = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, event_id))
        reply_to = slack_api_url.replace("/api/", "/response/refusals")

        await slack_click(http, "U0MALLORY", "approve", event_id, dm, reply_to)
        [mallory] = await eventually(lambda: fake_slack.responses)
        assert mallory["text"] == (
            ":no_entry: You are not allowed to approve this event: only <@U0ALICE> or the "
            "security team can."
        )
        await slack_click(http, "U0ALICE", "not_me", event_id, dm, reply_to)
        alert = await eventually(lambda: message_for(fake_slack, event_id, SECURITY_CHANNEL))
        await timeline_has(http, event_id, "reported")
        await slack_click(http, "U0ALICE", "acknowledge", event_id, alert, reply_to)
        replies = await eventually(lambda: replies_at_least(fake_slack, 2))
        assert replies[1]["text"] == (
            ":no_entry: Only the security team can acknowledge this incident; you reported it, "
            "and they have been alerted."
        )
        view = await timeline_has(http, event_id, "refused", count=2)
    refused = [e for e in view["timeline"] if e["what"] == "refused"]
    # The record names people as plain text, not as Slack mentions.
    assert "only @alice (U0ALICE) or the security team" in refused[0]["detail"]
    assert all("<@" not in (e["detail"] or "") for e in view["timeline"])
    assert view["status"] == "reported"


async def test_after_the_contest_window_or_the_workflow_the_clicker_is_told_what_to_do(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    http, settings = served
    config = make_config(contest_window="1s")
    async with running_worker(dev_env.client, settings, config):
        reply_to = slack_api_url.replace("/api/", "/response/late")
        contested = await deliver_login(http)
        ended = await deliver_login(http)
        dm = await eventually(lambda: message_for(fake_slack, contested))
        dm_ended = await eventually(lambda: message_for(fake_slack, ended))
        await slack_click(http, "U0SEC1", "approve_on_behalf", contested, dm, reply_to)
        await dev_env.client.get_workflow_handle(contested).result()
        # The workflow ended without a decision (an operator terminated it): the record still
        # says pending, but the click cannot be recorded, and the clicker hears so.
        await dev_env.client.get_workflow_handle(ended).terminate("test")

        await slack_click(http, "U0ALICE", "not_me", contested, dm, reply_to)
        await slack_click(http, "U0ALICE", "not_me", ended, dm_ended, reply_to)
        late, closed = await eventually(lambda: replies_at_least(fake_slack, 2))
    assert "already approved" in late["text"] and "time to report it has passed" in late["text"]
    assert "not recorded" in closed["text"] and "tell the security team" in closed["text"]
