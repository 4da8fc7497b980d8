"""Authenticated decisions: only the component that verified the human may decide an event.
This module signs and verifies; `powertrip.services.decisions` sends, `activities.decisions`
verifies in the worker.

The API (after checking Slack's request signature) and the CLI (`powertrip events approve`) sign
every decision they send to an event's workflow with `POWERTRIP_DECISION_KEY`; the worker holds
the same key and verifies each decision in a local activity before the workflow counts it. Anyone
who can only reach Temporal (its frontend, the `temporal` CLI, the Web UI) can still send a
`decide` signal, but not a signed one: the workflow records it as `rejected` and changes nothing.

The signature is `v1=` + hex HMAC-SHA256 over canonical JSON (sorted keys, no spaces, ASCII) of
the event id and every field of the `Click` except `signature` and `response_url`: action, user
and user name, the signing time, `via`, reason, operator (CLI: `user@host`), a refusal, and a
random nonce the workflow takes once, so a signed decision read from one event's history can be
replayed neither to that event nor to another. Fields left unset are left out, so an API or CLI
one release older or newer than the worker still signs the same message.

The key never enters workflow code or history: the local activity's verdict is recorded in
history, so replaying a workflow does not depend on the key a worker holds today, and a rotated
key (`POWERTRIP_DECISION_KEY_PREVIOUS` on the worker while the new one rolls out) changes no
past result.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import socket
from collections.abc import Sequence
from datetime import UTC, datetime

from powertrip.contracts.approval import Action, Click, Verdict
from powertrip.settings import Settings, SettingsError

SIGNATURE_VERSION = "v1"
MIN_KEY_CHARS = 32
_UNSIGNED_FIELDS = {"signature", "response_url"}


def decision_key(settings: Settings, who: str) -> str:
    """The signing key, checked at start-up by each process that needs it.

    Raises SettingsError naming POWERTRIP_DECISION_KEY when it is missing or shorter than
    MIN_KEY_CHARS characters."""
    settings.require("decision_key", who=who)
    key = settings.secret("decision_key")
    if len(key) < MIN_KEY_CHARS:
        raise SettingsError(
            f"POWERTRIP_DECISION_KEY is {len(key)} characters; the {who} needs at least "
            f"{MIN_KEY_CHARS} (e.g. `openssl rand -hex 32`)"
        )
    return key


def verification_keys(settings: Settings) -> list[str]:
    """The worker's keys: the current one, then POWERTRIP_DECISION_KEY_PREVIOUS if set."""
    keys = [decision_key(settings, "worker")]
    if settings.decision_key_previous is not None:
        keys.append(settings.decision_key_previous.get_secret_value())
    return keys


def _message(event_id: str, click: Click) -> bytes:
    fields = click.model_dump(mode="json", exclude=_UNSIGNED_FIELDS, exclude_none=True)
    document = {"event_id": event_id, **fields}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signature(key: str, event_id: str, click: Click) -> str:
    digest = hmac.new(key.encode(), _message(event_id, click), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def sign(key: str, event_id: str, click: Click) -> Click:
    """A copy of `click` for `event_id` with a fresh nonce and its signature."""
    unsigned = click.model_copy(update={"nonce": secrets.token_urlsafe(16), "signature": None})
    return unsigned.model_copy(update={"signature": _signature(key, event_id, unsigned)})


def signed_click(key: str, event_id: str, action: Action, user: str, **fields: object) -> Click:
    """A new decision by `user`, signed now; `fields` are the other `Click` fields."""
    click = Click.model_validate(
        {"action": action, "user": user, "at": datetime.now(UTC), **fields}
    )
    return sign(key, event_id, click)


def verify(keys: Sequence[str], event_id: str, click: Click) -> Verdict:
    """Whether one of `keys` signed exactly this click for exactly this event.

    Taking the nonce once is the workflow's part (it holds the nonces it took)."""
    if not click.signature:
        return Verdict(authentic=False, reason="unsigned")
    if not click.nonce:
        return Verdict(authentic=False, reason="no nonce")
    if not click.signature.startswith(f"{SIGNATURE_VERSION}="):
        return Verdict(authentic=False, reason="unknown signature version")
    if any(hmac.compare_digest(_signature(k, event_id, click), click.signature) for k in keys):
        return Verdict(authentic=True)
    return Verdict(
        authentic=False,
        reason="bad signature (forged, altered, meant for another event, or signed with a key "
        "this worker does not hold)",
    )


def operator() -> str:
    """Who runs this CLI: the operating-system user and host, `user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (minimal containers)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"
