"""The Temporal dev server stopped and started again on the same SQLite file, with approvals
pending: they survive, their reminder timers still fire, and a Slack click after the restart,
through the API that stayed up across it, still approves."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus

from powertrip.contracts.approval import Action, TimelineKind
from powertrip.devserver import start_dev_server
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.faults import add_people, approval_event, people_config, person
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
        async with api_client(settings) as http:  # up across the restart
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
            # Server and worker are gone; every first reminder falls due meanwhile.
            async with await start_dev_server(database, port=port) as after:
                handles = [
                    after.client.get_workflow_handle_for(ApprovalWorkflow.run, e) for e in ids
                ]
                for handle in handles:  # still there, still waiting
                    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
                async with running_worker(after.client, settings, config):
                    # The timers survived: each event reminds, after the restart.
                    for handle in handles:
                        await state_eventually(
                            handle,
                            lambda r: any(
                                e.what is TimelineKind.REMINDED and e.at > down_at
                                for e in r.timeline
                            ),
                            within=30,
                        )
                    # A click through the API that stayed up across the restart approves.
                    dm = next(
                        m
                        for m in fake_slack.messages.values()
                        if approval_event(m) == ids[0] and m.channel.startswith("D")
                    )
                    click = await slack_click(http, person(0)[1], "approve", ids[0], dm)
                    assert click.status_code == 200
                    for n, handle in enumerate(handles[1:], start=1):
                        await decide(handle, Action.APPROVE, person(n)[1])
                    records = await asyncio.wait_for(
                        asyncio.gather(*(h.result() for h in handles)), 60
                    )
    finally:
        await before.shutdown()  # a no-op once shut down
    assert all(r.status is EventStatus.APPROVED for r in records)
    assert records[0].decision is not None and records[0].decision.by == person(0)[1]
