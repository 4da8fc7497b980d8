"""Continuous polling of the Papertrail search API (the local fake, over HTTP).

The Java time-skipping test server implements no Schedule API (CreateSchedule is UNIMPLEMENTED
there), so the hours-long behaviour (restart, outage alerting) runs `PollWorkflow` under a cron
schedule on it: the same hand-over of the previous run's result
(`workflow.get_last_completion_result`) that a Temporal Schedule gives. The real Schedule
(create, update keeping the cursor and the pause, trigger) is tested on the dev server.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleHandle,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.polling import PollInput, PollState
from powertrip.sandbox.fake_papertrail import FakePapertrail
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.services.starts import ensure_poll_schedules, schedule_id
from powertrip.settings import Settings
from tests.harness import (
    make_config,
    make_settings,
    running_worker,
)
from tests.servers import PAPERTRAIL_TOKEN
from workflows.poll import PollWorkflow

FIVE_MINUTES = timedelta(minutes=5)


def login(fake: FakePapertrail, user: str, host: str = "bastion") -> str:
    port = uuid.uuid4().int % 60000
    return str(
        fake.add(
            f"Accepted publickey for {user} from 203.0.113.7 port {port} ssh2", hostname=host
        ).id
    )


def poll_settings(slack_api_url: str, papertrail_url: str, **overrides: object) -> Settings:
    return make_settings(
        slack_api_url,
        papertrail_api_token=PAPERTRAIL_TOKEN,
        papertrail_api_url=papertrail_url,
        **overrides,
    )


async def start_cron_poll(client: Client, settings: Settings, **options: float) -> WorkflowHandle:
    poll = PollInput(source="papertrail", every_seconds=300, alert_after_seconds=1800, **options)
    return await client.start_workflow(
        PollWorkflow.run,
        poll,
        id=f"poll-{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue,
        cron_schedule="*/5 * * * *",
    )


async def started(client: Client, provider_id: str) -> bool:
    try:
        await client.get_workflow_handle(f"papertrail-{provider_id}").describe()
    except Exception:
        return False
    return True


async def all_started(client: Client, ids: list[str]) -> bool:
    return all([await started(client, i) for i in ids])


async def test_schedule_is_created_updated_without_losing_its_cursor_and_pausable(
    dev_env: WorkflowEnvironment,
    fake_papertrail: FakePapertrail,
    papertrail_url: str,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    client = dev_env.client
    settings = poll_settings(
        slack_api_url,
        papertrail_url,
        temporal_address=client.service_client.config.target_host,
    )
    config = make_config(sources={"papertrail": {"poll": {"every": "1h", "alert_after": "15m"}}})
    schedule = client.get_schedule_handle(schedule_id("papertrail"))
    first = [login(fake_papertrail, "alice") for _ in range(2)]
    async with running_worker(client, settings, config):
        try:
            assert await ensure_poll_schedules(client, config, settings.task_queue) == [
                "powertrip-poll-papertrail"
            ]
            described = await schedule.describe()
            assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
            state = await trigger_and_wait(client, schedule)
            assert state.cursor == max(first, key=int)
            assert await all_started(client, first)

            # Paused in the UI, then the worker restarts with a new interval: the update keeps
            # the pause and the cursor.
            await schedule.pause(note="investigating")
            changed = make_config(sources={"papertrail": {"poll": {"every": "30m"}}})
            await ensure_poll_schedules(client, changed, settings.task_queue)
            described = await schedule.describe()
            assert described.schedule.state.paused
            assert described.schedule.spec.intervals[0].every == timedelta(minutes=30)
            await schedule.unpause()

            later = [login(fake_papertrail, "bob") for _ in range(2)]
            state = await trigger_and_wait(client, schedule)
            assert state.cursor == max(later, key=int)
            assert fake_papertrail.requests[-1]["min_id"] == max(first, key=int)
            assert await all_started(client, later)
        finally:
            await schedule.delete()


async def trigger_and_wait(client: Client, schedule: ScheduleHandle) -> PollState:
    before = len((await schedule.describe()).info.recent_actions)
    await schedule.trigger()
    for _ in range(200):
        actions = (await schedule.describe()).info.recent_actions
        if len(actions) > before:
            action = actions[-1].action
            assert isinstance(action, ScheduleActionExecutionStartWorkflow)
            handle = client.get_workflow_handle_for(
                PollWorkflow.run, action.workflow_id, run_id=action.first_execution_run_id
            )
            return await handle.result()
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule did not start a poll")
