"""Duplicate deliveries: a log shipper retries, a load balancer sends the retry to another API
replica, and both copies race, with two workers sharing the work. One event is one workflow and
one DM, whatever the interleaving."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import APPROVAL_WORKFLOW, Action
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.faults import add_people, approval_event, dms_per_event, people_config, person
from tests.harness import (
    WEBHOOK_HEADERS,
    alert,
    api_client,
    decide,
    eventually,
    make_settings,
    papertrail_event,
    running_worker,
)
from tests.processes import WorkerProcess
from workflows.approval import ApprovalWorkflow

EVENTS = 30
BATCHES = 3
COPIES = 3  # each batch delivered three times
REPLICAS = 2


async def test_each_batch_three_times_across_two_replicas_is_one_workflow_and_one_dm_each(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    add_people(fake_slack, EVENTS)
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    run = uuid.uuid4().hex[:8]
    events = [papertrail_event(f"{run}-{n}", user=person(n)[0]) for n in range(EVENTS)]
    size = EVENTS // BATCHES
    batches = [alert(*events[b * size : (b + 1) * size]) for b in range(BATCHES)]
    async with AsyncExitStack() as stack:
        replicas: list[httpx.AsyncClient] = [
            await stack.enter_async_context(api_client(settings)) for _ in range(REPLICAS)
        ]
        # Two workers share the task queue: this process's and a `python worker.py`.
        config = people_config(EVENTS, folder=tmp_path)
        await stack.enter_async_context(running_worker(dev_env.client, settings, config))
        await stack.enter_async_context(WorkerProcess(settings, tmp_path / "powertrip.yaml"))
        # Every copy of every batch in flight at once, copies alternating between replicas.
        deliveries = [
            replicas[(b + c) % REPLICAS].post(
                "/webhooks/papertrail", json=batches[b], headers=WEBHOOK_HEADERS
            )
            for c in range(COPIES)
            for b in range(BATCHES)
        ]
        responses = await asyncio.gather(*deliveries)
        assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
        outcomes: dict[str, Counter[str]] = {}
        for response in responses:
            for result in response.json()["results"]:
                outcomes.setdefault(result["event_id"], Counter())[result["status"]] += 1
        # Each event: started by exactly one copy, the two others told it is a duplicate.
        assert len(outcomes) == EVENTS
        assert all(o == Counter(started=1, duplicate=COPIES - 1) for o in outcomes.values()), (
            outcomes
        )

        await eventually(lambda: len(dms_per_event(fake_slack)) == EVENTS, within=60)
        first_dms = dms_per_event(fake_slack)
        handles = [
            dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
            for event_id in outcomes
        ]
        for handle in handles:
            owner = next(
                m.channel
                for m in fake_slack.messages.values()
                if approval_event(m) == handle.id and m.channel.startswith("D")
            )
            await decide(handle, Action.APPROVE, "U" + owner[1:])
        # The work really was spread: workflow tasks (whose local activities asked and
        # posted) ran on both workers.
        histories = await asyncio.gather(*(h.fetch_history() for h in handles))
        workers = {
            e.workflow_task_completed_event_attributes.identity
            for history in histories
            for e in history.events
            if e.HasField("workflow_task_completed_event_attributes")
        }
        assert len(workers) == 2, workers
        records = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)

    # Finished, so no DM can still come; the approved DMs lost their buttons (updated), so count
    # every message ever posted to a DM: one per event, each event's own.
    assert all(r.status is EventStatus.APPROVED for r in records)
    assert first_dms == Counter({event_id: 1 for event_id in outcomes})
    assert len([m for m in fake_slack.messages.values() if m.channel.startswith("D")]) == EVENTS
    # One workflow per event on this task queue, nothing else started by the copies.
    query = f"WorkflowType = '{APPROVAL_WORKFLOW}' AND TaskQueue = '{settings.task_queue}'"

    async def all_visible() -> int | None:
        count = (await dev_env.client.count_workflows(query)).count
        return count if count >= EVENTS else None

    assert await eventually(all_visible, within=20) == EVENTS
