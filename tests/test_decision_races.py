"""Who may decide, and which decision counts, when clicks queue up or the config changes under a
pending event (time-skipping server, fake Slack over HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import Action, EventRecord
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.harness import (
    click,
    decide,
    eventually,
    make_config,
    make_event,
    make_settings,
    posted_to,
    running_worker,
    start,
)
from workflows.approval import MAX_TRACES, ApprovalWorkflow


async def memo_eventually(
    handle: WorkflowHandle[Any, Any], check: Callable[[EventRecord], bool], within: float = 20.0
) -> EventRecord:
    """The record readers see (the memo): no query, so no worker or sticky queue involved."""

    async def probe() -> EventRecord | None:
        record = await (await handle.describe()).memo_value("record", type_hint=EventRecord)
        return record if check(record) else None

    return await eventually(probe, within)


async def test_not_me_queued_behind_an_approval_on_behalf_still_raises_the_incident(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Clicks are durable while the workers are down; when they come back, the owner's *Not me*
    must not be swallowed by a security-team approval that happened to be queued first."""
    settings = make_settings(slack_api_url)
    client = time_skipping_env.client
    handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
    # No worker yet: both clicks wait in the workflow's history.
    await decide(handle, Action.APPROVE, "U0SEC1")
    await decide(handle, Action.REPORT, "U0ALICE")
    async with running_worker(client, settings):
        record = await memo_eventually(handle, lambda r: r.status is not EventStatus.PENDING)
        assert record.status is EventStatus.REPORTED
        assert record.report is not None and record.report.by == "U0ALICE"
        assert record.decision is None
        assert posted_to(fake_slack, "D0ALICE")
        await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
        final: EventRecord = await handle.result()
    assert final.status is EventStatus.ACKNOWLEDGED


async def test_member_removed_from_the_security_team_can_no_longer_decide(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """The team is resolved when the event starts; someone taken off it later (the config
    changed, the worker restarted) must not approve events that were already pending."""
    settings = make_settings(slack_api_url)
    client = dev_env.client
    before = make_config(security_team=["U0SEC1", "U0MALLORY"])
    after = make_config(security_team=["U0SEC1"])
    async with running_worker(client, settings, before):
        handle = await start(dev_env, make_event("alice"), settings.task_queue)
        await memo_eventually(handle, lambda r: any(m.kind == "first" for m in r.messages))
    async with running_worker(client, settings, after):
        await decide(handle, Action.APPROVE, "U0MALLORY")
        record = await memo_eventually(
            handle,
            lambda r: (
                r.status is not EventStatus.PENDING
                or (r.authority is not None and "U0MALLORY" not in r.authority.security_team)
            ),
        )
        assert record.status is EventStatus.PENDING
        await decide(handle, Action.APPROVE, "U0ALICE")
        final: EventRecord = await handle.result()
    assert final.status is EventStatus.APPROVED
    assert final.decision is not None and final.decision.by == "U0ALICE"


async def test_a_flood_of_forged_decisions_is_recorded_but_bounded(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """Anyone who reaches Temporal can send signals: each forged one is rejected and traced, up to
    MAX_TRACES entries (the memo must not grow without bound), and a real decision still counts."""
    settings = make_settings(slack_api_url)
    client = time_skipping_env.client
    handle = await start(time_skipping_env, make_event("alice"), settings.task_queue)
    # Queued while no worker runs, so the worker takes them all in one go.
    for _ in range(MAX_TRACES + 10):
        await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0ALICE"))
    async with running_worker(client, settings):
        await memo_eventually(handle, lambda r: any(e.what == "traces_capped" for e in r.timeline))
        await decide(handle, Action.APPROVE, "U0ALICE")
        record: EventRecord = await handle.result()
    whats = [e.what.value for e in record.timeline]
    assert whats.count("rejected") == MAX_TRACES and whats.count("traces_capped") == 1
    assert record.status is EventStatus.APPROVED and record.decision is not None
    assert record.decision.authenticated
