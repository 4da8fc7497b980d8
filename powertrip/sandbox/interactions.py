"""Slack requests as Slack sends them: a `block_actions` or `view_submission` payload or a slash
command, form-encoded, and an Events API callback (`app_home_opened`) as JSON, each signed with
the app's signing secret. Used by the sandbox page and the tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


def block_action_payload(
    user: str,
    action_id: str,
    value: str,
    *,
    response_url: str | None = None,
    channel: str | None = None,
    message_ts: str | None = None,
    view: dict[str, Any] | None = None,
    block_id: str = "decision",
) -> dict[str, Any]:
    """The payload Slack posts when `user` presses a button: on a message (`channel`,
    `message_ts`) or, with `view`, on a view (the App Home or a modal; Slack sends the whole view
    and names it in `container`)."""
    container: dict[str, Any] = (
        {"type": "view", "view_id": view.get("id")}
        if view is not None
        else {"type": "message", "message_ts": message_ts, "channel_id": channel}
    )
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE", "domain": "powertrip-fake"},
        "api_app_id": "A0POWERTRIP",
        "container": container,
        "channel": {"id": channel} if channel else None,
        "trigger_id": f"{int(time.time())}.trigger",
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if view is not None:
        payload["view"] = view
    return payload


def block_of(blocks: list[dict[str, Any]], action_id: str, value: str) -> str:
    """The id of the block in `blocks` holding the button `action_id` with `value`, as Slack
    sends it with a click (`actions[].block_id`: a group's question counts what it lists in
    it); `decision` when no such button is there."""
    for block in blocks:
        for element in block.get("elements") or [block.get("accessory") or {}]:
            if element.get("action_id") == action_id and element.get("value") == value:
                return str(block.get("block_id") or "decision")
    return "decision"


def view_submission_payload(
    user: str, view: dict[str, Any], values: dict[str, str]
) -> dict[str, Any]:
    """The `view_submission` payload Slack posts when `user` submits the modal `view` with
    `values` (block id -> the text typed into that block's `plain_text_input`, whose
    `action_id` the view names; `value` when it names none)."""
    actions = {
        str(b.get("block_id")): str((b.get("element") or {}).get("action_id") or "value")
        for b in view.get("blocks", [])
        if b.get("type") == "input"
    }
    return {
        "type": "view_submission",
        "team": {"id": "T0FAKE", "domain": "powertrip-fake"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0POWERTRIP",
        "token": "deprecated-verification-token",
        "trigger_id": new_trigger_id(),
        "view": {
            **view,
            "state": {
                "values": {
                    block: {actions.get(block, "value"): {"type": "plain_text_input", "value": v}}
                    for block, v in values.items()
                }
            },
        },
    }


def app_home_opened_event(user: str) -> dict[str, Any]:
    """The Events API callback Slack posts (as JSON) when `user` opens the app's Home tab."""
    return {
        "type": "event_callback",
        "team_id": "T0FAKE",
        "api_app_id": "A0POWERTRIP",
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": "D" + user[1:],
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
    }


def new_trigger_id() -> str:
    """A fresh `trigger_id` (Slack's are single-use and expire after 3 s)."""
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:16]}"


def slash_command_fields(
    user: str,
    text: str,
    *,
    user_name: str | None = None,
    response_url: str | None = None,
    command: str = "/powertrip",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The form fields Slack posts when `user` types `command text` (in their DM with the app)."""
    return {
        "token": "deprecated-verification-token",
        "team_id": "T0FAKE",
        "team_domain": "powertrip-fake",
        "channel_id": "D" + user[1:],
        "channel_name": "directmessage",
        "user_id": user,
        "user_name": user_name or user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0POWERTRIP",
        "response_url": response_url or "",
        "trigger_id": trigger_id or new_trigger_id(),
    }


def signed_request(
    signing_secret: str,
    payload: dict[str, Any],
    timestamp: int | None = None,
    *,
    form: dict[str, str] | None = None,
    as_json: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack would send for this interaction payload (or, `form`, for
    these form fields as they are: a slash command; or, `as_json`, for this Events API
    callback, which Slack posts as JSON)."""
    if as_json:
        body = json.dumps(payload).encode()
    else:
        body = urlencode(form if form is not None else {"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    return body, {
        "Content-Type": "application/json" if as_json else "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
    }
