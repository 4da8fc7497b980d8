"""A local stand-in for the Slack Web API: same wire format, a record of what it was sent, and
Slack's own failure modes on demand. Powertrip's real slack_sdk client talks to it over HTTP."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field


class InjectedFailure(BaseModel):
    """Make the next `times` calls of `method` fail like Slack does."""

    method: str
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    times: int = 1


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


class FakeSlack:
    def __init__(self, token: str, channels: list[str] | None = None) -> None:
        self.token = token
        self.channels = set(channels or [])
        self.users: dict[str, FakeUser] = {}
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        self.calls: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.failures: dict[str, list[InjectedFailure]] = defaultdict(list)
        self._ts = itertools.count(1)

    def reset(self) -> None:
        self.messages.clear()
        self.calls.clear()
        self.responses.clear()
        self.failures.clear()

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

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
        queued = self.failures.get(method)
        if queued:
            failure = queued[0]
            failure.times -= 1
            if failure.times <= 0:
                queued.pop(0)
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
        return {"ok": True, "channel": {"id": channel, "is_member": True}}

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
        )
        self.messages[(channel, message.ts)] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": {"text": message.text, "blocks": message.blocks},
        }

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
        return {"ok": True, "channel": channel, "ts": ts, "text": message.text}


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
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.post("/response/{key}")
    async def response_url(key: str, request: Request) -> dict[str, Any]:
        fake.responses.append({"key": key, **json.loads(await request.body())})
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

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        fake.reset()
        return {"ok": True}

    return app
