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
    channel_texts,
    eventually,
    make_config,
    make_settings,
    running_worker,
    stop,
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


async def test_polling_across_a_worker_restart_neither_skips_nor_repeats(
    time_skipping_env: WorkflowEnvironment,
    fake_papertrail: FakePapertrail,
    papertrail_url: str,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    env = time_skipping_env
    settings = poll_settings(slack_api_url, papertrail_url)
    first = [login(fake_papertrail, "alice") for _ in range(3)]
    async with running_worker(env.client, settings):
        handle = await start_cron_poll(env.client, settings)
        await env.sleep(FIVE_MINUTES + timedelta(seconds=30))
        await eventually(lambda: all_started(env.client, first))
    # The worker is gone; logins keep happening.
    later = [login(fake_papertrail, "bob") for _ in range(2)]
    async with running_worker(env.client, settings):
        await env.sleep(FIVE_MINUTES)
        await eventually(lambda: all_started(env.client, later))
        newest = max(later, key=int)
        for _ in range(3):  # a poll retried under load asks again from the same cursor
            await env.sleep(FIVE_MINUTES)
            if any(r.get("min_id") == newest for r in fake_papertrail.requests):
                break
        await stop(env.client, [handle.id] + [f"papertrail-{i}" for i in first + later])

    requests = fake_papertrail.requests
    # First poll: a bounded look back. Every later poll continues after the newest id already
    # processed: nothing skipped (the cursor never passes an unprocessed id), nothing fetched
    # again once processed (the cursor only moves forward).
    assert "min_time" in requests[0] and "min_id" not in requests[0]
    cursors = [int(r["min_id"]) for r in requests[1:]]
    assert cursors == sorted(cursors)
    assert set(cursors) == {int(max(first, key=int)), int(newest)}
    assert all(r["tail"] == "false" for r in requests)


async def test_api_down_alerts_the_security_channel_once_then_says_it_recovered(
    time_skipping_env: WorkflowEnvironment,
    fake_papertrail: FakePapertrail,
    papertrail_url: str,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    env = time_skipping_env
    settings = poll_settings(slack_api_url, papertrail_url)
    fake_papertrail.down = True
    async with running_worker(env.client, settings):
        handle = await start_cron_poll(env.client, settings)
        await env.sleep(timedelta(minutes=20))
        assert not any("has failed" in t for t in channel_texts(fake_slack))  # not yet 30 min
        for _ in range(12):  # two hours, in steps the test server answers promptly
            await env.sleep(timedelta(minutes=10))
        failures = [t for t in channel_texts(fake_slack) if "Polling papertrail has failed" in t]
        assert len(failures) == 1, failures
        assert "HTTP 503" in failures[0]
        assert len(fake_papertrail.requests) > 24  # it kept trying every poll

        fake_papertrail.down = False
        missed = login(fake_papertrail, "alice")
        await env.sleep(FIVE_MINUTES + timedelta(seconds=30))
        await eventually(lambda: started(env.client, missed))
        await env.sleep(timedelta(minutes=30))
        texts = channel_texts(fake_slack)
        await stop(env.client, [handle.id, f"papertrail-{missed}"])
    assert len([t for t in texts if "Polling papertrail has failed" in t]) == 1
    assert len([t for t in texts if "works again" in t]) == 1


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
