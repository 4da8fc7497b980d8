"""The API down while Slack delivers a click: Slack gets no answer and retries the same request
(`X-Slack-Retry-Num`); once an API replica answers, the click is applied, once, however many
copies then arrive. Two API replicas take the retries; the worker that was up with the API
goes away with it, and the click is applied by a second worker, a `python worker.py`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import TimelineKind
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.faults import people_config, task_identities, worker_identity
from tests.harness import (
    api_client,
    click_request,
    deliver_login,
    eventually,
    make_settings,
    message_for,
    running_worker,
    state_eventually,
)
from tests.processes import WorkerProcess
from workflows.approval import ApprovalWorkflow


def retried(n: int) -> dict[str, str]:
    """The headers Slack adds to its `n`th retry of a request it got no answer to."""
    return {"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_error"}


async def test_a_click_retried_by_slack_while_the_api_was_down_is_applied_once(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    config = people_config(0, folder=tmp_path)
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        config=tmp_path / "powertrip.yaml",
    )
    # Two workers on the task queue: a `python worker.py`, and this process's, which goes away
    # with the API replica.
    async with WorkerProcess(settings, tmp_path / "powertrip.yaml") as survivor:
        async with running_worker(dev_env.client, settings, config), api_client(settings) as http:
            event_id = await deliver_login(http, provider_id=f"apidown-{uuid.uuid4().hex[:10]}")
            dm = await eventually(lambda: message_for(fake_slack, event_id))
            handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
            await state_eventually(handle, lambda record: bool(record.messages))
            url = str(http.base_url)
        # The replica is gone: Slack's delivery fails like this, and Slack will retry it.
        body, headers = click_request("U0ALICE", "approve", event_id, dm)
        async with httpx.AsyncClient(timeout=5) as slack:
            with pytest.raises(httpx.ConnectError):
                await slack.post(f"{url}/slack/interactions", content=body, headers=headers)
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        # A replica is back: Slack's retries arrive, two of them at once (one per replica the
        # load balancer picks), carrying the same signed body.
        async with api_client(settings) as first, api_client(settings) as second:
            retries = await asyncio.gather(
                *(
                    api.post(
                        "/slack/interactions",
                        content=body,
                        headers={**headers, **retried(n)},
                    )
                    for n, api in ((1, first), (2, second))
                )
            )
            assert [r.status_code for r in retries] == [200, 200]
            record = await asyncio.wait_for(handle.result(), 30)
        tasks = await task_identities(dev_env.client, [event_id])
    assert record.status is EventStatus.APPROVED
    assert record.decision is not None and record.decision.by == "U0ALICE"
    assert [e.what for e in record.timeline].count(TimelineKind.APPROVED) == 1
    assert len([m for m in fake_slack.messages.values() if m.channel == "D0ALICE"]) == 1
    # The click was applied by the worker that stayed: the only one up when it came.
    assert tasks[worker_identity(survivor.pid)] >= 1, tasks
    print(f"FIGURES tasks per worker: {dict(tasks)}")
