"""The owner's *Not me* is never lost: after the security team approves on their behalf, the
owner may still report it for the contest window, which reopens the event as an incident
(time-skipping server, fake Slack over HTTP)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import Action, EventRecord
from powertrip.models import DecisionKind, EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.harness import (
    buttons,
    decide,
    eventually,
    make_config,
    make_event,
    make_settings,
    posted_to,
    running_worker,
    start,
    state_eventually,
    text_of,
)
from tests.servers import SECURITY_CHANNEL


async def test_owner_not_me_after_approval_on_behalf_reopens_the_event_as_reported(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    async with running_worker(time_skipping_env.client, settings):
        handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
        [dm] = await eventually(lambda: posted_to(fake_slack, "D0ALICE"))
        await decide(handle, Action.APPROVE, "U0SEC1")
        record = await state_eventually(handle, lambda r: r.contest_until is not None)
        assert record.status is EventStatus.APPROVED
        assert record.contest_until is not None and record.decision is not None
        assert record.contest_until - record.decision.at == timedelta(days=7)
        # Alice's DM says who approved for her and keeps her Not me.
        await eventually(lambda: dm.updates == 1)
        assert buttons(dm) == ["not_me"]
        assert "Approved on behalf* by <@U0SEC1>" in text_of(dm)
        assert "Not you? Press *Not me* before" in text_of(dm)

        await decide(handle, Action.REPORT, "U0ALICE")
        record = await state_eventually(handle, lambda r: r.status is EventStatus.REPORTED)
        [alert] = await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL))
        assert "Reported as NOT ME* by <@U0ALICE>" in text_of(alert)
        assert "approved on their behalf by <@U0SEC1>" in text_of(alert)
        assert buttons(alert) == ["acknowledge"]
        await eventually(lambda: dm.updates == 2)
        assert buttons(dm) == [] and "Reported as not me" in text_of(dm)
        # The overruled approval stays on the record, beside the report.
        assert record.decision is None and record.contest_until is None
        assert record.contested is not None and record.contested.by == "U0SEC1"
        assert record.report is not None and record.report.by == "U0ALICE"

        await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
        final: EventRecord = await handle.result()
    assert final.status is EventStatus.ACKNOWLEDGED
    assert final.contested is not None and final.contested.kind is DecisionKind.APPROVED
    assert [e.what for e in final.timeline if e.by] == ["approved", "reported", "acknowledged"]


async def test_the_contest_window_closes_and_the_approval_stands(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    config = make_config(contest_window="2d")
    async with running_worker(time_skipping_env.client, settings, config):
        handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
        [dm] = await eventually(lambda: posted_to(fake_slack, "D0ALICE"))
        await decide(handle, Action.APPROVE, "U0SEC1")
        await state_eventually(handle, lambda r: r.contest_until is not None)
        await time_skipping_env.sleep(timedelta(days=2, minutes=1))
        record: EventRecord = await handle.result()
    assert record.status is EventStatus.APPROVED and record.contest_until is None
    assert record.timeline[-1].what == "contest_closed"
    assert dm.updates == 2 and buttons(dm) == []
    assert "Approved on behalf" in text_of(dm) and "Not you?" not in text_of(dm)


async def test_no_contest_after_the_owners_own_approval_or_when_the_config_says_0(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    async with running_worker(time_skipping_env.client, settings):
        handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
        await eventually(lambda: posted_to(fake_slack, "D0ALICE"))
        await decide(handle, Action.APPROVE, "U0ALICE")
        own: EventRecord = await handle.result()
    assert own.contest_until is None and "contest_closed" not in [e.what for e in own.timeline]

    async with running_worker(time_skipping_env.client, settings, make_config(contest_window="0")):
        handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
        await eventually(lambda: len(posted_to(fake_slack, "D0ALICE")) == 2)
        await decide(handle, Action.APPROVE, "U0SEC1")
        final: EventRecord = await handle.result()
    assert final.decision is not None and final.decision.on_behalf
    assert final.contest_until is None and final.timeline[-1].what == "approved"
