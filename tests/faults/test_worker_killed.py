"""A worker SIGKILLed in the middle of a burst (no graceful shutdown: activities in flight are
abandoned mid-call), then started again: every event is asked and completes.

The worker is a real `python worker.py` process. A Slack call the killed worker made but never
reported is retried once its attempt times out (SLACK_CALL_TIMEOUT, 20 s). chat.postMessage has
no idempotency key, so before the retry posts it looks for the DM the killed attempt may already
have posted (by the message's metadata, `activities.slack.POST_METADATA`): nobody is asked twice.
tests/test_worker_shutdown.py proves the graceful case (SIGTERM)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import Action
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.faults import add_people, dms_per_event, people_config, person
from tests.harness import (
    WEBHOOK_HEADERS,
    alert,
    api_client,
    decide,
    eventually,
    make_settings,
    papertrail_event,
)
from tests.processes import WorkerProcess
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
    async with api_client(settings) as http:
        async with WorkerProcess(settings, tmp_path / "powertrip.yaml") as first:
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

        async with WorkerProcess(settings, tmp_path / "powertrip.yaml"):
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

    assert all(r.status is EventStatus.APPROVED for r in records)
    twice = sum(count - 1 for count in asked.values())
    print(f"FIGURES killed after {asked_at_kill}/{EVENTS} DMs; asked twice: {twice}")
    assert twice == 0, asked
