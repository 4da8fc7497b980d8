"""Record histories of PollWorkflow for the replay test (tests/test_poll_replay.py).

    .venv/bin/python -m tests.histories.record_poll

Runs one poll of each shape (events found; the provider down long enough to alert; the first
success after an alert) on the time-skipping test server against the fake Papertrail and the
fake Slack over HTTP, and writes one JSON history per shape into `poll/`. The schedule starts a
poll every interval, so a deploy finds polls in flight: these files prove the new code still
replays them. Re-record only when a version of PollWorkflow is retired.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from powertrip.binaries import temporal_test_server
from powertrip.polling import PollInput, PollState
from powertrip.sandbox.fake_papertrail import FakePapertrail, create_fake_papertrail_app
from powertrip.sandbox.fake_slack import FakeSlack, create_fake_slack_app
from powertrip.temporal import ensure_search_attributes
from tests.conftest import PAPERTRAIL_TOKEN, SECURITY_CHANNEL, SLACK_TOKEN, ServedApp
from tests.harness import make_settings, running_worker
from tests.histories.record import save
from workflows.poll import PollWorkflow

HERE = Path(__file__).resolve().parent / "poll"


async def record(out_dir: Path = HERE) -> list[Path]:
    slack = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    papertrail = FakePapertrail(token=PAPERTRAIL_TOKEN)
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    shapes = {
        "poll_ok": (False, PollInput(source="papertrail")),
        "poll_failed_alert": (True, PollInput(source="papertrail", alert_after_seconds=0)),
        "poll_recovered": (
            False,
            PollInput(
                source="papertrail",
                state=PollState(failing_since=long_ago, alerted=True, last_error="HTTP 503"),
            ),
        ),
    }
    written = []
    async with (
        ServedApp(create_fake_slack_app(slack)) as slack_app,
        ServedApp(create_fake_papertrail_app(papertrail)) as papertrail_app,
    ):
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal_test_server(),
            data_converter=pydantic_data_converter,
        )
        async with env:
            await ensure_search_attributes(env.client, env.client.namespace)
            settings = make_settings(
                slack_app.url + "/api/",
                papertrail_api_token=PAPERTRAIL_TOKEN,
                papertrail_api_url=papertrail_app.url + "/api/v1/",
            )
            async with running_worker(env.client, settings):
                for name, (down, poll) in shapes.items():
                    papertrail.down = down
                    papertrail.add("Accepted publickey for alice from 203.0.113.7 port 1 ssh2")
                    handle = await env.client.start_workflow(
                        PollWorkflow.run,
                        poll,
                        id=f"history-{name}",
                        task_queue=settings.task_queue,
                    )
                    written.append(await save(handle, out_dir / f"{name}.json"))
    return written


if __name__ == "__main__":
    for path in asyncio.run(record()):
        print(f"wrote {path}")
