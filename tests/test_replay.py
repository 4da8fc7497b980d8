"""Workflow versioning: recorded histories of ApprovalWorkflow (tests/histories/*.json, made by
`python -m tests.histories.record`) must replay on the current code. A failure here means a change
would break the approvals already pending in production: guard it with `workflow.patched`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

from activities.slack import SlackActivities
from powertrip.approvals import Action
from powertrip.ingest import ResultStatus, start_approval
from powertrip.sandbox.fake_slack import FakeSlack
from tests.conftest import SECURITY_CHANNEL, SLACK_TOKEN
from tests.harness import click, eventually, make_config, make_event, make_settings
from tests.histories.variants import REFRESH_RECIPIENT, PatchedRefresh, UnguardedRefresh
from workflows.approval import ApprovalWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def replayer(workflow: type) -> Replayer:
    return Replayer(workflows=[workflow], data_converter=pydantic_data_converter)


def test_every_recorded_path_is_present() -> None:
    assert {p.stem for p in HISTORIES} >= {"approve", "not_me_acknowledge", "reminders"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_current_code_replays_recorded_history(path: Path) -> None:
    result = await replayer(ApprovalWorkflow).replay_workflow(
        load(path), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, (
        f"ApprovalWorkflow no longer replays {path.name}: guard the change with "
        "workflow.patched(...) (README: 'Changing ApprovalWorkflow safely').\n"
        f"{result.replay_failure}"
    )


async def test_unguarded_change_breaks_pending_workflows_that_reminded() -> None:
    results = {
        path.stem: await replayer(UnguardedRefresh).replay_workflow(
            load(path), raise_on_replay_failure=False
        )
        for path in HISTORIES
    }
    # The approve path never reminded: the new activity call is not in its way.
    assert results["approve"].replay_failure is None
    for name in ("not_me_acknowledge", "reminders"):
        assert isinstance(results[name].replay_failure, NondeterminismError), name


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_patched_change_replays_old_histories(path: Path) -> None:
    await replayer(PatchedRefresh).replay_workflow(load(path))


async def test_patched_change_runs_the_new_branch_for_new_workflows(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    settings = make_settings(slack_api_url)
    config = make_config()
    activities = SlackActivities(
        AsyncWebClient(token=SLACK_TOKEN, base_url=slack_api_url),
        config,
        SECURITY_CHANNEL,
    )
    event = make_event("alice", renotify_after_seconds=15 * 60)
    async with Worker(
        time_skipping_env.client,
        task_queue=settings.task_queue,
        workflows=[PatchedRefresh],
        activities=[
            activities.resolve_recipient,
            activities.post_notification,
            activities.update_message,
        ],
    ):
        assert await start_approval(time_skipping_env.client, event, settings.task_queue) is (
            ResultStatus.STARTED
        )
        handle = time_skipping_env.client.get_workflow_handle(event.event_id)
        await eventually(lambda: any(m.channel == "D0ALICE" for m in fake_slack.messages.values()))
        await time_skipping_env.sleep(timedelta(minutes=16))
        await eventually(
            lambda: any(m.channel == SECURITY_CHANNEL for m in fake_slack.messages.values())
        )
        await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0ALICE"))
        await handle.result()
        history = await handle.fetch_history()

    lookups = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "resolve_recipient"
    ]
    assert len(lookups) == 2  # first notification, then again before the one reminder
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert markers, "workflow.patched records a marker in new executions"
    assert REFRESH_RECIPIENT in str(markers[0].marker_recorded_event_attributes)
    # Rolling back to the old code would now break this workflow: deploy forward only.
    rollback = await replayer(ApprovalWorkflow).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert isinstance(rollback.replay_failure, NondeterminismError)
