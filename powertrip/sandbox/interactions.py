"""Slack interaction requests as Slack sends them: a `block_actions` payload or a slash command,
form-encoded and signed with the app's signing secret. Used by the sandbox page and the tests."""

from __future__ import annotations

import json
import time
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
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE", "domain": "powertrip-fake"},
        "api_app_id": "A0POWERTRIP",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel} if channel else None,
        "trigger_id": f"{int(time.time())}.trigger",
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "decision",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def slash_command_fields(
    user: str,
    text: str,
    *,
    user_name: str | None = None,
    response_url: str | None = None,
    command: str = "/powertrip",
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
        "trigger_id": f"{int(time.time())}.trigger",
    }


def signed_request(
    signing_secret: str,
    payload: dict[str, Any],
    timestamp: int | None = None,
    *,
    form: dict[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack would send for this interaction payload (or, `form`, for
    these form fields as they are: a slash command)."""
    body = urlencode(form if form is not None else {"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
    }
