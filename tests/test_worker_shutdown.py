"""Replacing a worker loses nothing: SIGTERM lets the Slack call in flight finish and report its
result, then the process exits; the next worker carries on from there. The worker runs as a real
subprocess (`python worker.py`), as a container would run it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import Response
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import Action
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app
from powertrip.services.starts import ResultStatus, start_approval
from tests.harness import (
    CONFIG_YAML,
    activity_calls,
    decide,
    make_event,
    make_settings,
    running_worker,
)
from tests.processes import worker_environment
from tests.servers import (
    SECURITY_CHANNEL,
    SLACK_TOKEN,
    ServedApp,
    free_port,
)
from workflows.approval import ApprovalWorkflow

REPO = Path(__file__).resolve().parents[1]
SLACK_DELAY = 3.0


async def test_sigterm_lets_the_slack_call_in_flight_finish(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    fake = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    fake.users["U0ALICE"] = FakeUser(id="U0ALICE", name="alice", email="alice@example.com")
    slack_app = create_fake_slack_app(fake)
    dm_requested = asyncio.Event()

    @slack_app.middleware("http")
    async def slow_post(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.endswith("/chat.postMessage"):
            dm_requested.set()
            await asyncio.sleep(SLACK_DELAY)  # Slack being slow just as the worker is replaced
        return await call_next(request)

    config = tmp_path / "powertrip.yaml"
    config.write_text(CONFIG_YAML)
    metrics = f"127.0.0.1:{free_port()}"
    async with ServedApp(slack_app) as slack:
        settings = make_settings(
            slack.url + "/api/", temporal_address=dev_env.client.service_client.config.target_host
        )
        env = worker_environment(
            settings,
            config,
            POWERTRIP_GRACEFUL_SHUTDOWN_SECONDS="20",
            POWERTRIP_LOG_LEVEL="INFO",
            POWERTRIP_METRICS_BIND=metrics,
        )
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "worker.py",
            cwd=REPO,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        assert worker.stderr is not None
        lines: list[dict] = []

        async def read_logs() -> None:
            assert worker.stderr is not None
            async for raw in worker.stderr:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    lines.append({"message": raw.decode(errors="replace")})

        reader = asyncio.create_task(read_logs())
        try:
            deadline = time.monotonic() + 60
            while not any("polling task queue" in line["message"] for line in lines):
                assert worker.returncode is None, lines
                assert time.monotonic() < deadline, lines
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient() as http:  # the container health check
                assert (await http.get(f"http://{metrics}/metrics")).status_code == 200

            event = make_event("alice")
            assert await start_approval(dev_env.client, event, settings.task_queue) is (
                ResultStatus.STARTED
            )
            await asyncio.wait_for(dm_requested.wait(), 30)
            worker.send_signal(signal.SIGTERM)
            terminated = time.monotonic()
            assert await asyncio.wait_for(worker.wait(), 30) == 0
            took = time.monotonic() - terminated
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
            await reader

        # It waited for Slack instead of abandoning the call...
        assert took >= SLACK_DELAY - 1.0, took
        messages = [line["message"] for line in lines]
        assert any("letting in-flight activities finish" in m for m in messages)
        assert messages[-1] == "worker stopped"
        # ...and reported the result: the DM is in the workflow's history, posted once.
        handle = dev_env.client.get_workflow_handle_for(ApprovalWorkflow.run, event.event_id)
        history = await handle.fetch_history()
        scheduled = {
            e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        }
        completed = [
            scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]
            for e in history.events
            if e.HasField("activity_task_completed_event_attributes")
        ]
        # The DM (a local activity in the first workflow task) is recorded once, and every
        # activity it scheduled completed, once: nothing abandoned.
        assert activity_calls(history, "post_notification") == 1
        assert sorted(completed) == sorted(scheduled.values()), (completed, scheduled)
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert attempts == [1] * len(scheduled)  # no attempt was abandoned and retried
        assert [m.channel for m in fake.messages.values()] == ["D0ALICE"]

        # A replacement worker picks up where the old one stopped.
        async with running_worker(dev_env.client, settings):
            await decide(handle, Action.APPROVE, "U0ALICE")
            record = await asyncio.wait_for(handle.result(), 30)
        assert record.status is EventStatus.APPROVED
        assert [m.channel for m in fake.messages.values()] == ["D0ALICE"]
        assert next(iter(fake.messages.values())).updates == 1
