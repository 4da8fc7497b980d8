"""The local sandbox in a real headless Chromium: a webhook to the real API (dev server + worker),
the DM appears on the fake Slack's page, Approve as the right user updates it, the wrong user is
refused on the page, and *Not me* (confirm dialog) raises an incident the team acknowledges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.conftest import SECURITY_CHANNEL, SIGNING_SECRET, ServedApp
from tests.harness import (
    deliver_login,
    eventually,
    make_settings,
    message_for,
    running_worker,
)
from workflows.approval import ApprovalWorkflow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / ".powertrip" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/test installs it)"
)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def test_sandbox_page_approve_refuse_and_not_me_in_chromium(
    browser: object,
    dev_env: WorkflowEnvironment,
    fake_slack_server: tuple[FakeSlack, str],
    fake_slack: FakeSlack,
    slack_api_url: str,
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    _, fake_url = fake_slack_server
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    async with (
        ServedApp(create_app(settings)) as api,
        running_worker(dev_env.client, settings),
        httpx.AsyncClient(base_url=api.url, timeout=10) as http,
    ):
        fake_slack.signing_secret = SIGNING_SECRET
        fake_slack.interaction_url = f"{api.url}/slack/interactions"
        try:
            page = await browser.new_page(viewport={"width": 420, "height": 1100})
            await page.goto(fake_url)
            await expect(page.get_by_test_id("status")).to_contain_text("users")

            first = await deliver_login(http, address="203.0.113.7")
            second = await deliver_login(http, address="203.0.113.8")
            dm_a = await eventually(lambda: message_for(fake_slack, first))
            dm_b = await eventually(lambda: message_for(fake_slack, second))

            # The DM shows up rendered like Slack: headline, fields, context, buttons.
            card_a = page.locator(f'[data-testid=message][data-ts="{dm_a.ts}"]')
            card_b = page.locator(f'[data-testid=message][data-ts="{dm_b.ts}"]')
            await expect(card_a).to_contain_text("Was this you?")
            await expect(card_a).to_contain_text("203.0.113.7")
            await expect(card_a).to_contain_text("Rule")
            await expect(page.get_by_text("Direct message · @alice")).to_be_visible()
            await expect(card_a.locator("button")).to_have_count(2)
            await page.screenshot(path=str(SCREENSHOTS / "sandbox-pending.png"), full_page=True)

            # Alice approves her own login: the message updates in place, buttons gone.
            await page.get_by_test_id("actor").select_option("U0ALICE")
            await card_a.get_by_role("button", name="Approve — this was me").click()
            await expect(card_a).to_contain_text("Approved by @alice", timeout=15_000)
            await expect(card_a.locator("button")).to_have_count(0)
            record = await dev_env.client.get_workflow_handle_for(
                ApprovalWorkflow.run, first
            ).result()
            assert record.status is EventStatus.APPROVED and record.decision is not None
            assert record.decision.by == "U0ALICE"

            # Mallory presses Approve on the other event: refused on the page, nothing recorded.
            await page.get_by_test_id("actor").select_option("U0MALLORY")
            await card_b.get_by_role("button", name="Approve — this was me").click()
            await expect(card_b.get_by_test_id("ephemeral")).to_contain_text(
                "not allowed", timeout=15_000
            )
            await expect(card_b.get_by_test_id("ephemeral")).to_contain_text("@mallory")
            await page.screenshot(path=str(SCREENSHOTS / "sandbox-refused.png"), full_page=True)
            state = await dev_env.client.get_workflow_handle_for(
                ApprovalWorkflow.run, second
            ).query(ApprovalWorkflow.state)
            assert state.status is EventStatus.PENDING and state.decision is None

            # Alice says Not me (through the confirm dialog): an incident in the channel,
            # which the security team acknowledges from the page.
            page.once("dialog", lambda dialog: dialog.accept())
            await page.get_by_test_id("actor").select_option("U0ALICE")
            await card_b.get_by_role("button", name="Not me").click()
            await expect(card_b).to_contain_text("Reported as not me", timeout=15_000)
            alert = await eventually(lambda: message_for(fake_slack, second, SECURITY_CHANNEL))
            card_alert = page.locator(f'[data-testid=message][data-ts="{alert.ts}"]')
            await expect(card_alert).to_contain_text("Reported as NOT ME")
            await expect(card_alert).to_contain_text("@sec1")
            await page.get_by_test_id("actor").select_option("U0SEC1")
            await card_alert.get_by_role("button", name="Acknowledge incident").click()
            await expect(card_alert).to_contain_text("Incident acknowledged", timeout=15_000)
            await expect(page.locator("[data-testid=message] button")).to_have_count(0)
            await page.screenshot(path=str(SCREENSHOTS / "sandbox-done.png"), full_page=True)
        finally:
            fake_slack.signing_secret = fake_slack.interaction_url = None
