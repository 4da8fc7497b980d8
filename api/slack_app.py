"""Everything Slack sends Powertrip, on Slack's Bolt (`slack_bolt.async_app.AsyncApp`): one listener
function per interaction, registered in `register`.

How a request flows: `POST /slack/interactions` (api/routes/slack.py) reads the body (size-capped)
and hands it to this app with the Temporal client and the decision key in Bolt's `context`.
`SlackSignature` (before anything else) checks Slack's signature and the replay window; Bolt
parses the payload and calls the matching listener; the listener answers Slack within its
3-second budget (`ack()`, or a `BoltResponse`) and delivers the work durably (a signed Temporal
signal, `powertrip.services.decisions`).

Adding an interaction (the `/powertrip` slash command, the App Home, a modal, a new button): write
one listener function below and register it in `register` with Bolt's matcher (`app.command`,
`app.event("app_home_opened")`, `app.view(...)`, `app.action(...)`). A listener gets Bolt's
arguments by name (`ack`, `body`, `action`, `respond`, `client`, `context`, ...); `context`
carries `temporal` (the Temporal client), `decision_key` and `settings`. Authority is never taken
from the payload: decide through `powertrip.services.decisions`, which checks the workflow's own
record.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import Client
from temporalio.service import RPCError

from powertrip.contracts.approval import Click, EventRecord, shown_in
from powertrip.contracts.expectations import Expectation
from powertrip.directory import SlackDirectory
from powertrip.messages import (
    BUTTON_ACTIONS,
    PASSKEY_BUTTONS,
    REVOKE_EXPECTATION,
    ModalError,
    action_for,
    app_home,
    expect_fields,
    expect_modal,
    pending_list,
)
from powertrip.services.decisions import Delivery, deliver_click
from powertrip.services.expectations import (
    ExpectationRefused,
    Limits,
    LimitsUnchecked,
    NoSuchExpectation,
    create_expectation,
    expect_the_same,
    list_expectations,
    new_expectation,
    revoke_expectation,
    waiting_for,
)
from powertrip.services.stepup import answer_passkey_button, registration_reply_for
from powertrip.settings import Settings

log = logging.getLogger("api.slack")

INLINE_BUDGET_SECONDS = 0.25
"""How long a click waits for Temporal before Slack gets its 200 (the delivery goes on)."""
REPLAY_WINDOW_SECONDS = 5 * 60
"""A request signed longer ago than this is refused: a captured request replayed later must not
decide anything."""
TEMPORAL = "temporal"
DECISION_KEY = "decision_key"
SETTINGS = "settings"
CONFIG = "config"
DIRECTORY = "directory"
"""The API's `SlackDirectory` in Bolt's `context` (put there by the route, api/routes/slack.py)."""
_background: set[asyncio.Task[str]] = set()


class SlackSignature(AsyncMiddleware):
    """Slack's request signature over the raw body and the replay window, checked before Bolt
    parses anything; a refusal is a 401 whose `detail` says why (missing or stale timestamp,
    invalid signature)."""

    def __init__(self, signing_secret: str) -> None:
        self.verifier = SignatureVerifier(signing_secret)

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Any
    ) -> BoltResponse:
        """Bolt middleware: the next step for a signed, fresh request; a 401 otherwise."""
        stamp = req.headers.get("x-slack-request-timestamp", [""])[0]
        signature = req.headers.get("x-slack-signature", [""])[0]
        try:
            age = abs(time.time() - int(stamp))
        except ValueError:
            return _refused("missing Slack timestamp")
        if age > REPLAY_WINDOW_SECONDS:
            return _refused("stale Slack request timestamp")
        if not self.verifier.is_valid(req.raw_body, stamp, signature):
            return _refused("invalid Slack signature")
        response: BoltResponse = await next()
        return response


def limits(context: dict[str, Any]) -> Limits:
    """The expectation limits for a listener: the config's, asking Slack (the security team's
    user group, an owner mapped by email) through the API's one `SlackDirectory`."""
    return Limits.from_config(context[CONFIG], context.get(DIRECTORY))


def _refused(detail: str) -> BoltResponse:
    return BoltResponse(status=401, body={"detail": detail})


class _SeenClicks:
    """Clicks already taken, so Slack's retries of one request deliver it once."""

    def __init__(self, size: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


_seen = _SeenClicks()


async def _reply(respond: AsyncRespond | None, text: str) -> None:
    """An ephemeral note to the clicker through the click's `response_url`: best effort, the
    decision is what matters."""
    if respond is None:  # the payload named no response_url
        return
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:
        log.warning("could not send ephemeral reply", exc_info=True)


async def decision_button(
    body: dict[str, Any],
    action: dict[str, Any],
    context: dict[str, Any],
    respond: AsyncRespond | None,
    request: AsyncBoltRequest,
) -> BoltResponse:
    """*Approve*, *Approve on behalf*, *Not me* and *Acknowledge* on an event's message.

    The clicker is who Slack's signature proved; the button's value only names the event, and
    the clicked message (Slack's `container`) must be one that event posted. The click is
    delivered as a signed, durable signal; when Temporal answers within `INLINE_BUDGET_SECONDS`
    the request waits for it, otherwise Slack gets its 200 at once and the delivery finishes in
    the background, telling the clicker if it fails. A click Temporal refused within the budget
    answers 503, so Slack shows the failure and its retry may deliver it.
    """
    user = body["user"]
    name = user.get("username") or user.get("name")
    click = Click(
        action=action_for(str(action["action_id"])),
        user=str(user["id"]),
        name=str(name) if name else None,
        at=datetime.now(UTC),
        via="slack",
        response_url=body.get("response_url"),
        shown=shown_in(action.get("block_id")),
    )
    event_id = str(action["value"])
    container = body.get("container") or {}
    message = (
        (str(container["channel_id"]), str(container["message_ts"]))
        if container.get("type", "message") == "message"
        and container.get("channel_id")
        and container.get("message_ts")
        else None
    )
    # Slack's retries and a replayed body carry the same action_ts: take each click once.
    key = f"{click.user}|{event_id}|{action.get('action_id')}|{action.get('action_ts')}"
    if not _seen.first_time(key):
        log.info("repeat of click %s (retry %s)", key, request.headers.get("x-slack-retry-num"))
        return BoltResponse(status=200, body="")
    task = asyncio.create_task(
        _deliver(
            context[TEMPORAL],
            context[DECISION_KEY],
            event_id,
            click,
            message,
            respond,
            context.get(SETTINGS),
            limits(context) if action.get("action_id") == EXPECT_THE_SAME else None,
        )
    )
    try:
        outcome = await asyncio.wait_for(asyncio.shield(task), INLINE_BUDGET_SECONDS)
    except TimeoutError:
        # Temporal is slow: answer Slack now; the task carries on and reports failure itself.
        _background.add(task)
        task.add_done_callback(_background.discard)
        return BoltResponse(status=200, body="")
    if outcome == "failed":
        _seen.forget(key)
        return BoltResponse(status=503, body="")
    return BoltResponse(status=200, body="")


async def _deliver(
    temporal: Client,
    key: str,
    event_id: str,
    click: Click,
    message: tuple[str, str] | None,
    respond: AsyncRespond | None,
    settings: Settings | None = None,
    expect_with: Limits | None = None,
) -> str:
    """Deliver the click; with `expect_with` (the limits: "Approve, and expect the same from me
    here"), once the approval is delivered, also expect the same for an hour
    (`expect_the_same`, the same limits as everywhere) and say what was done."""
    try:
        delivery: Delivery = await deliver_click(
            temporal, key, event_id, click, message, settings=settings
        )
    except Exception:
        log.exception("click %s on %s not delivered", click.action.value, event_id)
        await _reply(respond, ":warning: Powertrip could not record your click; try again.")
        return "failed"
    if delivery.reply is not None:
        await _reply(respond, delivery.reply)
    if expect_with is not None and settings is not None and delivery.outcome == "delivered":
        try:
            expected = await expect_the_same(
                temporal, key, settings.task_queue, event_id, click.user, expect_with, click.shown
            )
        except (ExpectationRefused, NoSuchExpectation) as exc:
            # Not "Approved": a group refuses an approval of a message that did not list all.
            await _reply(respond, f":no_entry: No expectation made, nothing is expected: {exc}")
        except Exception:
            log.exception("no expectation after %s by %s", event_id, click.user)
            await _reply(respond, ":warning: Approved, but the expectation was not recorded.")
        else:
            until = expected.until.strftime("%H:%M UTC")
            await _reply(
                respond,
                f":calendar: Approved. Until {until}, the same from you here is approved on "
                f"the record without asking (revoke it in Powertrip's Home tab).",
            )
    log.info("click %s by %s on %s: %s", click.action.value, click.user, event_id, delivery.outcome)
    return delivery.outcome


async def unknown_action(action: dict[str, Any]) -> BoltResponse:
    """A button Powertrip never posted: refused, nothing delivered."""
    return BoltResponse(
        status=400,
        body={"detail": f"unsupported interaction: unknown action {action.get('action_id')!r}"},
    )


COMMAND_BUDGET_SECONDS = 2.5
"""A slash command answers within this long (Slack waits 3 s for the response)."""
COMMAND_HELP = (
    "*/powertrip pending* — what waits for your decision (the security team: everything "
    "pending, and every unacknowledged *Not me*).\n"
    "*/powertrip expect* — pre-approve work you are about to do (an account, hosts, how long, "
    "why): matching events are approved on the record without asking you.\n"
    "*/powertrip passkey* — a one-time link to register a passkey (Touch ID, Windows Hello, a "
    "security key). Powertrip asks for it before approving sensitive events.\n"
    "*/powertrip help* — this list."
)
EXPECT_THE_SAME = "approve_expect"
"""The *Approve, and expect the same from me here for 1 h* button's `action_id`."""
EXPECT_VIEW = "powertrip_expect"
"""The `/powertrip expect` modal's `callback_id`."""


async def powertrip_command(
    ack: AsyncAck, command: dict[str, Any], context: dict[str, Any], client: AsyncWebClient
) -> None:
    """`/powertrip pending`, `/powertrip expect` (opens a modal), `/powertrip passkey` (a
    one-time registration link), `/powertrip help` or anything else: what the command does. For
    whoever typed it (Slack's signature proved who), shown only to them, within Slack's 3 s. A
    new subcommand is one more branch here."""
    words = str(command.get("text") or "").split()
    subcommand = words[0].lower() if words else "help"
    user, name = str(command["user_id"]), command.get("user_name")
    text = COMMAND_HELP
    try:
        if subcommand == "passkey":
            text = await asyncio.wait_for(
                registration_reply_for(
                    context[TEMPORAL], context.get(SETTINGS), user, str(name) if name else None
                ),
                COMMAND_BUDGET_SECONDS,
            )
        elif subcommand == "pending":
            records = await asyncio.wait_for(_waiting_for(context, user), COMMAND_BUDGET_SECONDS)
            text = pending_list(records, user)
        elif subcommand == "expect":
            await ack()  # the modal opens on its own; nothing to say in the channel
            await client.views_open(
                trigger_id=str(command["trigger_id"]),
                view=expect_modal(words[1] if len(words) > 1 else None),
            )
            return
    except (TimeoutError, RPCError, LimitsUnchecked):
        log.warning("/powertrip %s for %s not answered in time", subcommand, user, exc_info=True)
        text = f":warning: Powertrip is busy: try `/powertrip {subcommand}` again in a moment."
    await ack(response_type="ephemeral", text=text)


async def expect_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]
) -> None:
    """The `/powertrip expect` modal submitted: an expectation by whoever submitted it (Slack's
    signature proved who), `via: slack`, under the same limits as the API
    (`powertrip.services.expectations`). A refusal or a bad field is shown on the modal itself
    (`response_action: errors`); success closes it."""
    user = str(body["user"]["id"])
    settings: Settings = context[SETTINGS]
    try:
        fields = expect_fields(view.get("state", {}).get("values", {}))
        now = datetime.now(UTC)
        expectation = new_expectation(
            actor=fields.actor,
            hosts=fields.hosts,
            rules=fields.rules,
            until=now + fields.lasts,
            reason=fields.reason,
            created_by=user,
            via="slack",
            now=now,
        )
        await asyncio.wait_for(
            create_expectation(
                context[TEMPORAL],
                context[DECISION_KEY],
                settings.task_queue,
                expectation,
                limits(context),
            ),
            COMMAND_BUDGET_SECONDS,
        )
    except ModalError as exc:
        await ack(response_action="errors", errors={exc.block: str(exc)})
        return
    except ExpectationRefused as exc:
        await ack(response_action="errors", errors={"actor": str(exc)[:150]})
        return
    except (TimeoutError, RPCError):
        log.warning("expectation by %s not created in time", user, exc_info=True)
        await ack(response_action="errors", errors={"reason": "Powertrip is busy: try again."})
        return
    await ack()


async def passkey_button(
    body: dict[str, Any],
    action: dict[str, Any],
    context: dict[str, Any],
    respond: AsyncRespond | None,
) -> BoltResponse:
    """*Approve passkey* / *Reject* on a pending passkey's notice in the security channel. The
    button's value only names the notice; who may decide comes from the notice's own memo
    (powertrip.services.stepup.answer_passkey_button). Slack gets its 200 at once; the answer
    (a one-time link for the approver's own step-up, or what was done) follows ephemerally."""
    user = body["user"]
    name = user.get("username") or user.get("name")
    task = asyncio.create_task(
        _answer_passkey_button(
            context[TEMPORAL],
            context[SETTINGS],
            str(action["value"]),
            str(user["id"]),
            str(name) if name else None,
            PASSKEY_BUTTONS[str(action["action_id"])],
            respond,
        )
    )
    _background.add(task)
    task.add_done_callback(_background.discard)
    return BoltResponse(status=200, body="")


async def _answer_passkey_button(
    temporal: Client,
    settings: Settings,
    notice_id: str,
    user: str,
    name: str | None,
    approve: bool,
    respond: AsyncRespond | None,
) -> str:
    try:
        reply = await answer_passkey_button(
            temporal, settings, notice_id=notice_id, user=user, name=name, approve=approve
        )
    except Exception:
        log.exception("passkey decision by %s on %s failed", user, notice_id)
        reply = ":warning: Powertrip could not record your decision; try again."
    await _reply(respond, reply)
    return reply


async def home_opened(
    event: dict[str, Any], context: dict[str, Any], client: AsyncWebClient
) -> None:
    """`app_home_opened` (the Home tab): publish what waits for this user, and their active
    expectations (the security team: everything). Bolt acknowledges the event first."""
    if event.get("tab", "home") != "home":
        return
    await publish_home(context, client, str(event["user"]))


async def publish_home(
    context: dict[str, Any], client: AsyncWebClient, user: str, revoked: str | None = None
) -> None:
    """`views.publish` of `user`'s App Home, from visibility and the memos; without `revoked`
    (an expectation id just revoked: visibility lists it as active until its workflow has taken
    the signal, and the tab would show it with *Revoke* still)."""
    checks = limits(context)
    try:
        on_team = await checks.on_team(user)
    except LimitsUnchecked:
        log.warning("Home tab of %s shown as to an owner", user, exc_info=True)
        on_team = False
    waiting = await waiting_for(context[TEMPORAL], user, on_team)
    expectations = [
        e
        for e in await list_expectations(context[TEMPORAL])
        if e.id != revoked and (on_team or await _may_revoke(checks, e, user))
    ]
    await client.views_publish(user_id=user, view=app_home(waiting, expectations, on_team))


async def _may_revoke(checks: Limits, expectation: Expectation, user: str) -> bool:
    try:
        return await checks.may_revoke(expectation, user)
    except LimitsUnchecked:
        return user == expectation.created_by


async def _waiting_for(context: dict[str, Any], user: str) -> list[EventRecord]:
    """What waits for `user` (`/powertrip pending`): as the security team if they are on it."""
    return await waiting_for(context[TEMPORAL], user, await limits(context).on_team(user))


async def revoke_button(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    context: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    """*Revoke* on the App Home: revoked by whoever clicked (Slack's signature proved who) if
    they may (`Limits.may_revoke`), signed with the API's key; the Home tab is published again."""
    await ack()
    user, expectation_id = str(body["user"]["id"]), str(action["value"])
    revoked: str | None = None
    try:
        await revoke_expectation(
            context[TEMPORAL],
            context[DECISION_KEY],
            expectation_id,
            user,
            "slack",
            limits(context),
        )
        revoked = expectation_id
    except (ExpectationRefused, NoSuchExpectation) as exc:
        log.info("revocation by %s refused: %s", user, exc)
    await publish_home(context, client, user, revoked)


def register(app: AsyncApp) -> None:
    """Every listener of the app, in the order Bolt tries them (the first match answers)."""
    app.command("/powertrip")(powertrip_command)
    app.view(EXPECT_VIEW)(expect_submitted)
    app.event("app_home_opened")(home_opened)
    app.action(REVOKE_EXPECTATION)(revoke_button)
    app.action(re.compile(f"^({'|'.join(map(re.escape, BUTTON_ACTIONS))})$"))(decision_button)
    app.action(re.compile(f"^({'|'.join(map(re.escape, PASSKEY_BUTTONS))})$"))(passkey_button)
    app.action(re.compile(".*"))(unknown_action)


def slack_web_client(settings: Settings) -> AsyncWebClient:
    """The API's Slack Web API client: the bot token at `POWERTRIP_SLACK_API_URL`."""
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )


def create_slack_app(settings: Settings, directory: SlackDirectory | None = None) -> AsyncApp:
    """The Bolt app for `settings`: Slack's signing secret, and a Web API client with the bot
    token at `POWERTRIP_SLACK_API_URL` for listeners that call Slack (`directory`'s client, so
    its cached answers of who is who, which the route puts in `context[DIRECTORY]`, are one).
    Listeners run before the response (`process_before_response`): each answers within
    Slack's 3 seconds itself."""
    token = settings.slack_bot_token.get_secret_value()

    async def authorize(**_: Any) -> AuthorizeResult:
        # One workspace, one bot token: nothing to look up, and no `auth.test` call to Slack
        # on the way to answering a click.
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=token)

    app = AsyncApp(
        name="powertrip",
        signing_secret=settings.secret("slack_signing_secret"),
        client=directory.client if directory is not None else slack_web_client(settings),
        authorize=authorize,
        before_authorize=SlackSignature(settings.secret("slack_signing_secret")),
        request_verification_enabled=False,
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    register(app)
    return app
