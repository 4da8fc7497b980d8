"""Workflow versioning: recorded histories of every workflow (tests/histories/<generation>/
<workflow>/*.json, made by `python -m tests.histories.record`) must replay on the current code. A
failure here means a change would break the workflows already running in production: guard it
with `workflow.patched` and list the patch in `workflows/patches.py`."""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker
from temporalio.workflow import NondeterminismError

import worker
from activities.decisions import DecisionActivities
from activities.reminders import ReminderActivities
from activities.slack import SlackActivities
from powertrip.contracts.approval import (
    Action,
    ApprovalInput,
    EventRecord,
    PostedMessage,
    PostRequest,
    Recipient,
    UpdateRequest,
    Verdict,
    Verdicts,
    VerifyBatch,
    VerifyRequest,
)
from powertrip.models import EventStatus, SecurityEvent
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.services.starts import ResultStatus, search_attributes_for, start_approval
from powertrip.settings import Settings
from powertrip.signing import Signer
from tests.harness import (
    activity_calls,
    assert_replays,
    buttons,
    decide,
    eventually,
    make_config,
    make_event,
    make_settings,
    message_for,
    no_expectation,
    posted_to,
    running_worker,
    scheduled_activities,
    start,
    state_eventually,
    text_of,
)
from tests.histories.variants import REFRESH_RECIPIENT, PatchedRefresh, UnguardedRefresh
from tests.servers import DECISION_KEY, SECURITY_CHANNEL, SLACK_TOKEN
from workflows import patches
from workflows.approval import ApprovalWorkflow, _as_activity
from workflows.conflict import ConflictWorkflow
from workflows.expectation import ExpectationWorkflow
from workflows.group import GroupWorkflow
from workflows.passkey_notice import PasskeyNoticeWorkflow
from workflows.passkeys import PasskeyWorkflow
from workflows.poll import PollWorkflow
from workflows.reminders import ReminderCollectorWorkflow, ReminderDigestWorkflow
from workflows.stale import StaleReportWorkflow
from workflows.unrecognised import ReviewPacerWorkflow, UnrecognisedEventWorkflow

ROOT = Path(__file__).parent / "histories"
WORKFLOWS: dict[str, type] = {
    "approval": ApprovalWorkflow,
    "poll": PollWorkflow,
    "reminder_digest": ReminderDigestWorkflow,
    "reminder_collector": ReminderCollectorWorkflow,
    "unrecognised": UnrecognisedEventWorkflow,
    "stale_digest": StaleReportWorkflow,
    "passkeys": PasskeyWorkflow,
    "passkey_notice": PasskeyNoticeWorkflow,
    "review_pacer": ReviewPacerWorkflow,
    "conflict": ConflictWorkflow,
    "group": GroupWorkflow,
    "expectation": ExpectationWorkflow,
}
GENERATIONS = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name[:1].isdigit())
NEWEST = GENERATIONS[-1]
ALL = sorted(ROOT.glob("*/*/*.json"))
HISTORIES = sorted(ROOT.glob("*/approval/*.json"))
FIRST = ROOT / GENERATIONS[0] / "approval"


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def replayer(workflow: type) -> Replayer:
    return Replayer(workflows=[workflow], data_converter=pydantic_data_converter)


@functools.cache
def recorded_patches(path: Path) -> frozenset[str]:
    """The patch ids whose markers a history recorded (read once per run: the ledger's test
    asks for every patch across every generation)."""
    found: set[str] = set()
    for event in load(path).events:
        if event.marker_recorded_event_attributes.marker_name == "core_patch":
            for payloads in event.marker_recorded_event_attributes.details.values():
                found |= {json.loads(p.data).get("id") for p in payloads.payloads}
    return frozenset(found)


def test_the_newest_generation_has_a_history_of_every_workflow_the_worker_runs() -> None:
    recorded = {WORKFLOWS[p.parent.name] for p in (ROOT / NEWEST).glob("*/*.json")}
    assert set(worker.WORKFLOWS) <= recorded, set(worker.WORKFLOWS) - recorded


def test_every_history_belongs_to_a_known_workflow() -> None:
    assert ALL, "no recorded histories"
    assert {p.parent.name for p in ALL} <= set(WORKFLOWS)
    assert {p.stem for p in FIRST.glob("*.json")} >= {"approve", "not_me_acknowledge"}


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_current_code_replays_recorded_history(generation: str) -> None:
    """Every history of a generation, replayed as the worker runs workflows: outside the SDK's
    sandbox (`worker.workflow_runner`), by one replayer (one per history took twice as long)."""
    paths = {str(p.relative_to(ROOT)): p for p in sorted((ROOT / generation).glob("*/*.json"))}
    unsandboxed = Replayer(
        workflows=list(WORKFLOWS.values()),
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for name, path in paths.items():
            yield WorkflowHistory.from_json(name, path.read_text())

    failed = {}
    replayed = 0
    async with unsandboxed.workflow_replay_iterator(histories()) as results:
        async for result in results:
            replayed += 1
            if result.replay_failure is not None:
                failed[result.history.workflow_id] = result.replay_failure
    assert replayed == len(paths) > 0
    assert not failed, (
        "today's code no longer replays these histories: guard the change with "
        "workflow.patched(...) (README: 'Changing a workflow safely').\n"
        + "\n".join(f"{name}: {failure}" for name, failure in failed.items())
    )


async def test_the_newest_generation_replays_in_the_sandbox() -> None:
    """The tests' workers, and a worker with `POWERTRIP_WORKFLOW_SANDBOX`, run workflows in the
    SDK's sandbox. What the sandbox refuses (an import, state a module keeps) is in today's code,
    which the newest generation's histories walk through; each older generation's own branches
    were recorded in the sandbox and replay outside it above."""
    newest = sorted((ROOT / NEWEST).glob("*/*.json"))
    failed = {}
    for path in newest:
        workflow = WORKFLOWS[path.parent.name]
        result = await replayer(workflow).replay_workflow(load(path), raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failed[str(path.relative_to(ROOT))] = result.replay_failure
    assert len(newest) > 30
    assert not failed, failed


PATCH_CALLS = ("patched", "deprecate_patch")


def _patched_in_code() -> dict[str, set[str]]:
    """Patch ids each workflow module passes to workflow.patched / deprecate_patch, or to
    `workflows.patches.patched`."""
    used: dict[str, set[str]] = {}
    for module in (Path(__file__).parents[1] / "workflows").glob("*.py"):
        if module.name == "patches.py":  # `patched` itself, which asks for any id
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr in PATCH_CALLS)
                or (isinstance(node.func, ast.Name) and node.func.id in PATCH_CALLS)
            ):
                [arg] = node.args
                assert isinstance(arg, ast.Name), f"{module.name}: name the patch id in patches.py"
                used.setdefault(module.stem, set()).add(getattr(patches, arg.id))
    return used


def test_the_ledger_lists_every_patch_the_workflows_use() -> None:
    in_code = set().union(*_patched_in_code().values())
    in_code |= {marker for marker, _ in patches.APPROVAL_BASELINES}  # asked by patches.py
    assert in_code == {p.id for p in patches.LEDGER}


@pytest.mark.parametrize("patch", patches.LEDGER, ids=lambda p: p.id)
def test_the_newest_generation_passes_through_every_patch(patch: patches.Patch) -> None:
    """Each patched branch of today's code is replayed, not only the branches that existed when
    the first histories were recorded."""
    folder = {
        "ApprovalWorkflow": "approval",
        "GroupWorkflow": "group",
        "PollWorkflow": "poll",
        "ReminderDigestWorkflow": "reminder_digest",
    }[patch.workflow]
    generations = [NEWEST]
    newest_baseline, covered = patches.APPROVAL_BASELINES[0]
    older_baselines = [marker for marker, _ in patches.APPROVAL_BASELINES[1:]]
    if patch.id in covered:
        # Today's runs take it with the newest baseline's marker, which the newest generation
        # records; its branch is the one they run.
        newest = (ROOT / NEWEST / folder).glob("*.json")
        assert any(newest_baseline in recorded_patches(p) for p in newest)
        if patch.id not in patches.APPROVAL_PATCHES:
            return
        # The generation recorded before the first baseline records its own marker.
        [baseline] = [p for p in patches.LEDGER if p.id == patches.APPROVAL_BASELINE]
        generations = [baseline.needed_by]
    elif patch.id in older_baselines:
        generations = GENERATIONS  # the generations recorded while it was the newest
    recorded = [p for g in generations for p in (ROOT / g / folder).glob("*.json")]
    assert any(patch.id in recorded_patches(p) for p in recorded), (
        f"no history in tests/histories/{generations[-1]}/{folder} records {patch.id!r}: add a "
        "path to tests/histories/record.py and record a new generation"
    )
    needed = ROOT / patch.needed_by / folder
    assert needed.is_dir() and not any(patch.id in recorded_patches(p) for p in needed.glob("*"))


def test_the_readme_shows_the_ledger() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert patches.ledger_table() in readme


async def test_unguarded_change_breaks_pending_workflows_that_reminded() -> None:
    results = {
        path.stem: await replayer(UnguardedRefresh).replay_workflow(
            load(path), raise_on_replay_failure=False
        )
        for path in FIRST.glob("*.json")
    }
    # The approve path never reminded: the new activity call is not in its way.
    assert results["approve"].replay_failure is None
    for name in ("not_me_acknowledge", "reminders"):
        assert isinstance(results[name].replay_failure, NondeterminismError), name


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: str(p.relative_to(ROOT)))
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
            DecisionActivities({Signer.API: [DECISION_KEY]}).verify_decision,
            DecisionActivities({Signer.API: [DECISION_KEY]}).verify_decisions,
            ReminderActivities(time_skipping_env.client).hand_off,  # no digest: posts its own
            no_expectation,
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
        await decide(handle, Action.APPROVE, "U0ALICE")
        await handle.result()
        history = await handle.fetch_history()

    # First notification (a local activity), then again before the one reminder (an activity).
    assert activity_calls(history, "resolve_recipient") == 2
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert markers, "workflow.patched records a marker in new executions"
    assert any(REFRESH_RECIPIENT in str(m.marker_recorded_event_attributes) for m in markers)
    # Rolling back to the old code would now break this workflow: deploy forward only.
    rollback = await replayer(ApprovalWorkflow).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert isinstance(rollback.replay_failure, NondeterminismError)


async def start_with_short_tasks(
    env: WorkflowEnvironment, event: SecurityEvent, settings: Settings
) -> WorkflowHandle[ApprovalWorkflow, EventRecord]:
    """`event`'s ApprovalWorkflow with a 2 s workflow-task timeout, so that a local activity of
    2.5 s outlives its task (the SDK completes the task while it runs)."""
    return await env.client.start_workflow(
        ApprovalWorkflow.run,
        ApprovalInput(event=event),
        id=event.event_id,
        task_queue=settings.task_queue,
        search_attributes=search_attributes_for(event),
        task_timeout=timedelta(seconds=2),
    )


class SlowDecisions(DecisionActivities):
    """A worker too busy to verify within the workflow task timeout."""

    @activity.defn(name="verify_decision")
    async def verify_decision(self, request: VerifyRequest) -> Verdict:
        await asyncio.sleep(2.5)  # longer than the task timeout the test starts with
        return await super().verify_decision(request)

    @activity.defn(name="verify_decisions")
    async def verify_decisions(self, request: VerifyBatch) -> Verdicts:
        await asyncio.sleep(2.5)
        return await super().verify_decisions(request)


async def test_a_verification_that_outlives_its_workflow_task_still_replays(
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow local activity (a loaded worker) outlives its workflow task: the SDK completes
    tasks while the verdict is due and records it in a later one. Such a history replays, and
    every patch the click's handling asks about was decided before the verdict
    (workflows.approval._patches_before_verifying), where replay sees the same markers."""

    monkeypatch.setattr(worker, "DecisionActivities", SlowDecisions)
    settings = make_settings(slack_api_url)
    event = make_event("alice")
    async with running_worker(dev_env.client, settings):
        handle = await start_with_short_tasks(dev_env, event, settings)
        await eventually(lambda: message_for(fake_slack, event.event_id))
        await decide(handle, Action.APPROVE, "U0SEC1")  # the team on alice's behalf
        record = await state_eventually(handle, lambda r: r.contest_until is not None, within=30)
        await decide(handle, Action.REPORT, "U0ALICE")
        record = await state_eventually(handle, lambda r: r.report is not None, within=30)
        history = await handle.fetch_history()
        await handle.terminate("replayed; no need to wait for the acknowledgement")
    assert record.contested is not None
    kinds = [e.event_type for e in history.events]
    first_signal = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    first_verdict = next(
        i
        for i, e in enumerate(history.events)
        if i > first_signal
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    # The situation this test is about: workflow tasks came and went while the verdict was due.
    completed = kinds[first_signal:first_verdict].count(
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    assert completed >= 2
    await assert_replays(history)


class SlowLookups(SlackActivities):
    """A worker too busy (or a Slack too slow) to look the recipient up within the workflow task
    timeout."""

    @activity.defn(name="resolve_recipient")
    async def resolve_recipient(self, event: SecurityEvent) -> Recipient:
        await asyncio.sleep(2.5)  # longer than the task timeout the test starts with
        return await super().resolve_recipient(event)


class SlowFirstQuestion(SlackActivities):
    """A Slack too slow to answer the first question's post within the workflow task timeout."""

    @activity.defn(name="post_notification")
    async def post_notification(self, request: PostRequest) -> PostedMessage:
        await asyncio.sleep(2.5)  # longer than the task timeout the test starts with
        return await super().post_notification(request)


@pytest.mark.parametrize("slow", [SlowLookups, SlowFirstQuestion], ids=lambda c: c.__name__)
async def test_the_first_question_needs_one_workflow_task_and_a_slow_local_activity_replays(
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
    slow: type[SlackActivities],
) -> None:
    """The lookups before the first DM (`resolve_recipient`, `find_expectation`, patch
    `local-lookups`) and the DM itself (patch `local-first-question`) are local activities: the
    first question is asked by the workflow's first task, with no activity task (issue 16). One
    that outlives its workflow task (the SDK completes tasks while it runs and records it in a
    later one) still replays: the patches the rest of the task may ask about are decided before
    it (workflows.approval._patches_before_lookups, _patches_after_first_question)."""
    monkeypatch.setattr(worker, "SlackActivities", slow)
    settings = make_settings(slack_api_url)
    event = make_event("alice")
    async with running_worker(dev_env.client, settings):
        handle = await start_with_short_tasks(dev_env, event, settings)
        await eventually(lambda: message_for(fake_slack, event.event_id), within=30)
        await decide(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
        history = await handle.fetch_history()
    assert record.status is EventStatus.APPROVED
    assert len(posted_to(fake_slack, fake_slack.dm_channel("U0ALICE"))) == 1
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == []  # the update too is local (patch `local-message-updates`)
    assert activity_calls(history, "update_message") == 1
    assert activity_calls(history, "resolve_recipient") == 1
    assert activity_calls(history, "find_expectation") == 1
    assert activity_calls(history, "post_notification") == 1
    kinds = [e.event_type for e in history.events]
    slow_call = "resolve_recipient" if slow is SlowLookups else "post_notification"
    marker = next(
        i
        for i, e in enumerate(history.events)
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and slow_call.encode()
        in e.marker_recorded_event_attributes.details["data"].payloads[0].data
    )
    # The situation this test is about: workflow tasks came and went while it ran.
    assert kinds[:marker].count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) >= 1
    await assert_replays(history)


async def test_a_decision_that_comes_while_a_slow_first_question_is_posted_replays(
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A decision that comes while the first question's local activity is still waiting for a
    slow Slack (the security team approving from the CLI before the DM is out): approved, the
    DM posted once, and the history replays."""
    monkeypatch.setattr(worker, "SlackActivities", SlowFirstQuestion)
    settings = make_settings(slack_api_url)
    event = make_event("alice")
    async with running_worker(dev_env.client, settings):
        handle = await start_with_short_tasks(dev_env, event, settings)
        await asyncio.sleep(0.5)  # the post is under way (it takes 2.5 s)
        await decide(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
        history = await handle.fetch_history()
    assert record.status is EventStatus.APPROVED
    assert activity_calls(history, "post_notification") == 1
    await assert_replays(history)


class SlowUpdates(SlackActivities):
    """A Slack slow to take `chat.update`: long enough for a click to come in while the task
    that decided waits for the messages' updates."""

    @activity.defn(name="update_message")
    async def update_message(self, request: UpdateRequest) -> None:
        await asyncio.sleep(1.0)
        await super().update_message(request)


@pytest.mark.parametrize(
    ("second", "outcome"),
    [
        ((Action.REPORT, "U0ALICE"), EventStatus.REPORTED),
        ((Action.APPROVE, "U0STRANGER"), EventStatus.APPROVED),
    ],
    ids=["owner-not-me", "refused-click"],
)
async def test_a_click_while_the_decision_updates_its_messages_is_decided_with_it(
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
    second: tuple[Action, str],
    outcome: EventStatus,
) -> None:
    """The messages' updates are local activities in the task that decided, which also completes
    the workflow (patch `local-message-updates`). A click that comes while they run makes
    Temporal refuse that completion (`UNHANDLED_COMMAND`); the task runs again with both clicks:
    the owner's *Not me* goes first (the event is reported, although Slack showed the approval
    for a moment), a refused click changes nothing. Either way the record is the last thing
    every message shows, the workflow ran no activity task for it, and the history replays."""
    monkeypatch.setattr(worker, "SlackActivities", SlowUpdates)
    settings = make_settings(slack_api_url)
    event = make_event("alice")
    shows = "Reported as not me" if outcome is EventStatus.REPORTED else "Approved by"

    def dm() -> SlackMessage | None:
        message = fake_slack.messages[asked.channel, asked.ts]
        return message if shows in text_of(message) else None

    async with running_worker(dev_env.client, settings):
        handle = await start(dev_env, event, settings.task_queue)
        asked = await eventually(
            lambda: message_for(fake_slack, event.event_id, fake_slack.dm_channel("U0ALICE"))
        )
        await decide(handle, Action.APPROVE, "U0ALICE")
        await asyncio.sleep(0.5)  # the first update is under way (it takes 1 s)
        await decide(handle, *second)
        record = await state_eventually(handle, lambda r: r.status is outcome, within=30)
        shown = await eventually(dm, within=30)
        if outcome is EventStatus.REPORTED:
            await eventually(lambda: posted_to(fake_slack, SECURITY_CHANNEL) or None)
            history = await handle.fetch_history()
            await handle.terminate("the incident needs no acknowledgement here")
        else:
            record = await handle.result()
            history = await handle.fetch_history()
    refused = [
        e.workflow_task_failed_event_attributes.cause
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    # The situation this test is about.
    assert refused == [WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND]
    assert record.status is outcome
    if outcome is EventStatus.REPORTED:
        assert record.decision is None and "Approved" not in text_of(shown)
    else:
        assert record.report is None and "Reported" not in text_of(shown)
    assert buttons(shown) == []
    # The rerun handled two clicks: it updated by activity (patch `bounded-local-slack-calls`).
    assert scheduled_activities(history).count("update_message") == 1
    await assert_replays(history)


async def test_a_stream_of_clicks_cannot_keep_a_decided_event_open(
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clicks keep coming (a forged flood, a stranger clicking on) while the owner's approval
    updates its messages. Each came in while the local update ran (1 s here), so Temporal
    refused the completion, and the rerun updated locally again, for as long as clicks came: a
    decided event stayed open, with a `chat.update` a second. Now the rerun, having handled more
    than one click, updates by activity: its completion takes milliseconds, and the event is
    closed while the clicks still come (before: no end within 15 s at five clicking at once)."""
    monkeypatch.setattr(worker, "SlackActivities", SlowUpdates)
    settings = make_settings(slack_api_url)
    event = make_event("alice")
    clicking = True

    async def stranger() -> int:
        sent = 0
        while clicking:
            try:
                await decide(handle, Action.APPROVE, "U0STRANGER")
            except RPCError as err:
                assert err.status is RPCStatusCode.NOT_FOUND, err  # closed meanwhile
                break
            sent += 1
            await asyncio.sleep(0.02)
        return sent

    async with running_worker(dev_env.client, settings):
        handle = await start(dev_env, event, settings.task_queue)
        await eventually(
            lambda: message_for(fake_slack, event.event_id, fake_slack.dm_channel("U0ALICE"))
        )
        await decide(handle, Action.APPROVE, "U0ALICE")
        floods = [asyncio.create_task(stranger()) for _ in range(5)]
        try:
            record = await asyncio.wait_for(handle.result(), timeout=15)
        finally:
            clicking = False
            sent = sum(await asyncio.gather(*floods))
        history = await handle.fetch_history()
    assert record.status is EventStatus.APPROVED and record.decision is not None
    assert record.decision.by == "U0ALICE"
    assert sent > 50  # the clicks were still coming when the event closed
    updates = [c for c in fake_slack.calls if c["method"] == "chat.update"]
    assert len(updates) <= 3, len(updates)
    await assert_replays(history)


async def test_a_new_event_records_one_patch_marker_for_every_approval_patch(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    """The SDK records each patch's marker with an upsert of the `TemporalChangeVersion` search
    attribute: 19 patches were 38 of an approved event's 60 history events, in its first
    workflow task. A run of today's code records one marker for all of them (the newest of
    `APPROVAL_BASELINES`), which is also how the Web UI finds such runs."""
    settings = make_settings(slack_api_url)
    event = make_event("alice")
    async with running_worker(dev_env.client, settings):
        handle = await start(dev_env, event, settings.task_queue)
        await eventually(lambda: message_for(fake_slack, event.event_id))
        await decide(handle, Action.APPROVE, "U0ALICE")
        record = await handle.result()
        history = await handle.fetch_history()
    assert record.status is EventStatus.APPROVED
    markers = [
        json.loads(p.data).get("id")
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
        for payloads in e.marker_recorded_event_attributes.details.values()
        for p in payloads.payloads
    ]
    assert markers == [patches.APPROVAL_BASELINES[0][0]]
    upserts = sum(
        e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        for e in history.events
    )
    published = sum(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED for e in history.events
    )
    assert upserts == published + len(markers)  # each publish's status, and each marker's
    assert len(history.events) <= 30
    change = await eventually(lambda: _change_version(dev_env.client, event.event_id), within=10)
    assert change == markers


async def _change_version(client: Client, workflow_id: str) -> list[str] | None:
    """The run's `TemporalChangeVersion` as Temporal's visibility has it."""
    description = await client.get_workflow_handle(workflow_id).describe()
    found = description.search_attributes.get("TemporalChangeVersion")
    return list(found) if found else None  # type: ignore[arg-type]


@activity.defn(name="slow_lookup")
async def slow_lookup() -> str:
    await asyncio.sleep(5)
    return "too late"


@activity.defn(name="ask_as_usual")
async def ask_as_usual() -> str:
    return "asked as usual"


@workflow.defn(name="LocalTimeoutWorkflow", sandboxed=False)
class LocalTimeoutWorkflow:
    """A local activity that times out, caught as `ApprovalWorkflow` catches a lookup's failure
    (`_find_expectation`: ask as usual), then an activity."""

    @workflow.run
    async def run(self) -> str:
        try:
            return await _as_activity(
                workflow.execute_local_activity(
                    slow_lookup,
                    start_to_close_timeout=timedelta(milliseconds=300),
                    retry_policy=RetryPolicy(maximum_attempts=2),
                ),
                "slow_lookup",
            )
        except ActivityError:
            return await workflow.execute_activity(
                ask_as_usual, start_to_close_timeout=timedelta(seconds=5)
            )


async def test_a_local_activity_that_timed_out_replays_as_it_ran(
    dev_env: WorkflowEnvironment,
) -> None:
    """As it runs, a local activity's timeout reaches the workflow as an `ActivityError`; on
    replay (a worker restarted, a run evicted from the cache) as the bare `TimeoutError`, which
    went past `except ActivityError` and failed the workflow there: a nondeterminism error, the
    run stuck. `_as_activity` makes both an `ActivityError`."""
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[LocalTimeoutWorkflow],
        activities=[slow_lookup, ask_as_usual],
    ):
        handle = await dev_env.client.start_workflow(
            "LocalTimeoutWorkflow",
            id=f"local-timeout-{uuid.uuid4().hex}",
            task_queue=task_queue,
            result_type=str,
        )
        assert await handle.result() == "asked as usual"
        history = await handle.fetch_history()
    await assert_replays(history, LocalTimeoutWorkflow)
