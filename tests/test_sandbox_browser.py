"""README "Trying it locally", walked in a real headless Chromium on the sandbox page: the
README's login reaches the real API (dev server + worker), its DM appears on the fake Slack's
page, a stranger's click is refused, the owner approves, a second login is reported *Not me*
(confirm dialog), which pages on-call (the page shows what the fake PagerDuty received), and the
security team acknowledges the incident, which resolves the page.

A second walk covers issue 13 on the page, with the sandbox's own config (`examples/config.yaml`
as `powertrip dev` writes it, which groups bursts): a burst of logins is one question and one
click approves every event; the security team types `/powertrip expect alice`, the page draws the
modal, a missing reason is marked on its field, the submitted modal creates an expectation and the
next matching login is approved with no DM; the team's App Home shows it with *Revoke*, which
revokes it.

The screenshots they take are the README's (`docs/img/sandbox-*.png`): they are written to
`.powertrip/screenshots/`, and to `docs/img/` with `POWERTRIP_UPDATE_SCREENSHOTS=1`; the test
fails if the README does not show each of them, or shows one that is not committed."""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.cli.dev import write_local_config
from powertrip.config import load_config
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.browser import assert_readme_shows, chromium, needs_chromium, screenshot
from tests.harness import (
    API_HEADERS,
    WEBHOOK_HEADERS,
    alert,
    eventually,
    fresh_namespace,
    make_settings,
    message_for,
    papertrail_event,
    posted_to,
    running_worker,
)
from tests.readme import curl_json_bodies, section_blocks
from tests.servers import (
    PAGERDUTY_ROUTING_KEY,
    SECURITY_CHANNEL,
    SIGNING_SECRET,
    PagerDutyAt,
    ServedApp,
)
from workflows.approval import ApprovalWorkflow

__all__ = ["chromium"]

SHOTS = [
    "sandbox-dm",
    "sandbox-refused",
    "sandbox-approved",
    "sandbox-incident",
    "sandbox-done",
    "sandbox-group",
    "sandbox-expect",
    "sandbox-home",
]

pytestmark = needs_chromium


# The logins "Trying it locally" posts, read from its curl commands.
README_LOGINS = [
    body for block in section_blocks("Trying it locally") for body in curl_json_bodies(block)
]


def test_the_readme_shows_every_screenshot_and_each_is_committed() -> None:
    assert_readme_shows(SHOTS, "sandbox-[a-z-]+")


def _emoji_in(text: str) -> list[str]:
    """Characters a machine without an emoji font draws as boxes."""
    return [c for c in text if ord(c) > 0x2100 and unicodedata.category(c) == "So"]


async def test_trying_it_locally_on_the_sandbox_page(
    chromium: object,
    dev_env: WorkflowEnvironment,
    fake_slack_server: tuple[FakeSlack, str],
    fake_slack: FakeSlack,
    slack_api_url: str,
    pagerduty: PagerDutyAt,
) -> None:
    from playwright.async_api import Browser, Route, expect

    assert isinstance(chromium, Browser)
    _, fake_url = fake_slack_server
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        pagerduty_routing_key=PAGERDUTY_ROUTING_KEY,
        pagerduty_events_url=pagerduty.url,
        pagerduty_ca_file=pagerduty.ca_file,
    )
    shot = screenshot
    async with (
        ServedApp(create_app(settings)) as api,
        running_worker(dev_env.client, settings),
        httpx.AsyncClient(base_url=api.url, timeout=10) as http,
    ):
        fake_slack.signing_secret = SIGNING_SECRET
        fake_slack.interaction_url = f"{api.url}/slack/interactions"
        fake_slack.channel_names[SECURITY_CHANNEL] = "security"
        fake_slack.pagerduty_url, fake_slack.pagerduty_ca_file = pagerduty.url, pagerduty.ca_file
        try:
            page = await chromium.new_page(viewport={"width": 820, "height": 700})
            status = page.get_by_test_id("status")

            # Open it: while the messages load it says so (it said "No messages yet").
            loaded = asyncio.Event()

            async def slow_messages(route: Route) -> None:
                await loaded.wait()
                await route.continue_()

            await page.route("**/_fake/messages", slow_messages)
            await page.goto(fake_url)
            await expect(page.get_by_test_id("loading")).to_be_visible()
            await expect(page.get_by_test_id("empty")).to_have_count(0)
            loaded.set()
            await expect(page.get_by_test_id("empty")).to_contain_text("No messages yet")
            await expect(status).to_contain_text("users")

            # The README's first curl: alice's DM appears, rendered like Slack.
            first_login, second_login = README_LOGINS[:2]
            answer = await http.post(
                "/webhooks/papertrail", json=first_login, headers=WEBHOOK_HEADERS
            )
            assert answer.json()["results"][0]["event_id"] == "papertrail-1001"
            dm = await eventually(lambda: message_for(fake_slack, "papertrail-1001"))
            card = page.locator(f'[data-testid=message][data-ts="{dm.ts}"]')
            await expect(card).to_contain_text("Was this you?")
            await expect(card).to_contain_text("203.0.113.7")
            await expect(page.get_by_text("Direct message · @alice")).to_be_visible()
            await expect(card.locator("button")).to_have_count(
                3
            )  # approve, approve and expect the same, not me
            await shot(page, "sandbox-dm")

            # 2. The owner approves: the message updates in place, no buttons left.
            await page.get_by_test_id("actor").select_option("U0ALICE")
            await card.get_by_role("button", name="Approve — this was me").click()
            await expect(card).to_contain_text("Approved by @alice", timeout=15_000)
            await expect(card.locator("button")).to_have_count(0)
            await expect(status).to_have_attribute("data-state", "done")
            await shot(page, "sandbox-approved")
            record = await dev_env.client.get_workflow_handle_for(
                ApprovalWorkflow.run, "papertrail-1001"
            ).result()
            assert record.decision is not None and record.decision.by == "U0ALICE"

            # 3. The README's second login; a stranger presses Approve: refused, said under
            # the message (only to them) and in the status bar, which does not read as success.
            await http.post("/webhooks/papertrail", json=second_login, headers=WEBHOOK_HEADERS)
            dm2 = await eventually(lambda: message_for(fake_slack, "papertrail-1002"))
            card2 = page.locator(f'[data-testid=message][data-ts="{dm2.ts}"]')
            await expect(card2.locator("button")).to_have_count(3)
            await page.get_by_test_id("actor").select_option("U0MALLORY")
            await card2.get_by_role("button", name="Approve — this was me").click()
            reply = card2.get_by_test_id("ephemeral")
            await expect(reply).to_contain_text("Only visible to @mallory", timeout=15_000)
            await expect(status).to_have_attribute("data-state", "refused")
            await expect(status).to_contain_text("Not done")
            await expect(status).not_to_contain_text("<@")  # names, not raw Slack ids
            await expect(card2.locator("button")).to_have_count(3)
            await shot(page, "sandbox-refused")
            state = await dev_env.client.get_workflow_handle_for(
                ApprovalWorkflow.run, "papertrail-1002"
            ).query(ApprovalWorkflow.state)
            assert state.status is EventStatus.PENDING and state.decision is None

            # 4. alice: Not me (through the confirm dialog) raises an incident in the security
            # channel, shown by its name.
            await page.get_by_test_id("actor").select_option("U0ALICE")
            page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await card2.get_by_role("button", name="Not me").click()
            await expect(card2).to_contain_text("Reported as not me", timeout=15_000)
            alert = await eventually(
                lambda: message_for(fake_slack, "papertrail-1002", SECURITY_CHANNEL)
            )
            channel = page.locator(f'[data-testid=conversation][data-channel="{SECURITY_CHANNEL}"]')
            await expect(channel.locator("h2")).to_contain_text("# security")
            card_alert = page.locator(f'[data-testid=message][data-ts="{alert.ts}"]')
            await expect(card_alert).to_contain_text("NOT ME")
            # On-call was paged at once: the page shows what PagerDuty received.
            incident = page.get_by_test_id("pagerduty").get_by_test_id("incident")
            await expect(incident).to_have_attribute("data-status", "triggered", timeout=15_000)
            await expect(incident).to_contain_text("critical Powertrip: Not me: alice")
            await shot(page, "sandbox-incident")

            # 5. The security team acknowledges it.
            await page.get_by_test_id("actor").select_option("U0SEC1")
            await card_alert.get_by_role("button", name="Acknowledge incident").click()
            await expect(card_alert).to_contain_text("acknowledged", timeout=15_000)
            await expect(page.locator("[data-testid=message] button")).to_have_count(0)
            await expect(status).to_have_attribute("data-state", "done")
            await expect(incident).to_have_attribute("data-status", "resolved", timeout=15_000)
            await expect(incident).to_contain_text("trigger → acknowledge → resolve")
            await shot(page, "sandbox-done")

            # Slack's emoji are drawn by the page itself, never left to an emoji font.
            assert await page.locator("svg.glyph").count() > 0
            assert _emoji_in(await page.locator("main").inner_text()) == []
        finally:
            fake_slack.signing_secret = fake_slack.interaction_url = None
            fake_slack.channel_names.pop(SECURITY_CHANNEL, None)
            fake_slack.pagerduty_url = fake_slack.pagerduty_ca_file = None


async def test_a_group_an_expectation_and_the_app_home_on_the_sandbox_page(
    chromium: object,
    dev_env: WorkflowEnvironment,
    fake_slack_server: tuple[FakeSlack, str],
    fake_slack: FakeSlack,
    slack_api_url: str,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(chromium, Browser)
    _, fake_url = fake_slack_server
    config_file = tmp_path / "config.yaml"
    write_local_config(config_file)  # what `powertrip dev` runs with
    config = load_config(config_file)
    assert config.group_window == timedelta(minutes=10)  # the sandbox groups bursts
    # A namespace of its own: the expectation for alice must not approve another test's alice.
    client = await fresh_namespace(dev_env)
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_namespace=client.namespace,
        config=config_file,
    )

    async def record(event_id: str) -> Any:
        handle = client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
        return await handle.query(ApprovalWorkflow.state)

    async with (
        ServedApp(create_app(settings)) as api,
        running_worker(client, settings, config),
        httpx.AsyncClient(base_url=api.url, timeout=10) as http,
    ):
        fake_slack.signing_secret = SIGNING_SECRET
        fake_slack.interaction_url = f"{api.url}/slack/interactions"
        fake_slack.channel_names[SECURITY_CHANNEL] = "security"
        try:
            page = await chromium.new_page(viewport={"width": 820, "height": 700})
            status = page.get_by_test_id("status")
            await page.goto(fake_url)
            await expect(status).to_contain_text("users")

            # 1. A burst of five logins by alice on bastion: one DM, updated in place as they
            # join; one Approve decides all five.
            burst = [papertrail_event(uuid.uuid4().hex[:16]) for _ in range(5)]
            answer = await http.post(
                "/webhooks/papertrail", json=alert(*burst), headers=WEBHOOK_HEADERS
            )
            ids = [r["event_id"] for r in answer.json()["results"]]
            assert [r["status"] for r in answer.json()["results"]] == ["started"] * 5

            def grouped() -> Any:
                dms = posted_to(fake_slack, "D0ALICE")
                return dms[0] if len(dms) == 1 and "5 events" in str(dms[0].blocks) else None

            dm = await eventually(grouped, within=30)
            card = page.locator(f'[data-testid=message][data-ts="{dm.ts}"]')
            await expect(card).to_contain_text("5 events of")
            await expect(card).to_contain_text("One answer decides every one of them")
            await page.get_by_test_id("actor").select_option("U0ALICE")
            await screenshot(page, "sandbox-group")
            await card.get_by_role("button", name="Approve — this was me").click()
            await expect(card).to_contain_text("Approved by @alice", timeout=15_000)
            await expect(status).to_have_attribute("data-state", "done")

            async def all_approved() -> list[Any] | None:
                records = [await record(i) for i in ids]
                done = all(r.status is EventStatus.APPROVED for r in records)
                return records if done else None

            records = await eventually(all_approved, within=30)
            assert {(r.decision.by, r.decision.group) for r in records} == {
                ("U0ALICE", records[0].group)
            }
            assert records[0].group is not None
            assert len(posted_to(fake_slack, "D0ALICE")) == 1

            # 2. The security team types /powertrip expect alice: the page draws the modal.
            await page.get_by_test_id("actor").select_option("U0SEC1")
            await page.get_by_test_id("command").fill("/powertrip expect alice")
            await page.get_by_test_id("run-command").click()
            modal = page.get_by_test_id("modal")
            await expect(modal).to_be_visible(timeout=15_000)
            await expect(modal.locator("h2")).to_contain_text("Expect my work")
            await expect(page.get_by_test_id("field-actor")).to_have_value("alice")
            await expect(page.get_by_test_id("field-for")).to_have_value("1h")
            await page.get_by_test_id("field-hosts").fill("bastion")
            await page.get_by_test_id("field-for").fill("2h")
            reason = "kernel patching & reboot, CHG-7"
            await page.get_by_test_id("field-reason").fill(reason)
            await screenshot(page, "sandbox-expect")
            # Without a reason Powertrip refuses: the modal stays open, marked on that field,
            # and what was typed is kept.
            await page.get_by_test_id("field-reason").fill("")
            await page.get_by_test_id("modal-submit").click()
            error = modal.locator('[data-testid=field-error][data-block="reason"]')
            await expect(error).to_contain_text("Say why", timeout=15_000)
            await expect(status).to_have_attribute("data-state", "refused")
            await expect(page.get_by_test_id("field-hosts")).to_have_value("bastion")
            await page.get_by_test_id("field-reason").fill(reason)
            await page.get_by_test_id("modal-submit").click()
            await expect(modal).to_be_hidden(timeout=15_000)
            await expect(status).to_have_attribute("data-state", "done")

            async def listed() -> list[dict[str, Any]] | None:
                answer = await http.get("/v1/expectations", headers=API_HEADERS)
                body: list[dict[str, Any]] = answer.json()
                return body or None

            [expectation] = await eventually(listed, within=15)
            assert (expectation["actor"], expectation["hosts"], expectation["created_by"]) == (
                "alice",
                ["bastion"],
                "U0SEC1",
            )
            assert expectation["via"] == "slack"

            # 3. alice's next login on bastion is approved by it, on the record, with no DM.
            login = papertrail_event(uuid.uuid4().hex[:16], at=datetime.now(UTC))
            answer = await http.post(
                "/webhooks/papertrail", json=alert(login), headers=WEBHOOK_HEADERS
            )
            [started] = answer.json()["results"]

            async def approved() -> Any:
                state = await record(started["event_id"])
                return state if state.status is EventStatus.APPROVED else None

            state = await eventually(approved, within=30)
            assert (state.decision.via, state.decision.expectation) == (
                "expectation",
                expectation["id"],
            )
            assert len(posted_to(fake_slack, "D0ALICE")) == 1

            # 4. The security team's Home tab: the expectation, with Revoke.
            await page.get_by_test_id("tab-home").click()
            home = page.get_by_test_id("home-view")
            await expect(home).to_contain_text(reason, timeout=15_000)  # & as typed
            await expect(home).to_contain_text("Waiting for the security team")
            row = home.locator(f'[data-block="expectation-{expectation["id"]}"]')
            await expect(row.get_by_role("button", name="Revoke")).to_be_visible()
            await expect(page.locator("#conversations")).to_be_hidden()
            await screenshot(page, "sandbox-home")
            await row.get_by_role("button", name="Revoke").click()
            await expect(home).to_contain_text("None.", timeout=15_000)
            await expect(home.get_by_role("button", name="Revoke")).to_have_count(0)
            await expect(status).to_contain_text("Home tab updated")
            assert await eventually(lambda: _none_listed(http), within=15)
        finally:
            fake_slack.signing_secret = fake_slack.interaction_url = None
            fake_slack.channel_names.pop(SECURITY_CHANNEL, None)


async def _none_listed(http: httpx.AsyncClient) -> bool | None:
    answer = await http.get("/v1/expectations", headers=API_HEADERS)
    return True if answer.json() == [] else None
