"""Polling through faults: a worker restarted between polls, and the polled API down for
hours (Papertrail's search API and CloudWatch Logs on moto), on the time-skipping server under a
cron schedule (tests/test_polling.py says why). Moved here from the main suite, where a worker
restart on the shared server sometimes took 20-30 s of real time (issue 16's budget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from moto.server import ThreadedMotoServer
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.polling import PollOutcome
from powertrip.sandbox.fake_papertrail import FakePapertrail
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.sources.cloudwatch_api import CloudWatchCursor
from tests import test_cloudwatch_polling as cloudwatch
from tests import test_polling as papertrail
from tests.harness import channel_texts, eventually, make_settings, running_worker, stop
from tests.servers import free_port
from tests.test_cloudwatch_polling import aws, moto_url

__all__ = ["aws", "moto_url"]  # fixtures of the CloudWatch tests, used here by name


async def test_papertrail_polling_across_a_worker_restart_neither_skips_nor_repeats(
    time_skipping_env: WorkflowEnvironment,
    fake_papertrail: FakePapertrail,
    papertrail_url: str,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    env = time_skipping_env
    settings = papertrail.poll_settings(slack_api_url, papertrail_url)
    first = [papertrail.login(fake_papertrail, "alice") for _ in range(3)]
    async with running_worker(env.client, settings):
        handle = await papertrail.start_cron_poll(env.client, settings)
        await env.sleep(papertrail.FIVE_MINUTES + timedelta(seconds=30))
        await eventually(lambda: papertrail.all_started(env.client, first))
    # The worker is gone; logins keep happening.
    later = [papertrail.login(fake_papertrail, "bob") for _ in range(2)]
    async with running_worker(env.client, settings):
        await env.sleep(papertrail.FIVE_MINUTES)
        await eventually(lambda: papertrail.all_started(env.client, later))
        newest = max(later, key=int)
        for _ in range(3):  # a poll retried under load asks again from the same cursor
            await env.sleep(papertrail.FIVE_MINUTES)
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


async def test_papertrail_down_alerts_the_security_channel_once_then_says_it_recovered(
    time_skipping_env: WorkflowEnvironment,
    fake_papertrail: FakePapertrail,
    papertrail_url: str,
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    env = time_skipping_env
    settings = papertrail.poll_settings(slack_api_url, papertrail_url)
    fake_papertrail.down = True
    async with running_worker(env.client, settings):
        handle = await papertrail.start_cron_poll(env.client, settings)
        await env.sleep(timedelta(minutes=20))
        assert not any("has failed" in t for t in channel_texts(fake_slack))  # not yet 30 min
        for _ in range(12):  # two hours, in steps the test server answers promptly
            await env.sleep(timedelta(minutes=10))
        failures = [t for t in channel_texts(fake_slack) if "Polling papertrail has failed" in t]
        assert len(failures) == 1, failures
        assert "HTTP 503" in failures[0]
        assert len(fake_papertrail.requests) > 24  # it kept trying every poll

        fake_papertrail.down = False
        missed = papertrail.login(fake_papertrail, "alice")
        await env.sleep(papertrail.FIVE_MINUTES + timedelta(seconds=30))
        await eventually(lambda: papertrail.started(env.client, missed))
        await env.sleep(timedelta(minutes=30))
        texts = channel_texts(fake_slack)
        await stop(env.client, [handle.id, f"papertrail-{missed}"])
    assert len([t for t in texts if "Polling papertrail has failed" in t]) == 1
    assert len([t for t in texts if "works again" in t]) == 1


async def test_cloudwatch_polling_across_a_worker_restart_neither_skips_nor_repeats(
    time_skipping_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    aws: Any,
    moto_url: str,
) -> None:
    env = time_skipping_env
    settings = make_settings(slack_api_url, aws_endpoint_url=moto_url)
    group = cloudwatch.LogGroup(aws)
    now = cloudwatch.ms(datetime.now(UTC))
    group.put(
        "bastion",
        (now - 2, cloudwatch.sshd("alice", "bastion")),
        (now, cloudwatch.sshd("alice", "bastion")),
    )
    group.put("web", (now, cloudwatch.sshd("alice", "web")))
    first = [e["eventId"] for e in group.events()]
    async with running_worker(env.client, settings):
        handle = await cloudwatch.start_cron_poll(env.client, settings, group.name)
        await env.sleep(cloudwatch.FIVE_MINUTES + timedelta(seconds=30))
        await eventually(lambda: cloudwatch.all_started(env.client, first))
    # The worker is gone; logins keep happening, one in the cursor's own millisecond.
    group.put("db", (now, cloudwatch.sshd("bob", "db")), (now + 7, cloudwatch.sshd("bob", "db")))
    later = [e["eventId"] for e in group.events() if e["eventId"] not in first]
    async with running_worker(env.client, settings):
        await env.sleep(cloudwatch.FIVE_MINUTES)
        await eventually(lambda: cloudwatch.all_started(env.client, later))
        await env.sleep(cloudwatch.FIVE_MINUTES)

        async def three_polls() -> list[PollOutcome] | None:
            outcomes = await cloudwatch.poll_outcomes(env.client, handle)
            return outcomes if len(outcomes) >= 3 else None

        outcomes = await eventually(three_polls)
        await stop(env.client, [handle.id] + [f"cloudwatch-{i}" for i in first + later])

    # Every event read exactly once over all the polls: none skipped, none fetched again.
    assert sum(o.read for o in outcomes) == 5
    assert sum(o.started for o in outcomes) == 5
    assert sum(o.already_known for o in outcomes) == 0
    final = next(o.cursor for o in reversed(outcomes) if o.cursor)
    assert final is not None
    assert CloudWatchCursor.model_validate_json(final).timestamp == now + 7


async def test_cloudwatch_down_alerts_the_security_channel_once_then_says_it_recovered(
    time_skipping_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    aws: Any,
) -> None:
    env = time_skipping_env
    group = cloudwatch.LogGroup(aws)  # on the running moto server; the poll's endpoint is down
    port = free_port()
    settings = make_settings(slack_api_url, aws_endpoint_url=f"http://127.0.0.1:{port}")
    restored: ThreadedMotoServer | None = None
    try:
        async with running_worker(env.client, settings):
            handle = await cloudwatch.start_cron_poll(
                env.client, settings, group.name, alert_after_seconds=900
            )
            await env.sleep(timedelta(minutes=10))
            assert not any("has failed" in t for t in channel_texts(fake_slack))  # not yet 15m
            for _ in range(4):
                await env.sleep(timedelta(minutes=10))
            failures = [
                t for t in channel_texts(fake_slack) if "Polling cloudwatch has failed" in t
            ]
            assert len(failures) == 1, failures
            assert "unreachable" in failures[0]

            # CloudWatch is back (moto keeps its data per process, so the group is there).
            restored = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            restored.start()
            group.put(
                "bastion", (cloudwatch.ms(datetime.now(UTC)), cloudwatch.sshd("alice", "bastion"))
            )
            [missed] = [e["eventId"] for e in group.events()]
            await env.sleep(cloudwatch.FIVE_MINUTES + timedelta(seconds=30))
            await eventually(lambda: cloudwatch.started(env.client, missed))
            await env.sleep(timedelta(minutes=30))
            texts = channel_texts(fake_slack)
            await stop(env.client, [handle.id, f"cloudwatch-{missed}"])
    finally:
        if restored is not None:
            restored.stop()
    assert len([t for t in texts if "Polling cloudwatch has failed" in t]) == 1
    assert len([t for t in texts if "Polling cloudwatch works again" in t]) == 1
