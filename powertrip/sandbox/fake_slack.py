"""A local stand-in for the Slack Web API: same wire format, a record of what it was sent, and
Slack's own failure modes on demand. Powertrip's real slack_sdk client talks to it over HTTP."""

from __future__ import annotations

import itertools
import json
import ssl
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from powertrip.sandbox.interactions import (
    app_home_opened_event,
    block_action_payload,
    block_of,
    new_trigger_id,
    signed_request,
    slash_command_fields,
    view_submission_payload,
)
from powertrip.sandbox.page import PAGE
from powertrip.slack_checks import SCOPES

# The bot scopes each Web API method needs (the manifest in slack/manifest.yml grants these).
METHOD_SCOPES: dict[str, str] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.info": "channels:read",
    "conversations.open": "im:write",
    "users.lookupByEmail": "users:read.email",
    "users.info": "users:read",
    "usergroups.users.list": "usergroups:read",
}
ALL_SCOPES = sorted(SCOPES)


class InjectedFailure(BaseModel):
    """Make the next `times` calls of `method` fail like Slack does."""

    method: str
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    times: int = 1
    applied: bool = False
    """The call takes effect but its answer is lost (Slack failing after the fact, or a worker
    killed between Slack's answer and Temporal recording it)."""


class FakeUser(BaseModel):
    id: str
    name: str
    email: str | None = None
    is_bot: bool = False


class SlackMessage(BaseModel):
    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    thread_ts: str | None = None
    reply_broadcast: bool = False
    updates: int = 0
    metadata: dict[str, Any] | None = None


class SandboxClick(BaseModel):
    """A button pressed on the sandbox page, as the chosen Slack user: on a message (`channel`,
    `ts`) or on one of that user's views (`view_id`: their App Home or open modal)."""

    user: str
    channel: str | None = None
    ts: str | None = None
    view_id: str | None = None
    block_id: str | None = None
    action_id: str
    value: str


class SandboxUser(BaseModel):
    """Who the sandbox page acts as (opening the Home tab, closing a modal)."""

    user: str


class SandboxSubmit(BaseModel):
    """The chosen user's open modal submitted from the sandbox page: block id -> typed text."""

    user: str
    values: dict[str, str] = Field(default_factory=dict)


class SandboxCommand(BaseModel):
    """A slash command typed on the sandbox page, as the chosen Slack user."""

    user: str
    text: str = ""
    command: str = "/powertrip"


class SavedConversations(BaseModel):
    """What the sandbox keeps across restarts (`FakeSlack(state=...)`): the messages and the
    ephemeral replies shown under them."""

    messages: list[SlackMessage] = Field(default_factory=list)
    responses: list[dict[str, Any]] = Field(default_factory=list)


class FakeSlack:
    """The workspace: `channels` are the channel ids that exist (`channel_names` gives some a
    name for the sandbox page); `state`, when given, is a JSON file the messages are kept in, so
    a restarted sandbox still has the messages pending events will update."""

    def __init__(
        self,
        token: str,
        channels: list[str] | None = None,
        *,
        signing_secret: str | None = None,
        interaction_url: str | None = None,
        channel_names: dict[str, str] | None = None,
        state: Path | None = None,
        pagerduty_url: str | None = None,
        pagerduty_ca_file: Path | None = None,
    ) -> None:
        self.token = token
        self.pagerduty_url = pagerduty_url
        """The fake PagerDuty's base URL: the sandbox page shows what it received."""
        self.pagerduty_ca_file = pagerduty_ca_file
        self.channels = set(channels or []) | set(channel_names or {})
        self.channel_names = dict(channel_names or {})
        self.signing_secret = signing_secret
        self.interaction_url = interaction_url
        self.scopes: list[str] = list(ALL_SCOPES)
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, FakeUser] = {}
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        self.calls: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.failures: dict[str, list[InjectedFailure]] = defaultdict(list)
        self.views: list[dict[str, Any]] = []
        """Modals opened (`views.open`), in order, as Slack returns them (with `id`)."""
        self.home: dict[str, dict[str, Any]] = {}
        """Each user's App Home tab as last published (`views.publish`)."""
        self.modals: dict[str, dict[str, Any]] = {}
        """The modal each user has open: opened (`views.open`) with a trigger the sandbox page
        issued to them, until submitted without errors or closed."""
        self.triggers: dict[str, str] = {}
        """`trigger_id` -> the user whose action the sandbox page sent it with."""
        self._ts = itertools.count(1)
        self.state = state
        if state is not None and state.exists():
            saved = SavedConversations.model_validate_json(state.read_text())
            self.messages = {(m.channel, m.ts): m for m in saved.messages}
            self.responses = saved.responses

    def save(self) -> None:
        """Write the messages to `state` (if any): whole, through a temporary file, so a crash
        mid-write leaves the previous copy."""
        if self.state is None:
            return
        saved = SavedConversations(messages=list(self.messages.values()), responses=self.responses)
        partial = self.state.with_name(self.state.name + ".partial")
        partial.write_text(saved.model_dump_json())
        partial.replace(self.state)

    def reset(self) -> None:
        self.views.clear()
        self.home.clear()
        self.modals.clear()
        self.triggers.clear()
        self.messages.clear()
        self.calls.clear()
        self.responses.clear()
        self.failures.clear()
        self.scopes = list(ALL_SCOPES)
        self.save()

    def next_ts(self) -> str:
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        while any(key[1] == ts for key in self.messages):  # a restart within the same second
            ts = f"{int(time.time())}.{next(self._ts):06d}"
        return ts

    def dm_channel(self, user: str) -> str:
        return "D" + user[1:]

    def _channel(self, requested: str) -> str | None:
        if requested.startswith(("U", "W")):
            return self.dm_channel(requested) if requested in self.users or not self.users else None
        if requested.startswith("D") or requested in self.channels or not self.channels:
            return requested
        return None

    def call(self, method: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.calls.append({"method": method, "args": args})
        needed = METHOD_SCOPES.get(method)
        if needed and needed not in self.scopes:
            return (
                200,
                {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": ",".join(self.scopes),
                },
                {},
            )
        queued = self.failures.get(method)
        if queued:
            failure = queued[0]
            failure.times -= 1
            if failure.times <= 0:
                queued.pop(0)
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            if failure.applied and handler is not None:
                handler(args)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            if failure.status == 429:
                return 429, {"ok": False, "error": "ratelimited"}, headers or {"Retry-After": "1"}
            if failure.status >= 500:
                return failure.status, {"ok": False, "error": "fatal_error"}, headers
            return 200, {"ok": False, "error": failure.error or "fatal_error"}, headers
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(args), {}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://powertrip-fake.slack.com/",
            "team": "Powertrip Fake",
            "user": "powertrip",
            "team_id": "T0FAKE",
            "user_id": "U0POWERTRIP",
            "bot_id": "B0POWERTRIP",
        }

    def _users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        for user in self.users.values():
            if user.email and user.email.lower() == str(args.get("email", "")).lower():
                return {
                    "ok": True,
                    "user": {
                        "id": user.id,
                        "name": user.name,
                        "is_bot": user.is_bot,
                        "profile": {"email": user.email},
                    },
                }
        return {"ok": False, "error": "users_not_found"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user.id, "name": user.name, "is_bot": user.is_bot}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users", ""))
        channel = self._channel(users.split(",")[0])
        if channel is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": channel}}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        info = {"id": channel, "is_member": True}
        if channel in self.channel_names:
            info["name"] = self.channel_names[channel]
        return {"ok": True, "channel": info}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        message = SlackMessage(
            channel=channel,
            ts=self.next_ts(),
            text=args.get("text") or "",
            blocks=_blocks(args.get("blocks")),
            thread_ts=args.get("thread_ts"),
            reply_broadcast=bool(args.get("reply_broadcast")),
            metadata=_object(args.get("metadata")),
        )
        self.messages[(channel, message.ts)] = message
        self.save()
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": {"text": message.text, "blocks": message.blocks},
        }

    def _history_scope(self, channel: str) -> dict[str, Any] | None:
        """Slack's `missing_scope` answer when the token may not read `channel`'s history."""
        needed = {"D": "im:history", "G": "groups:history"}.get(channel[:1], "channels:history")
        if needed in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": needed}

    def _listed(self, message: SlackMessage, metadata: bool) -> dict[str, Any]:
        listed: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text}
        if message.thread_ts:
            listed["thread_ts"] = message.thread_ts
        if metadata and message.metadata is not None:
            listed["metadata"] = message.metadata
        return listed

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel's top-level messages (and broadcast replies), newest first."""
        channel = str(args.get("channel", ""))
        if refused := self._history_scope(channel):
            return refused
        oldest = float(args.get("oldest") or 0)
        listed = sorted(
            (
                m
                for (c, ts), m in self.messages.items()
                if c == channel and float(ts) >= oldest and (not m.thread_ts or m.reply_broadcast)
            ),
            key=lambda m: float(m.ts),
            reverse=True,
        )[: int(args.get("limit") or 100)]
        metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        return {"ok": True, "messages": [self._listed(m, metadata) for m in listed]}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent, then its replies, oldest first."""
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if refused := self._history_scope(channel):
            return refused
        if (channel, ts) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        thread = sorted(
            (m for (c, t), m in self.messages.items() if c == channel and ts in (t, m.thread_ts)),
            key=lambda m: float(m.ts),
        )
        metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        return {"ok": True, "messages": [self._listed(m, metadata) for m in thread]}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's `views.open`: a modal for a fresh `trigger_id` (Slack's expire in 3 s)."""
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_arguments"}
        view = _view(args.get("view"))
        if view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        opened = {**view, "id": f"V{len(self.views) + 1:08d}", "state": {"values": {}}}
        self.views.append(opened)
        user = self.triggers.pop(str(args["trigger_id"]), None)
        if user is not None:
            self.modals[user] = opened
        return {"ok": True, "view": opened}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's `views.publish`: `user_id`'s App Home tab."""
        user, view = str(args.get("user_id", "")), _view(args.get("view"))
        if not user or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        self.home[user] = {**view, "id": f"VH{user}"}
        return {"ok": True, "view": self.home[user]}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if channel.startswith(("U", "W")):
            return {"ok": False, "error": "channel_not_found"}
        message = self.messages.get((channel, ts))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text = args.get("text") or message.text
        if "blocks" in args:
            message.blocks = _blocks(args.get("blocks"))
        message.updates += 1
        self.save()
        return {"ok": True, "channel": channel, "ts": ts, "text": message.text}


def _object(value: Any) -> dict[str, Any] | None:
    """A JSON object argument, sent as JSON or as a form field holding JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _view(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def create_fake_slack_app(fake: FakeSlack) -> FastAPI:
    app = FastAPI(title="Fake Slack Web API")
    app.state.fake = fake

    @app.api_route("/api/{method}", methods=["GET", "POST"])
    async def web_api(method: str, request: Request) -> Response:
        args: dict[str, Any] = dict(request.query_params)
        body = await request.body()
        if body:
            if request.headers.get("content-type", "").startswith("application/json"):
                args.update(json.loads(body))
            else:
                args.update(dict((await request.form()).items()))
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = token or str(args.pop("token", ""))
        if token != fake.token:
            fake.calls.append({"method": method, "args": args})
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        status, payload, headers = fake.call(method, args)
        # Real Slack names the token's scopes on every response; start-up checks read it.
        headers = {**headers, "x-oauth-scopes": ",".join(fake.scopes)}
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.post("/response/{key}")
    async def response_url(key: str, request: Request) -> dict[str, Any]:
        fake.responses.append({"key": key, **json.loads(await request.body())})
        fake.save()
        return {"ok": True}

    @app.post("/_fake/failures")
    async def inject(failure: InjectedFailure) -> dict[str, Any]:
        fake.failures[failure.method].append(failure)
        return {"ok": True}

    @app.post("/_fake/users")
    async def add_user(user: FakeUser) -> dict[str, Any]:
        fake.users[user.id] = user
        return {"ok": True}

    @app.get("/_fake/messages")
    async def list_messages() -> list[SlackMessage]:
        return list(fake.messages.values())

    @app.get("/_fake/calls")
    async def list_calls() -> list[dict[str, Any]]:
        return fake.calls

    @app.get("/_fake/responses")
    async def list_responses() -> list[dict[str, Any]]:
        return fake.responses

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def sandbox_page() -> str:
        return PAGE

    @app.get("/_fake/users")
    async def list_users() -> list[FakeUser]:
        return list(fake.users.values())

    @app.get("/_fake/channels")
    async def list_channels() -> dict[str, str]:
        """Channel id -> name, for the ones that have a name."""
        return fake.channel_names

    @app.post("/_sandbox/click")
    async def sandbox_click(click: SandboxClick, request: Request) -> dict[str, Any]:
        """Press a button as `click.user`: a block_actions request signed like Slack signs it,
        sent to Powertrip, with a response_url back here so ephemeral replies show on the page.
        A button on a message names it (`channel`, `ts`); one on the user's App Home or modal
        names that view (`view_id`), which the payload carries whole, as Slack's does."""
        _interactive(fake)
        base = str(request.base_url).rstrip("/")
        view: dict[str, Any] | None = None
        if click.view_id is not None:
            views = [fake.home.get(click.user), fake.modals.get(click.user)]
            view = next((v for v in views if v and v.get("id") == click.view_id), None)
            if view is None:
                raise HTTPException(404, "no such view open for this user")
            key = f"{click.user}.view.{click.view_id}"
        elif click.channel and click.ts and (click.channel, click.ts) in fake.messages:
            key = f"{click.user}.{click.channel}.{click.ts}"
        else:
            raise HTTPException(404, "no such message")
        payload = block_action_payload(
            click.user,
            click.action_id,
            click.value,
            channel=click.channel,
            message_ts=click.ts,
            response_url=f"{base}/response/{key}",
            view=view,
            # Slack sends the pressed button's block id; the page sends it, a script may not.
            block_id=click.block_id
            or (
                block_of(
                    fake.messages[(click.channel, click.ts)].blocks, click.action_id, click.value
                )
                if view is None and click.channel and click.ts
                else "decision"
            ),
        )
        payload["trigger_id"] = _trigger_for(fake, click.user)
        answer = await _post(fake, *signed_request(_secret(fake), payload))
        if isinstance(answer, dict):
            return answer
        return {"ok": answer.is_success, "status": answer.status_code}

    @app.get("/_fake/views/{user}")
    async def views_of(user: str) -> dict[str, Any]:
        """`user`'s App Home as last published and the modal they have open (or null)."""
        return {"home": fake.home.get(user), "modal": fake.modals.get(user)}

    @app.post("/_sandbox/home")
    async def sandbox_home(opened: SandboxUser) -> dict[str, Any]:
        """Open the Home tab as `opened.user`: the `app_home_opened` event, signed like Slack
        signs it; Powertrip answers by publishing the tab (`views.publish`)."""
        _interactive(fake)
        event = app_home_opened_event(opened.user)
        answer = await _post(fake, *signed_request(_secret(fake), event, as_json=True))
        if isinstance(answer, dict):
            return answer
        return {"ok": answer.is_success, "status": answer.status_code}

    @app.post("/_sandbox/submit")
    async def sandbox_submit(submit: SandboxSubmit) -> dict[str, Any]:
        """Submit `submit.user`'s open modal: a `view_submission` signed like Slack signs it.
        As in Slack, an empty answer (or `response_action: clear`) closes the modal, `errors`
        keeps it open with each message under its field, `update` replaces it."""
        _interactive(fake)
        modal = fake.modals.get(submit.user)
        if modal is None:
            raise HTTPException(404, "no modal open for this user")
        # What the page keeps beside the view (the last errors and values) is not Slack's.
        view = {k: v for k, v in modal.items() if k not in ("errors", "values")}
        payload = view_submission_payload(submit.user, view, submit.values)
        answer = await _post(fake, *signed_request(_secret(fake), payload))
        if isinstance(answer, dict):
            return answer
        reply: Any = None
        if answer.headers.get("content-type", "").startswith("application/json"):
            reply = answer.json()
        action = reply.get("response_action") if isinstance(reply, dict) else None
        if not answer.is_success:
            return {"ok": False, "status": answer.status_code}
        if action == "errors" and isinstance(reply, dict):
            errors = {str(k): str(v) for k, v in dict(reply.get("errors") or {}).items()}
            fake.modals[submit.user] = {**view, "errors": errors, "values": submit.values}
            return {"ok": True, "status": answer.status_code, "errors": errors}
        if action == "update" and isinstance(reply, dict):
            fake.modals[submit.user] = {**_view(reply.get("view")), "id": modal["id"]}
            return {"ok": True, "status": answer.status_code, "updated": True}
        fake.modals.pop(submit.user, None)
        return {"ok": True, "status": answer.status_code, "closed": True}

    @app.post("/_sandbox/close")
    async def sandbox_close(closed: SandboxUser) -> dict[str, Any]:
        """*Cancel* on the user's modal: closed (Powertrip's modals ask no `view_closed`)."""
        return {"ok": fake.modals.pop(closed.user, None) is not None}

    @app.get("/_fake/pagerduty")
    async def pagerduty() -> dict[str, Any]:
        """What the fake PagerDuty received (its incidents), for the sandbox page's panel:
        `{"url": ..., "incidents": [...]}`, `{"url": null}` without one, `error` when it cannot
        be reached."""
        if not fake.pagerduty_url:
            return {"url": None, "incidents": []}
        ca_file = fake.pagerduty_ca_file
        verify: Any = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        try:
            async with httpx.AsyncClient(timeout=5, verify=verify) as http:
                answer = await http.get(f"{fake.pagerduty_url}/_fake/incidents")
                answer.raise_for_status()
        except httpx.HTTPError as exc:
            return {"url": fake.pagerduty_url, "incidents": [], "error": str(exc)}
        return {"url": fake.pagerduty_url, "incidents": answer.json()}

    @app.post("/_sandbox/command")
    async def sandbox_command(command: SandboxCommand, request: Request) -> dict[str, Any]:
        """Type `/powertrip ...` as `command.user`: a slash command signed like Slack signs it,
        sent to Powertrip; its answer (shown only to that user) is kept with the replies, and a
        modal it opens (`views.open` with its trigger) is that user's open modal."""
        _interactive(fake)
        base = str(request.base_url).rstrip("/")
        key = f"{command.user}.command.{time.time():.6f}"
        user = fake.users.get(command.user)
        fields = slash_command_fields(
            command.user,
            command.text,
            user_name=user.name if user else None,
            response_url=f"{base}/response/{key}",
            command=command.command,
            trigger_id=_trigger_for(fake, command.user),
        )
        answer = await _post(fake, *signed_request(_secret(fake), {}, form=fields))
        if isinstance(answer, dict):
            return answer
        reply: Any = None
        if answer.headers.get("content-type", "").startswith("application/json"):
            reply = answer.json()
        elif answer.text:
            reply = {"text": answer.text}
        if answer.is_success and isinstance(reply, dict) and reply.get("text"):
            typed = f"{command.command} {command.text}".strip()
            fake.responses.append({"key": key, "command": typed, **reply})
            fake.save()
        return {
            "ok": answer.is_success,
            "status": answer.status_code,
            "modal": command.user in fake.modals,
        }

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        fake.reset()
        return {"ok": True}

    return app


def _interactive(fake: FakeSlack) -> None:
    """409 unless the fake can sign requests and knows where Powertrip takes them."""
    if not (fake.signing_secret and fake.interaction_url):
        raise HTTPException(409, "start the fake with --signing-secret and --interaction-url")


def _secret(fake: FakeSlack) -> str:
    assert fake.signing_secret is not None  # checked by _interactive
    return fake.signing_secret


def _pressed_block(fake: FakeSlack, click: SandboxClick, view: dict[str, Any] | None) -> str:
    """The block id Slack would send for the button `click` names on its message."""
    message = fake.messages.get((click.channel or "", click.ts or ""))
    if view is not None or message is None:
        return "decision"
    return block_of(message.blocks, click.action_id, click.value)


def _trigger_for(fake: FakeSlack, user: str) -> str:
    """A fresh trigger for an action of `user`'s: a modal Powertrip opens with it is theirs."""
    trigger = new_trigger_id()
    fake.triggers[trigger] = user
    while len(fake.triggers) > 1000:  # Slack's expire in 3 s; never let unused ones pile up
        fake.triggers.pop(next(iter(fake.triggers)))
    return trigger


async def _post(
    fake: FakeSlack, body: bytes, headers: dict[str, str]
) -> httpx.Response | dict[str, Any]:
    """POST a signed request to Powertrip's Slack URL; the page's failure answer if unreachable."""
    assert fake.interaction_url is not None  # checked by _interactive
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            return await http.post(fake.interaction_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return {"ok": False, "status": None, "error": f"Powertrip unreachable: {exc}"}
