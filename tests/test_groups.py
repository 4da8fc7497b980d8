"""Bursts become one question (issue 13 §1), through the real interfaces: Papertrail webhook →
the API → each event's ApprovalWorkflow joins its group → one DM in the fake Slack, updated in
place → one signed click through the API decides every event."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from powertrip.contracts.approval import Action, EventRecord, TimelineKind
from powertrip.contracts.passkeys import StepUpVerified
from powertrip.models import CredentialRef, EventStatus
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.sandbox.interactions import block_action_payload, signed_request
from powertrip.services.decisions import approve_as_security, deliver_step_up
from powertrip.services.expectations import ExpectationRefused, Limits, expect_the_same
from powertrip.services.starts import ResultStatus, start_approval
from powertrip.settings import Settings
from powertrip.signing import signed_click
from tests.harness import (
    API_HEADERS,
    CONFIG_YAML,
    WEBHOOK_HEADERS,
    alert,
    api_client,
    decide,
    eventually,
    make_config,
    make_event,
    make_settings,
    papertrail_event,
    running_worker,
    settings_with_config,
)
from tests.servers import (
    CLI_DECISION_KEY,
    DECISION_KEY,
    SECURITY_CHANNEL,
    SIGNING_SECRET,
    SLACK_TOKEN,
)
from workflows.approval import ApprovalWorkflow

CLI = {"key": CLI_DECISION_KEY, "operator": "sec1@laptop"}
GROUPING = CONFIG_YAML.replace("group_window: off", "group_window: 10m")


@pytest.fixture
async def grouping_api(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The real API with the config's default grouping window (10 minutes)."""
    settings = settings_with_config(dev_env, slack_api_url, tmp_path, GROUPING)
    async with api_client(settings) as http:
        yield http, settings


async def _login(http: httpx.AsyncClient, host: str, address: str = "203.0.113.7") -> str:
    """One more login by alice on `host` from `address` (a new action: its own provider id and
    port)."""
    event = papertrail_event(uuid.uuid4().hex[:16], "alice", host=host, address=address)
    response = await http.post("/webhooks/papertrail", json=alert(event), headers=WEBHOOK_HEADERS)
    [result] = response.json()["results"]
    assert result["status"] == "started", result
    return str(result["event_id"])


async def _record(client: Client, event_id: str) -> EventRecord:
    return await client.get_workflow_handle_for(ApprovalWorkflow.run, event_id).query(
        ApprovalWorkflow.state
    )


async def _all(client: Client, ids: list[str], ok: object) -> list[EventRecord] | None:
    records = [await _record(client, i) for i in ids]
    return records if all(ok(r) for r in records) else None  # type: ignore[operator]


def _dms(fake: FakeSlack) -> list[SlackMessage]:
    return [m for m in fake.messages.values() if m.channel == "D0ALICE"]


async def _click(
    http: httpx.AsyncClient,
    message: SlackMessage,
    user: str,
    action: str,
    value: str,
    block_id: str | None = None,
) -> None:
    """Press a button of `message` as Slack sends it: with its decision block's id as the
    message shows it now, or `block_id` (as an earlier drawing showed it)."""
    payload = block_action_payload(
        user,
        action,
        value,
        channel=message.channel,
        message_ts=message.ts,
        block_id=block_id or _decision_block(message),
    )
    body, headers = signed_request(SIGNING_SECRET, payload)
    response = await http.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200


def _decision_block(message: SlackMessage) -> str:
    return next(str(b["block_id"]) for b in message.blocks if b.get("type") == "actions")


def _button_value(message: SlackMessage) -> str:
    return next(
        str(e["value"])
        for block in message.blocks
        for e in block.get("elements", [])
        if e.get("value")
    )


async def test_a_burst_of_20_is_one_message_and_one_click_decides_all(
    grouping_api: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
) -> None:
    http, settings = grouping_api
    client = dev_env.client
    host = f"ops-{uuid.uuid4().hex[:6]}"
    async with running_worker(client, settings, make_config()):
        ids = list(await asyncio.gather(*(_login(http, host) for _ in range(20))))
        assert len(set(ids)) == 20
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.group is not None), within=60
        )
        [group_id] = {r.group for r in records}
        assert group_id is not None and group_id.startswith("powertrip-group-")
        for r in records:
            assert [e.detail for e in r.timeline if e.what is TimelineKind.GROUPED] == [
                f"group: {group_id}"
            ]
        # One question, updated in place until it shows all 20, not one chat.update per event.
        [dm] = await eventually(lambda: _dms(fake_slack) or None)
        await eventually(lambda: "20 events of" in dm.text, within=30)
        assert _button_value(dm) == group_id
        assert 1 <= dm.updates < 20
        assert len(_dms(fake_slack)) == 1
        assert [m for m in fake_slack.messages.values() if m.channel == SECURITY_CHANNEL] == []

        await _click(http, dm, "U0ALICE", "approve", group_id)
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.status is EventStatus.APPROVED), within=60
        )
        for r in records:
            assert r.decision is not None
            assert (r.decision.by, r.decision.group, r.decision.authenticated) == (
                "U0ALICE",
                group_id,
                True,
            )
        await eventually(lambda: "Approved" in dm.text)
        # What a HIDS or an auditor reads, per event: approved, by alice, as part of the group.
        view = (await http.get(f"/v1/events/{ids[0]}", headers=API_HEADERS)).json()
        assert view["status"] == "approved" and view["group"] == group_id
        assert (view["decision"]["by"], view["decision"]["group"]) == ("U0ALICE", group_id)

        # After the decision, alice's next login on the host is a new group, a new question.
        late = await _login(http, host)
        late_record = await eventually(
            lambda: _all(client, [late], lambda r: r.group is not None), within=30
        )
        assert late_record[0].group not in (None, group_id)
        await eventually(lambda: len(_dms(fake_slack)) == 2)


async def test_an_approval_pressed_before_a_login_joined_the_message_decides_nothing(
    grouping_api: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
) -> None:
    """A login that joins the group a second before alice presses Approve is not on the message
    she pressed: her click must not approve it (it once did, for an attacker's login from
    another address). The approval is refused, the message is drawn again with both, and the
    approval pressed on that one decides both."""
    http, settings = grouping_api
    client = dev_env.client
    host = f"ops-{uuid.uuid4().hex[:6]}"
    async with running_worker(client, settings, make_config()):
        first = await _login(http, host)
        [record] = await eventually(lambda: _all(client, [first], lambda r: r.group is not None))
        group_id = record.group
        assert group_id is not None
        [dm] = await eventually(lambda: _dms(fake_slack) or None)
        drawn_with_one = _decision_block(dm)
        assert drawn_with_one == "decision-1"

        second = await _login(http, host, address="198.51.100.66")
        await eventually(lambda: _all(client, [second], lambda r: r.group == group_id))
        group = client.get_workflow_handle_for(ApprovalWorkflow.run, group_id)
        # The workflow refuses it even before its memo or message shows the second login.
        await decide(group, Action.APPROVE, "U0ALICE", shown=1)
        # And through Slack, pressed on the message as it was drawn with one; "expect the same"
        # from it makes no expectation either (the approval did not count).
        await _click(http, dm, "U0ALICE", "approve", group_id, block_id=drawn_with_one)
        await _click(http, dm, "U0ALICE", "approve_expect", group_id, block_id=drawn_with_one)
        # A click that does not say what it listed, or lists more than ever joined, fails closed.
        for forged in ("decision", "decision-999999", "decision--1"):
            await _click(http, dm, "U0ALICE", "approve", group_id, block_id=forged)

        def refusals(r: EventRecord) -> list[str]:
            return [e.detail or "" for e in r.timeline if e.what is TimelineKind.REFUSED]

        # A passkey's approval carries the count its link bound when *Approve* was pressed.
        passkey = CredentialRef(credential_id="cred-1", label="laptop")
        verified = StepUpVerified(
            event_id=group_id, shown=1, user="U0ALICE", credential=passkey, at=datetime.now(UTC)
        )
        delivery = await deliver_step_up(client, DECISION_KEY, verified)
        assert delivery.outcome == "refused" and "1 more event joined" in (delivery.reply or "")

        refused = await eventually(
            lambda: _all(client, [group_id], lambda r: len(refusals(r)) == 7), within=30
        )
        texts = refusals(refused[0])
        assert sum("1 more event joined" in text for text in texts) == 4, texts
        assert sum("does not say how many" in text for text in texts) == 2, texts
        assert sum("cannot have listed 999999" in text for text in texts) == 1, texts
        for r in await _all(client, [group_id, first, second], lambda r: True) or []:
            assert r.status is EventStatus.PENDING, r.event.event_id

        await eventually(lambda: _decision_block(dm) == "decision-2", within=30)
        assert "198.51.100.66" in json.dumps(dm.blocks)
        await _click(http, dm, "U0ALICE", "approve", group_id)
        await eventually(
            lambda: _all(client, [first, second], lambda r: r.status is EventStatus.APPROVED),
            within=30,
        )
        # The refused "expect the same" waited for its approval to count: this one is not it.
        await asyncio.sleep(2)
        expectations = await http.get("/v1/expectations", headers=API_HEADERS)
        assert expectations.json() == [], expectations.text
        # Even when the API let it through (its memo a join behind) and another click's
        # approval counted after, an "expect the same" pressed on one event's worth expects
        # nothing; pressed on the message that listed both, it does.
        limits = Limits.from_config(make_config(group_window="10m"))
        same = (client, DECISION_KEY, settings.task_queue, group_id, "U0ALICE", limits)
        with pytest.raises(ExpectationRefused, match="listed 1 of the 2 events"):
            await expect_the_same(*same, 1)
        assert (await expect_the_same(*same, 2)).hosts == [host]


async def test_a_group_from_several_addresses_shows_each_address(
    grouping_api: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
) -> None:
    """A burst whose logins come from two places says so: the owner judges "was that me?" on
    where they came from, not only on the first one's address."""
    http, settings = grouping_api
    client = dev_env.client
    host = f"ops-{uuid.uuid4().hex[:6]}"
    async with running_worker(client, settings, make_config()):
        first = await _login(http, host, "203.0.113.7")
        await eventually(lambda: _all(client, [first], lambda r: r.group is not None), within=30)
        ids = [first, await _login(http, host, "198.51.100.4"), await _login(http, host)]
        await eventually(lambda: _all(client, ids, lambda r: r.group is not None), within=30)
        [dm] = await eventually(lambda: _dms(fake_slack) or None)
        await eventually(lambda: "3 events of" in dm.text, within=30)
        shown = json.dumps(dm.blocks)
        assert "203.0.113.7" in shown and "198.51.100.4" in shown, shown


async def test_not_me_on_a_group_reports_every_event_and_a_forged_forward_changes_nothing(
    grouping_api: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
) -> None:
    http, settings = grouping_api
    client = dev_env.client
    host = f"ops-{uuid.uuid4().hex[:6]}"
    async with running_worker(client, settings, make_config()):
        ids = [await _login(http, host) for _ in range(3)]
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.group is not None), within=60
        )
        group_id = records[0].group
        assert group_id is not None
        # Signed with the API's key but for another group; unsigned, as if from the group:
        # neither is the decision of this event or of the group it joined.
        member = client.get_workflow_handle(ids[0])
        other_group = group_id.rsplit("-", 1)[0] + "-7"
        forged = signed_click(DECISION_KEY, other_group, Action.APPROVE, "U0ALICE")
        await member.signal(ApprovalWorkflow.decide, forged)
        unsigned = forged.model_copy(update={"signature": None})
        await member.signal(ApprovalWorkflow.decide, unsigned)
        rejected = await eventually(
            lambda: _all(
                client,
                ids[:1],
                lambda r: sum(e.what is TimelineKind.REJECTED for e in r.timeline) == 2,
            )
        )
        assert rejected[0].status is EventStatus.PENDING

        dm = await eventually(lambda: _dms(fake_slack)[0] if _dms(fake_slack) else None)
        await _click(http, dm, "U0ALICE", "not_me", group_id)
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.status is EventStatus.REPORTED), within=60
        )
        assert all(r.report and r.report.group == group_id for r in records)
        # One incident alert for the group, not one per event.
        alerts = await eventually(
            lambda: [m for m in fake_slack.messages.values() if m.channel == SECURITY_CHANNEL]
        )
        await asyncio.sleep(1)
        assert len(alerts) == 1 and "NOT ME" in alerts[0].text


async def test_a_worker_killed_mid_burst_neither_splits_nor_duplicates_the_group(
    grouping_api: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from worker import build_worker

    http, settings = grouping_api
    client = dev_env.client
    host = f"ops-{uuid.uuid4().hex[:6]}"
    slack = AsyncWebClient(token=SLACK_TOKEN, base_url=settings.slack_api_url)
    first: Worker = build_worker(client, settings, make_config(), slack)
    running = asyncio.create_task(first.run())
    ids = list(await asyncio.gather(*(_login(http, host) for _ in range(6))))
    await eventually(lambda: _all(client, ids[:2], lambda r: r.group is not None), within=30)
    running.cancel()  # abruptly, mid-burst: joins and posts may be in flight
    with pytest.raises(BaseException):  # noqa: B017 - cancelled or shut down
        await running
    ids += await asyncio.gather(*(_login(http, host) for _ in range(6)))
    async with running_worker(client, settings, make_config()):
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.group is not None), within=90
        )
        assert len({r.group for r in records}) == 1
        [dm] = await eventually(lambda: _dms(fake_slack) or None)
        await eventually(lambda: "12 events of" in dm.text, within=30)
        assert len(_dms(fake_slack)) == 1


async def test_the_group_reminds_for_all_its_events_and_a_stale_event_is_never_grouped(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    client = time_skipping_env.client
    live = [make_event("alice", group_window_seconds=600) for _ in range(3)]
    found_late = make_event("alice", group_window_seconds=600)
    async with running_worker(client, settings, make_config()):
        for event in live:
            assert await start_approval(client, event, settings.task_queue) is ResultStatus.STARTED
        await start_approval(client, found_late, settings.task_queue, stale=True)
        ids = [event.event_id for event in live]
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.group is not None), within=30
        )
        [group_id] = {r.group for r in records}
        assert group_id is not None
        await eventually(lambda: _dms(fake_slack) or None)
        await time_skipping_env.sleep(timedelta(minutes=20))

        def channel() -> list[SlackMessage]:
            return [m for m in fake_slack.messages.values() if m.channel == SECURITY_CHANNEL]

        reminders = await eventually(lambda: channel() or None, within=30)
        # The security channel hears of the group, not of each event; no event reminds alone.
        assert all(_button_value(m) == group_id for m in reminders)
        assert all("3 events of" in m.text for m in reminders)
        records = [await _record(client, i) for i in ids]
        assert not any(e.what is TimelineKind.REMINDED for r in records for e in r.timeline)
        stale = await _record(client, found_late.event_id)
        assert stale.group is None
        assert any(e.what is TimelineKind.STALE for e in stale.timeline)

        # The CLI's override: one event of the group on its own, then the group, which
        # decides the rest; each decision says whether it was the group's.
        await approve_as_security(client, ids[0], "U0SEC1", "this one", ["U0SEC1"], **CLI)
        alone = await eventually(
            lambda: _all(client, ids[:1], lambda r: r.status is EventStatus.APPROVED)
        )
        assert alone[0].decision and alone[0].decision.group is None
        await approve_as_security(client, group_id, "U0SEC1", "change window", ["U0SEC1"], **CLI)
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.status is EventStatus.APPROVED), within=30
        )
        assert all(r.decision and r.decision.on_behalf and r.decision.via == "cli" for r in records)
        assert [r.decision.group for r in records if r.decision] == [None, group_id, group_id]
        assert (await _record(client, found_late.event_id)).status is EventStatus.PENDING


async def test_the_owners_not_me_after_the_teams_approval_of_a_group_reports_every_event(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    client = time_skipping_env.client
    events = [make_event("alice", group_window_seconds=600) for _ in range(2)]
    async with running_worker(client, settings, make_config()):
        for event in events:
            await start_approval(client, event, settings.task_queue)
        ids = [event.event_id for event in events]
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.group is not None), within=30
        )
        group = client.get_workflow_handle(str(records[0].group))
        await eventually(lambda: _dms(fake_slack) or None)
        await decide(group, Action.APPROVE, "U0SEC1", shown=2)  # the message lists both
        await eventually(
            lambda: _all(client, ids, lambda r: r.contest_until is not None), within=30
        )
        await decide(group, Action.REPORT, "U0ALICE")
        records = await eventually(
            lambda: _all(client, ids, lambda r: r.status is EventStatus.REPORTED), within=30
        )
        # The approval on alice's behalf no longer stands on any event's record.
        assert all(r.contested and r.decision is None for r in records)
