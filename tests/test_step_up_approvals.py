"""Step-up approvals from Slack, without a browser: *Approve* on a step-up event answers with a
one-time link and approves nothing, a plain approval is refused by the workflow itself, *Not me*
stays one click, a user without a passkey is told how to register, the CLI override refuses, and
refused step-ups reach the event's timeline. The passkey ceremony itself runs in a real browser
in tests/test_step_up_browser.py. Against the real API, worker and time-skipping server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.config import ConfigError
from powertrip.contracts.approval import Action, EventRecord, TimelineKind
from powertrip.contracts.passkeys import Refusal, StepUpRefused
from powertrip.models import CredentialRef, EventStatus, RawEvent, StepUpMethod
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.services.audit import DecisionRow
from powertrip.services.decisions import Refused, approve_as_security, deliver_step_up
from powertrip.services.hids import MatchedEvent, MatchQuestion
from powertrip.services.stepup import announce_enrollment, passkeys_of
from powertrip.services.views import EventView
from powertrip.settings import Settings, SettingsError
from powertrip.signing import signed_click
from powertrip.webui import WebUi
from tests.harness import (
    API_HEADERS,
    STEP_UP_CONFIG_YAML,
    add_passkey,
    buttons,
    decide,
    deliver_login,
    eventually,
    make_config,
    make_settings,
    message_for,
    passkey,
    slack_click,
    slash_command,
    ssh_line,
    state_eventually,
    step_up_api,
    text_of,
)
from tests.servers import CLI_DECISION_KEY, DECISION_KEY
from workflows.approval import ApprovalWorkflow

LINK = re.compile(r"<(http://localhost:\d+/verify/[^|>]+)\|")


@dataclass
class Stack:
    client: Client
    settings: Settings
    http: httpx.AsyncClient
    slack: FakeSlack
    reply_to: str


@pytest.fixture
async def stack(
    time_skipping_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    async with (
        step_up_api(time_skipping_env, slack_api_url, tmp_path) as settings,
        httpx.AsyncClient(base_url=settings.public_url or "", timeout=15) as http,
    ):
        reply_to = slack_api_url.replace("/api/", "/response/stepup")
        yield Stack(time_skipping_env.client, settings, http, fake_slack, reply_to)


async def asked(stack: Stack) -> tuple[WorkflowHandle, str]:
    """A step-up login of alice's, asked in her DM: its handle and id."""
    event_id = await deliver_login(stack.http)
    await eventually(lambda: message_for(stack.slack, event_id))
    return stack.client.get_workflow_handle(event_id), event_id


async def click(stack: Stack, user: str, action_id: str, event_id: str) -> str:
    """`user` presses a button on the event's message; the ephemeral reply Slack shows them."""
    before = len(stack.slack.responses)
    message = message_for(stack.slack, event_id)
    response = await slack_click(stack.http, user, action_id, event_id, message, stack.reply_to)
    assert response.is_success
    replies = await eventually(lambda: stack.slack.responses[before:], within=15)
    return str(replies[-1]["text"])


async def record_of(handle: WorkflowHandle) -> EventRecord:
    return await handle.query(ApprovalWorkflow.state)


def test_step_up_rules_mark_any_rule_and_unknown_ids_are_refused() -> None:
    config = make_config(step_up_rules=["sshd-accepted"])
    rules = {rule.id: rule for rule in config.rules}
    assert rules["sshd-accepted"].step_up is StepUpMethod.PASSKEY
    assert rules["sshd-session"].step_up is None
    raw = RawEvent(
        source="papertrail",
        provider_id="step-up-rule",
        received_at=datetime(2026, 11, 27, tzinfo=UTC),
        host="bastion",
        program="sshd",
        message=ssh_line("alice"),
    )
    event = config.rule_set().recognise(raw)
    assert event is not None and event.step_up is StepUpMethod.PASSKEY
    plain = make_config().rule_set().recognise(raw)
    assert plain is not None and plain.step_up is None
    with pytest.raises(ConfigError, match="step_up_rules: no rule 'sshd-acepted'"):
        make_config(step_up_rules=["sshd-acepted"])
    own = make_config(
        rules=[
            {
                "id": "vpn",
                "title": "VPN login",
                "match": {"message": "vpn login (?P<user>\\w+)"},
                "event": {"actor": "{user}", "action": "vpn login"},
                "step_up": "passkey",
            }
        ]
    )
    assert next(r for r in own.rules if r.id == "vpn").step_up is StepUpMethod.PASSKEY


async def test_step_up_rules_need_a_public_url(slack_api_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(STEP_UP_CONFIG_YAML)
    settings = make_settings(slack_api_url, config=config)
    app = create_app(settings)
    with pytest.raises(SettingsError, match=r"sshd-accepted need a step-up.*POWERTRIP_PUBLIC_URL"):
        async with app.router.lifespan_context(app):
            pass


async def test_approve_answers_with_a_link_and_only_a_passkey_approves(stack: Stack) -> None:
    await add_passkey(stack.client, stack.settings, passkey(1))
    handle, event_id = await asked(stack)

    # Alice presses Approve: a one-time link for her alone, and nothing is approved.
    reply = await click(stack, "U0ALICE", "approve", event_id)
    [url] = LINK.findall(reply)
    assert "/verify/U0ALICE." in url and "passkey" in reply
    page = await stack.http.get("/" + url.split("/", 3)[3])
    assert page.status_code == 200 and event_id in page.text
    record = await record_of(handle)
    assert record.status is EventStatus.PENDING
    assert [e.what for e in record.timeline] == [TimelineKind.RECEIVED, TimelineKind.NOTIFIED]

    # A signed approval without the step-up (an API or CLI that skipped it): the workflow
    # itself refuses it, and says so in the timeline.
    await decide(handle, Action.APPROVE, "U0ALICE")
    record = await state_eventually(handle, lambda r: r.timeline[-1].what is TimelineKind.REFUSED)
    assert record.status is EventStatus.PENDING
    assert "needs a step-up (passkey)" in (record.timeline[-1].detail or "")

    # The CLI override cannot skip it either; the attempt is recorded.
    with pytest.raises(Refused, match="needs a step-up"):
        await approve_as_security(
            stack.client,
            event_id,
            "U0SEC1",
            "break glass",
            ["U0SEC1"],
            key=CLI_DECISION_KEY,
            operator="sec1@laptop",
        )
    await state_eventually(handle, lambda r: r.timeline[-1].by == "U0SEC1")

    # Nor can whoever holds the CLI's key claim the step-up: the worker rejects a CLI-signed
    # approval carrying a passkey's proof (only the API's key vouches that a passkey answered).
    claimed = signed_click(
        CLI_DECISION_KEY,
        event_id,
        Action.APPROVE,
        "U0SEC1",
        via="cli",
        operator="sec1@laptop",
        step_up=StepUpMethod.PASSKEY,
        credential=CredentialRef(credential_id="Y3JlZC0x", label="MacBook Touch ID"),
    )
    await handle.signal(ApprovalWorkflow.decide, claimed)
    record = await state_eventually(handle, lambda r: r.timeline[-1].what is TimelineKind.REJECTED)
    assert record.status is EventStatus.PENDING
    assert "CLI's key" in (record.timeline[-1].detail or "")
    assert "step_up" in (record.timeline[-1].detail or "")

    # A refused step-up (the link used twice) lands in the timeline too.
    refused = StepUpRefused(refusal=Refusal.LINK_USED, event_id=event_id, user="U0ALICE")
    delivery = await deliver_step_up(stack.client, DECISION_KEY, refused)
    assert delivery.outcome == "refused"
    record = await state_eventually(
        handle, lambda r: "step-up refused: link_used" in (r.timeline[-1].detail or "")
    )
    assert record.status is EventStatus.PENDING

    # Not me never needs a step-up: one click reports it.
    assert await click_no_reply(stack, "U0ALICE", "not_me", event_id)
    record = await state_eventually(handle, lambda r: r.status is EventStatus.REPORTED)
    assert record.report is not None and record.report.step_up is None
    await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
    await handle.result()


async def click_no_reply(stack: Stack, user: str, action_id: str, event_id: str) -> bool:
    message = message_for(stack.slack, event_id)
    response = await slack_click(stack.http, user, action_id, event_id, message, stack.reply_to)
    return response.is_success


async def test_who_gets_a_link_and_who_is_told_how_to_register(stack: Stack) -> None:
    handle, event_id = await asked(stack)

    # Alice has no passkey: she is told how to register, and that the team can approve for her.
    reply = await click(stack, "U0ALICE", "approve", event_id)
    assert "/powertrip passkey" in reply and "on your behalf" in reply
    assert not LINK.findall(reply)

    # Mallory may not approve alice's login at all: refused as ever, no link.
    reply = await click(stack, "U0MALLORY", "approve", event_id)
    assert "not allowed" in reply and not LINK.findall(reply)

    # The security team approves on her behalf with its own passkey: the link is sec1's.
    await add_passkey(stack.client, stack.settings, passkey(7), user="U0SEC1")
    reply = await click(stack, "U0SEC1", "approve", event_id)
    [url] = LINK.findall(reply)
    assert "/verify/U0SEC1." in url
    record = await record_of(handle)
    assert record.status is EventStatus.PENDING
    await handle.terminate("test over")


REGISTRATION_LINK = re.compile(r"<(http://localhost:\d+/passkeys/register/[^|>]+)\|")


async def test_slash_command_sends_a_registration_link_to_whoever_typed_it(stack: Stack) -> None:
    reply = await slash_command(stack.http, "U0ALICE", "passkey", name="alice")
    [url] = REGISTRATION_LINK.findall(reply)
    assert "/passkeys/register/U0ALICE." in url and "first passkey works at once" in reply
    page = await stack.http.get("/" + url.split("/", 3)[3])
    assert page.status_code == 200 and "alice" in page.text

    # With a passkey already, the next one needs the security team.
    await add_passkey(stack.client, stack.settings, passkey(1))
    reply = await slash_command(stack.http, "U0ALICE", "passkey")
    assert "You have 1 passkey" in reply and "security-team member approves" in reply

    for text in ("", "help", "nonsense"):
        assert "/powertrip passkey" in await slash_command(stack.http, "U0BOB", text)


async def test_only_the_security_team_decides_a_pending_passkey(stack: Stack) -> None:
    await add_passkey(stack.client, stack.settings, passkey(1))
    pending = await add_passkey(stack.client, stack.settings, passkey(2))
    assert pending.status == "pending_approval"
    notice_id = await announce_enrollment(stack.client, stack.settings, pending, user="U0ALICE")
    assert notice_id is not None

    def notice() -> SlackMessage | None:
        return next(
            (m for m in stack.slack.messages.values() if "waiting for approval" in m.text), None
        )

    message = await eventually(notice)
    assert buttons(message) == ["passkey_approve", "passkey_reject"]
    assert "laptop 2" in text_of(message)

    async def press(user: str, action_id: str) -> str:
        before = len(stack.slack.responses)
        response = await slack_click(
            stack.http, user, action_id, notice_id, message, stack.reply_to
        )
        assert response.is_success
        replies = await eventually(lambda: stack.slack.responses[before:], within=15)
        return str(replies[-1]["text"])

    # Neither the owner (whose Slack session may be the thief's) nor anyone off the team.
    assert "Someone else approves your passkeys" in await press("U0ALICE", "passkey_approve")
    assert "Only the security team" in await press("U0MALLORY", "passkey_approve")
    # A team member with a passkey steps up: a one-time link of their own, nothing decided yet.
    await add_passkey(stack.client, stack.settings, passkey(7), user="U0SEC1")
    reply = await press("U0SEC1", "passkey_approve")
    [url] = LINK.findall(reply)
    assert "/verify/U0SEC1." in url
    page = await stack.http.get("/" + url.split("/", 3)[3])
    assert "Approve a new passkey?" in page.text and "laptop 2" in page.text
    store = await passkeys_of(stack.client, "U0ALICE")
    assert store is not None and [p.pending_id for p in store.pending] == ["cred-2"]

    # Rejecting needs no step-up: the passkey is gone, the notice says who rejected it.
    assert "Rejected" in await press("U0SEC1", "passkey_reject")
    store = await passkeys_of(stack.client, "U0ALICE")
    assert store is not None and store.pending == [] and len(store.credentials) == 1
    await eventually(lambda: message.updates)
    assert "Rejected by" in message.text and buttons(message) == []
    assert "already" in await press("U0SEC1", "passkey_approve")


async def test_the_record_says_step_up_passkey_to_the_api_the_hids_and_the_export(
    stack: Stack,
) -> None:
    """A decision the API signed after a passkey checked (as the /verify route does): what every
    reader of the record sees (the HIDS match and the export, from the same record; their HTTP
    and CLI paths need the dev server's visibility and are tested in tests/test_records.py)."""
    handle, event_id = await asked(stack)
    used = CredentialRef(credential_id="Y3JlZC0x", label="MacBook Touch ID")
    await decide(handle, Action.APPROVE, "U0ALICE", step_up=StepUpMethod.PASSKEY, credential=used)
    event = (await record_of(handle)).event
    await handle.result()
    view = (await stack.http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
    assert view["decision"]["step_up"] == "passkey"
    assert view["decision"]["credential"] == {"credential_id": "Y3JlZC0x", "label": used.label}
    assert "with passkey 'MacBook Touch ID'" in view["timeline"][-1]["detail"]
    record = await record_of(handle)
    question = MatchQuestion(
        host=event.host or "", user="alice", at=event.occurred_at, address=event.address
    )
    ui = WebUi.at("http://localhost:8233", "default")
    assert ui is not None
    matched = MatchedEvent.of(record, question, ui)
    assert matched.approved_step_up == "passkey" and matched.approved_by == "U0ALICE"
    [row] = DecisionRow.rows_of(EventView.model_validate(view))
    assert (row.step_up, row.credential_id) == ("passkey", "Y3JlZC0x")
