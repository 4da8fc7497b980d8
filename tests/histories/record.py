"""Record histories of the current ApprovalWorkflow for the replay test (tests/test_replay.py).

    .venv/bin/python -m tests.histories.record

Runs each path a real event takes (approve; not me then acknowledge; reminders then approve) on
the time-skipping test server with a real worker and the fake Slack over HTTP, and writes one
JSON history per path next to this file. Re-record only when a version of ApprovalWorkflow is
retired, i.e. no workflow started under the old code can still be running: these files are what
proves that new code still replays what thousands of pending approvals already did.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from powertrip.approvals import Action
from powertrip.binaries import temporal_test_server
from powertrip.ingest import ResultStatus, start_approval
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app
from powertrip.temporal import ensure_search_attributes
from tests.conftest import SECURITY_CHANNEL, SLACK_TOKEN, ServedApp
from tests.harness import click, eventually, make_event, make_settings, running_worker
from workflows.approval import ApprovalWorkflow

HERE = Path(__file__).resolve().parent

Scenario = Callable[[WorkflowEnvironment, WorkflowHandle, FakeSlack], Awaitable[None]]


def _posted(fake: FakeSlack, channel: str, at_least: int = 1) -> bool:
    return sum(m.channel == channel for m in fake.messages.values()) >= at_least


async def approve(env: WorkflowEnvironment, handle: WorkflowHandle, fake: FakeSlack) -> None:
    await eventually(lambda: _posted(fake, "D0ALICE"))
    await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0ALICE"))


async def not_me_then_acknowledge(
    env: WorkflowEnvironment, handle: WorkflowHandle, fake: FakeSlack
) -> None:
    await eventually(lambda: _posted(fake, "D0ALICE"))
    await handle.signal(ApprovalWorkflow.decide, click(Action.NOT_ME, "U0ALICE"))
    await eventually(lambda: _posted(fake, SECURITY_CHANNEL))
    # One unacknowledged reminder, then an ignored click, then the team closes it.
    await env.sleep(timedelta(minutes=16))
    await eventually(lambda: _posted(fake, SECURITY_CHANNEL, at_least=2))
    await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0ALICE"))
    await handle.signal(ApprovalWorkflow.decide, click(Action.ACKNOWLEDGE, "U0SEC1"))


async def reminders_then_approve(
    env: WorkflowEnvironment, handle: WorkflowHandle, fake: FakeSlack
) -> None:
    await eventually(lambda: _posted(fake, "D0ALICE"))
    await env.sleep(timedelta(minutes=47))
    await eventually(lambda: _posted(fake, SECURITY_CHANNEL, at_least=3))
    await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0SEC1"))


SCENARIOS: dict[str, Scenario] = {
    "approve": approve,
    "not_me_acknowledge": not_me_then_acknowledge,
    "reminders": reminders_then_approve,
}


async def record(out_dir: Path = HERE) -> list[Path]:
    fake = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    for user_id, name in [("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0SEC1", "sec1")]:
        fake.users[user_id] = FakeUser(id=user_id, name=name, email=f"{name}@example.com")
    written = []
    async with ServedApp(create_fake_slack_app(fake)) as served:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal_test_server(),
            data_converter=pydantic_data_converter,
        )
        async with env:
            await ensure_search_attributes(env.client, env.client.namespace)
            settings = make_settings(served.url + "/api/")
            async with running_worker(env.client, settings):
                for name, scenario in SCENARIOS.items():
                    fake.reset()
                    event = make_event("alice", provider_id=f"history-{name}")
                    status = await start_approval(env.client, event, settings.task_queue)
                    assert status is ResultStatus.STARTED
                    handle = env.client.get_workflow_handle(event.event_id)
                    await scenario(env, handle, fake)
                    written.append(await save(handle, out_dir / f"{name}.json"))
    return written


async def save(handle: WorkflowHandle, path: Path) -> Path:
    """Wait for the workflow to finish and write its history to `path`."""
    await handle.result()
    return write_history(await handle.fetch_history(), path)


def write_history(history: WorkflowHistory, path: Path) -> Path:
    # Pretty-printed so a diff shows what a re-recording changed.
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return path


if __name__ == "__main__":
    for path in asyncio.run(record()):
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
