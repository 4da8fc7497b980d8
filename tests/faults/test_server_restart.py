"""The Temporal dev server stopped and started again on the same SQLite file, with approvals
pending: they survive, their reminder timers still fire, and a Slack click after the restart,
through an API replica that stayed up across it, still approves. Two workers share the work: a
`python worker.py` that stays up across the restart, and one stopped and started with the
server."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus

from powertrip.contracts.approval import Action, TimelineKind
from powertrip.devserver import start_dev_server
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.faults import (
    add_people,
    approval_event,
    dms_per_event,
    people_config,
    person,
    task_identities,
    worker_identity,
)
from tests.harness import (
    WEBHOOK_HEADERS,
    alert,
    api_client,
    decide,
    make_settings,
    papertrail_event,
    running_worker,
    slack_click,
    state_eventually,
)
from tests.processes import WorkerProcess
from tests.servers import free_port
from workflows.approval import ApprovalWorkflow

EVENTS = 3
# Real time, not the time-skipping server: the fault is the dev server's own process and SQLite
# file going away, which the time-skipping server does not have. The reminder is a few seconds
# so it falls due while the server is down and must fire after the restart.
RENOTIFY = "4s"


async def test_pending_approvals_survive_a_server_restart_and_still_remind_and_approve(
    fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    add_people(fake_slack, EVENTS)
    # The API reads it too: it recognises events, and the rule gives each its reminder delay.
    config = people_config(EVENTS, folder=tmp_path, renotify_after=RENOTIFY)
    database, port = tmp_path / "temporal.db", free_port()
    run = uuid.uuid4().hex[:8]
    events = [papertrail_event(f"{run}-{n}", user=person(n)[0]) for n in range(EVENTS)]
    settings = make_settings(
        slack_api_url, temporal_address=f"127.0.0.1:{port}", config=tmp_path / "powertrip.yaml"
    )
    before = await start_dev_server(database, port=port)
    try:
        # Up across the restart: two API replicas, and a `python worker.py` that has to find
        # the server again by itself. This process's worker stops with the server, and a new
        # one starts once the survivor has fired the reminders.
        async with (
            api_client(settings) as http,
            api_client(settings) as other_replica,
            WorkerProcess(settings, tmp_path / "powertrip.yaml") as survivor,
        ):
            async with running_worker(before.client, settings, config):
                response = await http.post(
                    "/webhooks/papertrail", json=alert(*events), headers=WEBHOOK_HEADERS
                )
                ids = [r["event_id"] for r in response.json()["results"]]
                handles = [
                    before.client.get_workflow_handle_for(ApprovalWorkflow.run, e) for e in ids
                ]
                # Down only once every DM is recorded (a click is checked against them).
                for handle in handles:
                    await state_eventually(handle, lambda record: bool(record.messages))
            down_at = datetime.now(UTC)
            await before.shutdown()
            # Every first reminder falls due while the server is down.
            async with await start_dev_server(database, port=port) as after:
                handles = [
                    after.client.get_workflow_handle_for(ApprovalWorkflow.run, e) for e in ids
                ]
                for handle in handles:  # still there, still waiting
                    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
                # Only the survivor is up: it finds the server again and fires every timer.
                for handle in handles:
                    await state_eventually(
                        handle,
                        lambda r: any(
                            e.what is TimelineKind.REMINDED and e.at > down_at for e in r.timeline
                        ),
                        within=60,
                    )
                asked = dms_per_event(fake_slack)
                async with running_worker(after.client, settings, config):  # two workers again
                    # A click through the other replica, up across the restart, approves.
                    dm = next(
                        m
                        for m in fake_slack.messages.values()
                        if approval_event(m) == ids[0] and m.channel.startswith("D")
                    )
                    click = await slack_click(other_replica, person(0)[1], "approve", ids[0], dm)
                    assert click.status_code == 200
                    for n, handle in enumerate(handles[1:], start=1):
                        await decide(handle, Action.APPROVE, person(n)[1])
                    records = await asyncio.wait_for(
                        asyncio.gather(*(h.result() for h in handles)), 60
                    )
                await survivor.stop()  # while its server is still there to drain to
                tasks = await task_identities(after.client, ids)
    finally:
        await before.shutdown()  # a no-op once shut down
    assert all(r.status is EventStatus.APPROVED for r in records)
    assert records[0].decision is not None and records[0].decision.by == person(0)[1]
    assert asked == Counter({e: 1 for e in ids})  # nobody asked twice
    # Every reminder was the survivor's: it was the only worker up when they fired.
    assert tasks[worker_identity(survivor.pid)] >= EVENTS, tasks
    print(f"FIGURES tasks per worker: {dict(tasks)}")
