"""Step-up approvals in a real headless Chromium with its virtual authenticator (CDP `WebAuthn`):
register a passkey, press *Approve* in Slack, approve the event with the passkey on the link
Slack showed, and every way a link must approve nothing: another user's passkey, a replayed
link, an expired link, no user verification, a cloned authenticator.

The stack is real: the API (create_app) on `http://localhost:<port>` (a secure context; RP id
`localhost`) with `step_up_rules: [sshd-accepted]`, Slack's clicks signed as Slack signs them
(the fake Slack keeps the ephemeral replies), the worker (build_worker) and the time-skipping
Temporal server, whose clock the expiry test moves instead of sleeping.

The confirmation-page screenshots in the README (`docs/img/stepup-*.png`, `passkey-*.png`) are
taken here: written to `.powertrip/screenshots/`, and to `docs/img/` with
`POWERTRIP_UPDATE_SCREENSHOTS=1`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import Action, EventRecord, TimelineKind
from powertrip.contracts.passkeys import Refusal
from powertrip.models import EventStatus, StepUpMethod
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.services.stepup import issue_registration_link, passkeys_of
from powertrip.settings import Settings
from tests.browser import assert_readme_shows, chromium, loopback_only, needs_chromium, screenshot
from tests.harness import (
    decide,
    deliver_login,
    eventually,
    message_for,
    slack_click,
    slash_command,
    state_eventually,
    step_up_api,
)
from tests.servers import SECURITY_CHANNEL
from workflows.approval import ApprovalWorkflow

if TYPE_CHECKING:
    from playwright.async_api import Browser, CDPSession, Page, Route

__all__ = ["chromium"]

pytestmark = needs_chromium

SHOTS = ["passkey-register", "stepup-confirm", "stepup-approved", "stepup-expired"]


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: Client
    settings: Settings
    http: httpx.AsyncClient
    browser: Browser
    slack: FakeSlack
    reply_to: str
    beyond_loopback: list[list[str]]


@pytest.fixture
async def stack(
    chromium: object,
    time_skipping_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    slack_api_url: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    from playwright.async_api import Browser

    assert isinstance(chromium, Browser)
    async with step_up_api(time_skipping_env, slack_api_url, tmp_path) as settings:
        assert settings.public_url is not None
        async with httpx.AsyncClient(base_url=settings.public_url, timeout=15) as http:
            stack = Stack(
                time_skipping_env,
                time_skipping_env.client,
                settings,
                http,
                chromium,
                fake_slack,
                slack_api_url.replace("/api/", "/response/browser"),
                [],
            )
            yield stack
    assert [url for urls in stack.beyond_loopback for url in urls] == []


class Authenticator:
    """Chromium's virtual authenticator on one page: a platform passkey (Touch ID-like) that
    verifies its user unless told otherwise."""

    def __init__(self, cdp: CDPSession, authenticator_id: str) -> None:
        self.cdp = cdp
        self.id = authenticator_id

    @classmethod
    async def on(
        cls, page: Page, *, user_verified: bool = True, can_verify: bool = True
    ) -> Authenticator:
        """`can_verify=False`: a security key with no PIN or fingerprint at all."""
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("WebAuthn.enable", {"enableUI": False})
        added = await cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": can_verify,
                    "isUserVerified": user_verified and can_verify,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        return cls(cdp, added["authenticatorId"])

    async def credentials(self) -> list[dict[str, Any]]:
        found = await self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(found["credentials"])

    async def set_user_verified(self, verified: bool) -> None:
        await self.cdp.send(
            "WebAuthn.setUserVerified", {"authenticatorId": self.id, "isUserVerified": verified}
        )

    async def put(self, credential: dict[str, Any]) -> None:
        """Replace a credential by this copy of it (private key, counter and all): a clone."""
        await self.cdp.send(
            "WebAuthn.removeCredential",
            {"authenticatorId": self.id, "credentialId": credential["credentialId"]},
        )
        await self.cdp.send(
            "WebAuthn.addCredential", {"authenticatorId": self.id, "credential": credential}
        )


async def new_page(stack: Stack) -> Page:
    """A page of its own browser context (its own authenticator), that may reach nothing
    beyond this machine: the pages must work with no CDN."""
    context = await stack.browser.new_context(viewport={"width": 720, "height": 600})
    page = await context.new_page()
    stack.beyond_loopback.append(await loopback_only(page))
    return page


async def press_and_wait(page: Page, url: str) -> tuple[str, dict[str, Any] | None]:
    """Press the page's button; return the page's final state and the JSON Powertrip answered
    the browser's credential with (None when the browser never sent one)."""
    from playwright.async_api import expect

    answers: list[dict[str, Any]] = []

    async def keep(response: Any) -> None:
        if response.request.method == "POST" and response.url == url:
            answers.append(await response.json())

    page.on("response", keep)
    await page.get_by_test_id("confirm").click()
    main = page.get_by_test_id("page")
    await expect(main).to_have_attribute("data-state", re.compile("done|refused|retry|error"))
    state = await main.get_attribute("data-state")
    if state in ("done", "refused") and answers == []:
        await page.wait_for_timeout(100)  # the response handler runs a moment after the render
    page.remove_listener("response", keep)
    assert state is not None
    return state, (answers[0] if answers else None)


async def register(
    stack: Stack, page: Page, user: str, label: str, *, shot: str | None = None
) -> dict[str, Any]:
    from playwright.async_api import expect

    # `/powertrip passkey` in Slack: the ephemeral answer holds the one-time link.
    reply = await slash_command(stack.http, user, "passkey", name=user.lower().removeprefix("u0"))
    [url] = re.findall(r"<(http://localhost:\d+/passkeys/register/[^|>]+)\|", reply)
    await page.goto(url)
    await page.get_by_test_id("label").fill(label)
    if shot:
        await screenshot(page, shot)
    state, answer = await press_and_wait(page, url)
    assert state == "done", await page.get_by_test_id("status").text_content()
    assert answer is not None
    await expect(page.get_by_test_id("status")).to_contain_text(label)
    return answer


async def with_passkey(stack: Stack, label: str = "laptop") -> tuple[Page, Authenticator]:
    """A page whose authenticator holds alice's (first, active) passkey."""
    page = await new_page(stack)
    passkey = await Authenticator.on(page)
    await register(stack, page, "U0ALICE", label)
    return page, passkey


async def step_up_link(
    stack: Stack, user: str = "U0ALICE", actor: str = "alice"
) -> tuple[str, str]:
    """A new login of `actor`'s (a step-up event) and `user` pressing *Approve* on its message
    in Slack (alice's DM; the security channel for a bot's): the one-time link of the ephemeral
    reply, and the event id."""
    event_id = await deliver_login(stack.http, actor)
    message = await eventually(lambda: message_for(stack.slack, event_id))
    before = len(stack.slack.responses)
    action = "approve" if user == "U0ALICE" else "approve_on_behalf"
    clicked = await slack_click(stack.http, user, action, event_id, message, stack.reply_to)
    assert clicked.is_success
    replies = await eventually(lambda: stack.slack.responses[before:], within=15)
    [url] = re.findall(r"<(http://localhost:\d+/verify/[^|>]+)\|", replies[-1]["text"])
    return url, event_id


def in_channel(stack: Stack, text: str) -> SlackMessage | None:
    """The security channel's message that says `text`, if any."""
    channel = (m for m in stack.slack.messages.values() if m.channel == SECURITY_CHANNEL)
    return next((m for m in channel if text in m.text), None)


async def record_of(stack: Stack, event_id: str) -> EventRecord:
    record: EventRecord = await stack.client.get_workflow_handle(event_id).query(
        ApprovalWorkflow.state
    )
    return record


def test_the_readme_shows_every_step_up_screenshot_and_each_is_committed() -> None:
    assert_readme_shows(SHOTS, "(?:stepup|passkey)-[a-z-]+")


async def test_register_then_approve_with_the_owners_passkey(stack: Stack) -> None:
    from playwright.async_api import expect

    page = await new_page(stack)
    passkey = await Authenticator.on(page)
    first = await register(stack, page, "U0ALICE", "MacBook Touch ID", shot="passkey-register")
    assert first["status"] == "active" and first["first"] is True
    [stored] = await passkey.credentials()
    assert stored["isResidentCredential"] is True

    # Alice presses Approve in Slack: the reply is a link, and the event is still pending.
    url, event_id = await step_up_link(stack)
    handle = stack.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
    # An approval signed without the step-up does not count either: the workflow refuses it.
    await decide(handle, Action.APPROVE, "U0ALICE")
    await state_eventually(handle, lambda r: r.timeline[-1].what is TimelineKind.REFUSED)
    assert (await record_of(stack, event_id)).status is EventStatus.PENDING

    await page.goto(url)
    summary = page.get_by_test_id("summary")
    await expect(summary).to_contain_text("alice")
    await expect(summary).to_contain_text("bastion")
    await expect(summary).to_contain_text("203.0.113.7")
    await expect(summary).to_contain_text(event_id)
    await screenshot(page, "stepup-confirm")

    state, answer = await press_and_wait(page, url)
    assert state == "done"
    assert answer is not None
    assert answer["outcome"] == "verified" and answer["decision"] == "delivered"
    assert answer["step_up"] == "passkey"
    assert answer["event_id"] == event_id and answer["user"] == "U0ALICE"
    assert answer["credential"]["label"] == "MacBook Touch ID"
    assert answer["credential"]["credential_id"] == first["credential"]["credential_id"]
    await expect(page.get_by_test_id("status")).to_contain_text("MacBook Touch ID")
    await screenshot(page, "stepup-approved")

    # The record: approved by alice, with `step_up: passkey` and the passkey used.
    record = await handle.result()
    decision = record.decision
    assert record.status is EventStatus.APPROVED and decision is not None
    assert decision.by == "U0ALICE" and decision.authenticated and not decision.on_behalf
    assert decision.step_up is StepUpMethod.PASSKEY
    assert decision.credential is not None
    assert decision.credential.credential_id == first["credential"]["credential_id"]
    assert "MacBook Touch ID" in (record.timeline[-1].detail or "")
    [dm] = [m for m in stack.slack.messages.values() if m.channel == "D0ALICE"]
    assert dm.updates and "Approved" in dm.text

    store = await passkeys_of(stack.client, "U0ALICE")
    assert store is not None and store.credentials[0].last_used_at is not None
    assert store.credentials[0].sign_count == (await passkey.credentials())[0]["signCount"]

    # Her first passkey was announced to the security channel.
    announced = await eventually(lambda: in_channel(stack, "New passkey"))
    assert "MacBook Touch ID" in announced.text and "U0ALICE" in announced.text


async def test_the_security_team_approves_passkeys_and_events_with_its_own_passkey(
    stack: Stack,
) -> None:
    from playwright.async_api import expect

    await with_passkey(stack, "alice's laptop")
    sec1 = await new_page(stack)
    await Authenticator.on(sec1)
    await register(stack, sec1, "U0SEC1", "sec1's laptop")

    # A second passkey of alice's is not active until a security-team member approves it.
    other = await new_page(stack)
    await Authenticator.on(other)
    second = await register(stack, other, "U0ALICE", "YubiKey")
    assert second["status"] == "pending_approval" and second["first"] is False
    url, _ = await step_up_link(stack)
    await other.goto(url)
    state, answer = await press_and_wait(other, url)
    # Its authenticator holds only the pending passkey, which the page does not even offer.
    assert state == "retry" and answer is None

    # The channel asks the team; sec1 presses Approve passkey and steps up himself.
    notice = await eventually(lambda: in_channel(stack, "waiting for approval"))
    assert "YubiKey" in notice.text
    before = len(stack.slack.responses)
    [notice_id] = {e["value"] for b in notice.blocks for e in b.get("elements", []) if "value" in e}
    pressed = await slack_click(
        stack.http, "U0SEC1", "passkey_approve", notice_id, notice, stack.reply_to
    )
    assert pressed.is_success
    replies = await eventually(lambda: stack.slack.responses[before:], within=15)
    [link] = re.findall(r"<(http://localhost:\d+/verify/U0SEC1\.[^|>]+)\|", replies[-1]["text"])
    await sec1.goto(link)
    await expect(sec1.get_by_test_id("summary")).to_contain_text("YubiKey")
    state, answer = await press_and_wait(sec1, link)
    assert state == "done" and answer is not None and answer["decision"] == "delivered"
    store = await passkeys_of(stack.client, "U0ALICE")
    assert store is not None and store.pending == []
    approved = next(c for c in store.credentials if c.label == "YubiKey")
    assert approved.approved_by == "U0SEC1"
    assert approved.approved_with is not None and approved.approved_with.label == "sec1's laptop"
    await eventually(lambda: notice.updates)
    assert "Approved by" in notice.text and "sec1's laptop" in notice.text

    # Now the YubiKey approves alice's logins.
    url, event_id = await step_up_link(stack)
    await other.goto(url)
    state, answer = await press_and_wait(other, url)
    assert state == "done" and answer is not None and answer["credential"]["label"] == "YubiKey"

    # A bot's login is asked in the channel: sec1 approves on behalf, with his own passkey.
    url, event_id = await step_up_link(stack, "U0SEC1", actor="deploy")
    assert "/verify/U0SEC1." in url
    await sec1.goto(url)
    state, answer = await press_and_wait(sec1, url)
    assert state == "done" and answer is not None
    record = await stack.client.get_workflow_handle_for(ApprovalWorkflow.run, event_id).result()
    assert record.decision is not None and record.decision.by == "U0SEC1"
    assert record.decision.on_behalf and record.decision.step_up is StepUpMethod.PASSKEY
    assert record.decision.credential is not None
    assert record.decision.credential.label == "sec1's laptop"


async def test_a_replayed_link_approves_nothing(stack: Stack) -> None:
    page, _ = await with_passkey(stack)
    url, _ = await step_up_link(stack)
    captured: list[str] = []

    async def capture(route: Route) -> None:
        captured.append(route.request.post_data or "")
        await route.continue_()

    await page.route(url, capture)
    await page.goto(url)
    state, answer = await press_and_wait(page, url)
    assert state == "done" and answer is not None and answer["outcome"] == "verified"
    assertion = next(body for body in captured if body)

    # The same assertion posted again: the link is used.
    replay = await stack.http.post(url, content=assertion)
    assert replay.status_code == 410
    assert replay.json()["refusal"] == Refusal.LINK_USED.value
    # Reopening the link says so, and asking for a new challenge is refused too.
    await page.unroute(url)
    response = await page.goto(url)
    assert response is not None and response.status == 410
    assert await page.get_by_test_id("explanation").get_attribute("data-refusal") == "link_used"
    again = await stack.http.post(f"{url}/options")
    assert again.status_code == 410 and again.json()["refusal"] == "link_used"


async def test_an_expired_link_approves_nothing(stack: Stack) -> None:
    from playwright.async_api import expect

    page, _ = await with_passkey(stack)

    # Opened in time, but confirmed after the link expired: the workflow's clock decides.
    url, event_id = await step_up_link(stack)
    await page.goto(url)
    await stack.env.sleep(timedelta(seconds=stack.settings.step_up_link_seconds + 1))
    state, answer = await press_and_wait(page, url)
    assert state == "refused" and answer is None
    main = page.get_by_test_id("page")
    await expect(main).to_have_attribute("data-refusal", "link_expired")
    await expect(page.get_by_test_id("status")).to_contain_text("expired")

    # Opened after it expired: the page says so at once.
    response = await page.goto(url)
    assert response is not None and response.status == 410
    await expect(page.get_by_test_id("title")).to_have_text("This link has expired")
    await screenshot(page, "stepup-expired")
    late = await stack.http.post(url, json={"id": "x"})
    assert late.json()["refusal"] == "link_expired"
    # Each refused attempt is in the event's timeline; the event still waits.
    record = await record_of(stack, event_id)
    refused = [e.detail or "" for e in record.timeline if e.what is TimelineKind.REFUSED]
    assert refused and all("step-up refused: link_expired" in d for d in refused)
    assert record.status is EventStatus.PENDING


async def test_another_users_passkey_is_refused(stack: Stack) -> None:
    from playwright.async_api import expect

    alice = await new_page(stack)
    await Authenticator.on(alice)
    await register(stack, alice, "U0ALICE", "alice's laptop")
    mallory = await new_page(stack)
    await Authenticator.on(mallory)
    await register(stack, mallory, "U0MALLORY", "mallory's laptop")

    # Mallory holds alice's link (her Slack session). An honest page only offers alice's
    # passkeys: mallory's authenticator has none of them, and nothing is sent.
    url, event_id = await step_up_link(stack)
    await mallory.goto(url)
    state, answer = await press_and_wait(mallory, url)
    assert state == "retry" and answer is None

    # A page tampered with to accept any passkey: mallory's own one answers, and the server
    # refuses it (it is not alice's); the link is used up.
    async def any_passkey(route: Route) -> None:
        response = await route.fetch()
        options = await response.json()
        options["allowCredentials"] = []
        await route.fulfill(response=response, json=options)

    await mallory.route(f"{url}/options", any_passkey)
    await mallory.reload()
    state, answer = await press_and_wait(mallory, url)
    assert state == "refused"
    assert answer is not None and answer["refusal"] == Refusal.CREDENTIAL_NOT_REGISTERED.value
    await expect(mallory.get_by_test_id("status")).to_contain_text("not the one this link is for")
    assert (await stack.http.post(f"{url}/options")).json()["refusal"] == "link_used"
    record = await record_of(stack, event_id)
    assert record.status is EventStatus.PENDING
    assert "credential_not_registered" in (record.timeline[-1].detail or "")
    alert = await eventually(lambda: in_channel(stack, "Passkey alert"))
    assert "not theirs" in alert.text and "U0ALICE" in alert.text

    # Alice's own passkey still works on a new link.
    url2, _ = await step_up_link(stack)
    await alice.goto(url2)
    state, answer = await press_and_wait(alice, url2)
    assert state == "done" and answer is not None and answer["user"] == "U0ALICE"


async def test_a_passkey_without_user_verification_approves_nothing(stack: Stack) -> None:
    from playwright.async_api import expect

    page, passkey = await with_passkey(stack)
    # The authenticator can no longer verify its user (no fingerprint, no PIN): presence only.
    await passkey.set_user_verified(False)

    url, _ = await step_up_link(stack)
    await page.goto(url)
    state, answer = await press_and_wait(page, url)
    assert state == "retry" and answer is None  # Chromium itself refuses: UV is required

    # A page tampered with to ask for presence only: the assertion arrives without the UV flag
    # and the server refuses it.
    async def presence_only(route: Route) -> None:
        response = await route.fetch()
        options = await response.json()
        options["userVerification"] = "discouraged"
        await route.fulfill(response=response, json=options)

    await page.route(f"{url}/options", presence_only)
    await page.reload()
    state, answer = await press_and_wait(page, url)
    assert state == "refused"
    assert answer is not None
    assert answer["refusal"] == Refusal.USER_VERIFICATION_MISSING.value
    await expect(page.get_by_test_id("status")).to_contain_text("did not verify you")


async def test_a_cloned_authenticator_is_refused_by_its_sign_count(stack: Stack) -> None:
    page, passkey = await with_passkey(stack)
    [before] = await passkey.credentials()

    url, _ = await step_up_link(stack)
    await page.goto(url)
    assert (await press_and_wait(page, url))[0] == "done"
    [after] = await passkey.credentials()
    assert after["signCount"] > before["signCount"]

    # A copy of the key taken before that use (same private key, older counter).
    await passkey.put(before)
    url2, event_id = await step_up_link(stack)
    await page.goto(url2)
    state, answer = await press_and_wait(page, url2)
    assert state == "refused" and answer is not None
    assert answer["refusal"] == Refusal.SIGN_COUNT_REGRESSED.value
    store = await passkeys_of(stack.client, "U0ALICE")
    assert store is not None
    assert [a.kind for a in store.alerts] == [Refusal.SIGN_COUNT_REGRESSED]
    assert store.credentials[0].sign_count == after["signCount"]  # not lowered
    assert answer["event_id"] == event_id
    # The security channel hears of it at once, not only the event's timeline.
    alert = await eventually(lambda: in_channel(stack, "Passkey alert"))
    assert "cloned" in alert.text and event_id in alert.text
    record = await record_of(stack, event_id)
    assert "sign_count_regressed" in (record.timeline[-1].detail or "")


async def test_a_registration_without_user_verification_stores_nothing(stack: Stack) -> None:
    from playwright.async_api import expect

    page = await new_page(stack)
    await Authenticator.on(page, can_verify=False)
    issued = await issue_registration_link(stack.client, stack.settings, user="U0BOB")
    await page.goto(issued.url)
    state, answer = await press_and_wait(page, issued.url)
    assert state == "retry" and answer is None  # Chromium refuses: UV is required

    # A page tampered with to ask for presence only: the server refuses the new passkey.
    async def presence_only(route: Route) -> None:
        response = await route.fetch()
        options = await response.json()
        # (A resident key would make Chromium ask for verification anyway.)
        options["authenticatorSelection"] = {
            "userVerification": "discouraged",
            "residentKey": "discouraged",
            "requireResidentKey": False,
        }
        await route.fulfill(response=response, json=options)

    await page.route(f"{issued.url}/options", presence_only)
    await page.reload()
    state, answer = await press_and_wait(page, issued.url)
    assert state == "refused" and answer is not None
    assert answer["refusal"] == Refusal.USER_VERIFICATION_MISSING.value
    await expect(page.get_by_test_id("status")).to_contain_text("Nothing was registered")
    await expect(page.get_by_test_id("status")).to_contain_text("did not verify you")
    store = await passkeys_of(stack.client, "U0BOB")
    assert store is not None and store.credentials == [] and store.pending == []


async def test_one_assertion_posted_twice_at_once_approves_once(stack: Stack) -> None:
    """A double submit, or the same answer sent to two API replicas: the store's claim lets
    exactly one through."""
    page, _ = await with_passkey(stack)
    url, event_id = await step_up_link(stack)
    captured: list[str] = []

    async def hold_back(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        captured.append(route.request.post_data or "")
        await route.abort()

    await page.route(url, hold_back)
    await page.goto(url)
    await page.get_by_test_id("confirm").click()
    while not captured:
        await page.wait_for_timeout(50)
    answers = await asyncio.gather(*(stack.http.post(url, content=captured[0]) for _ in range(2)))
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["refused", "verified"]
    refused = next(a for a in answers if a.json()["outcome"] == "refused")
    assert refused.status_code == 410 and refused.json()["refusal"] == "link_used"
    assert refused.json()["event_id"] == event_id
