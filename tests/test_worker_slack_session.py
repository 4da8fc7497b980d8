"""The worker talks to Slack over one pooled HTTP session (bench/PROFILE.md): slack_sdk's
AsyncWebClient otherwise opens a new session, so a new TCP and TLS connection, for every call."""

from __future__ import annotations

from powertrip.sandbox.fake_slack import FakeSlack, create_fake_slack_app
from tests.harness import SECURITY_CHANNEL, SLACK_TOKEN, make_settings
from tests.servers import ServedApp
from tests.tcp_delay import DelayProxy
from worker import slack_client, slack_session


async def test_the_worker_reuses_its_connection_for_every_slack_call() -> None:
    fake = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    async with (
        ServedApp(create_fake_slack_app(fake)) as slack,
        DelayProxy("127.0.0.1", slack.port, 0) as counted,
    ):
        settings = make_settings(f"http://{counted.address}/api/")
        session = slack_session()
        try:
            pooled = slack_client(settings, session)
            for _ in range(5):
                assert (await pooled.auth_test())["ok"]
        finally:
            await session.close()
        assert counted.connections == 1

        # What the worker did before: a connection per call.
        for _ in range(3):
            assert (await slack_client(settings).auth_test())["ok"]
        assert counted.connections == 4
