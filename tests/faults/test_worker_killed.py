"""A worker SIGKILLed in the middle of a burst (no graceful shutdown: activities in flight are
abandoned mid-call), with a second worker up throughout, then started again: every event is
asked once and completes.

The worker is a real `python worker.py` process. A Slack call the killed worker made but never
reported is retried once its attempt times out (SLACK_CALL_TIMEOUT, 20 s). chat.postMessage has
no idempotency key, so before the retry posts it looks for the DM the killed attempt may already
have posted (by the message's metadata, `activities.slack.POST_METADATA`): nobody is asked twice.
tests/test_worker_shutdown.py proves the graceful case (SIGTERM)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import Action
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app
from powertrip.services.starts import ResultStatus, start_approval
from tests.faults import (
    add_people,
    dms_per_event,
    people_config,
    person,
    task_identities,
    worker_identity,
)
from tests.harness import (
    CONFIG_YAML,
    WEBHOOK_HEADERS,
    activity_calls,
    alert,
    api_client,
    decide,
    eventually,
    make_event,
    make_settings,
    papertrail_event,
)
from tests.processes import WorkerProcess
from tests.servers import SECURITY_CHANNEL, SLACK_TOKEN, ServedApp
from workflows.approval import ApprovalWorkflow

EVENTS = 60
BATCH = 20
KILL_AFTER = 15  # DMs posted when the worker is killed


async def test_worker_sigkilled_mid_burst_then_restarted_completes_every_event(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    add_people(fake_slack, EVENTS)
    people_config(EVENTS, folder=tmp_path)
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    run = uuid.uuid4().hex[:8]
    events = [papertrail_event(f"{run}-{n}", user=person(n)[0]) for n in range(EVENTS)]
    config = tmp_path / "powertrip.yaml"
    # A second `python worker.py` runs throughout: the killed one's work moves to it while the
    # killed one is away, and a third starts in its place.
    async with api_client(settings) as http, WorkerProcess(settings, config) as survivor:
        async with WorkerProcess(settings, config) as first:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/webhooks/papertrail",
                        json=alert(*events[b : b + BATCH]),
                        headers=WEBHOOK_HEADERS,
                    )
                    for b in range(0, EVENTS, BATCH)
                )
            )
            ids = [r["event_id"] for resp in responses for r in resp.json()["results"]]
            assert len(ids) == EVENTS
            await eventually(lambda: len(dms_per_event(fake_slack)) >= KILL_AFTER, within=60)
            await first.kill()
            asked_at_kill = len(dms_per_event(fake_slack))
        assert asked_at_kill < EVENTS, "the burst was over before the kill: nothing was tested"

        async with WorkerProcess(settings, config) as restarted:
            # Abandoned attempts are retried after their 20 s start-to-close timeout.
            await eventually(lambda: set(dms_per_event(fake_slack)) == set(ids), within=90)
            asked = dms_per_event(fake_slack)
            handles = [
                dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
                for event_id in ids
            ]
            for n, handle in enumerate(handles):
                await decide(handle, Action.APPROVE, person(n)[1])
            records = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 90)
            asked = dms_per_event(fake_slack)  # every abandoned attempt has been retried by now
        tasks = await task_identities(dev_env.client, ids)

    assert all(r.status is EventStatus.APPROVED for r in records)
    twice = sum(count - 1 for count in asked.values())
    by = {
        name: tasks[worker_identity(w.pid)]
        for name, w in (("killed", first), ("survivor", survivor), ("restarted", restarted))
    }
    print(f"FIGURES killed after {asked_at_kill}/{EVENTS} DMs; asked twice: {twice}; tasks {by}")
    assert twice == 0, asked
    assert by["killed"] > 0, "the killed worker had done nothing: nothing was tested"


@pytest.mark.parametrize("held", [0.0, 9.0], ids=["at-once", "after-a-task-heartbeat"])
async def test_a_worker_killed_after_slack_took_the_first_question_asks_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, held: float
) -> None:
    """The first question is a local activity (patch `local-first-question`): it leaves no trace
    in history until its workflow task completes. Slack took the DM and held its answer `held`
    seconds, then the worker died: the next worker runs the task again from its start, and that
    run looks for the DM the lost one posted instead of asking again. `at-once`: the first task
    is retried (its history says so). `after-a-task-heartbeat`: past 8 s the SDK completed the
    first task while the post still ran, so the rerun replays it with the history of a first
    attempt; the post, starting long after the task's time, looks first all the same."""
    fake = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    fake.users["U0ALICE"] = FakeUser(id="U0ALICE", name="alice", email="alice@example.com")
    slack_app = create_fake_slack_app(fake)
    posted, release = asyncio.Event(), asyncio.Event()

    @slack_app.middleware("http")
    async def answer_lost(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.endswith("/chat.postMessage") and not posted.is_set():
            posted.set()  # posted; the answer is held until the worker that asked is gone
            await asyncio.wait_for(release.wait(), 120)
        return response

    config = tmp_path / "powertrip.yaml"
    config.write_text(CONFIG_YAML)
    event = make_event("alice")
    async with ServedApp(slack_app) as slack:
        settings = make_settings(
            slack.url + "/api/", temporal_address=dev_env.client.service_client.config.target_host
        )
        try:
            async with WorkerProcess(settings, config) as first:
                assert await start_approval(dev_env.client, event, settings.task_queue) is (
                    ResultStatus.STARTED
                )
                await asyncio.wait_for(posted.wait(), 30)
                await asyncio.sleep(held)
                await first.kill()
        finally:
            release.set()
        handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event.event_id)
        async with WorkerProcess(settings, config):
            # The lost task is tried again once its timeout (10 s) has passed.
            await decide(handle, Action.APPROVE, "U0ALICE")
            record = await asyncio.wait_for(handle.result(), 60)
        history = await handle.fetch_history()
    dms = [m for m in fake.messages.values() if m.channel == fake.dm_channel("U0ALICE")]
    assert len(dms) == 1, dms
    assert record.status is EventStatus.APPROVED
    assert [m.ts for m in record.messages] == [dms[0].ts]
    # What this test is about: a workflow task was lost after the post, and tried again...
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT in kinds
    assert activity_calls(history, "post_notification") == 1
    # ...the first one itself, or (held past the heartbeat) one after it had been completed.
    lost = kinds.index(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
    assert kinds[:lost].count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == (held > 8)
