"""Slack interactivity: verify the raw body, decide quickly, deliver the click durably.

Slack waits 3 s for an answer and then retries (`X-Slack-Retry-Num`). The click is delivered as
a workflow signal (durable in Temporal even with no worker running), signed with the decision key
(powertrip.decisions) now that Slack's signature has proven who clicked; when Temporal answers
within `INLINE_BUDGET_SECONDS` the request waits for it, otherwise Slack gets its 200 at once and
the delivery finishes in the background, telling the clicker through `response_url` if it fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response, status
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.body import read_capped
from api.deps import DecisionKeyDep, SettingsDep, TemporalDep
from powertrip.approvals import Click, EventRecord
from powertrip.decisions import sign
from powertrip.messages import action_for
from workflows.approval import ApprovalWorkflow

router = APIRouter(prefix="/slack", tags=["slack"])
log = logging.getLogger(__name__)

INLINE_BUDGET_SECONDS = 0.25
REPLAY_WINDOW_SECONDS = 5 * 60
# A message is posted a moment before the workflow records it in its memo: a very quick click on
# a brand-new message looks again before concluding the message is not the event's.
MESSAGE_GRACE_SECONDS = 1.5
_background: set[asyncio.Task[str]] = set()


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


async def _reply(response_url: str | None, text: str) -> None:
    if not response_url:
        return
    try:
        await AsyncWebhookClient(response_url).send(
            text=text, response_type="ephemeral", replace_original=False
        )
    except Exception:  # an ephemeral note is best effort; the decision is what matters
        log.warning("could not send ephemeral reply", exc_info=True)


async def _record(temporal: Client, event_id: str) -> EventRecord | None:
    handle = temporal.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return await description.memo_value("record", type_hint=EventRecord)


def _posted_by_event(record: EventRecord, message: tuple[str, str]) -> bool:
    return any((m.channel, m.ts) == message for m in record.messages)


async def _on_its_message(
    temporal: Client, event_id: str, record: EventRecord, message: tuple[str, str] | None
) -> tuple[EventRecord, str | None]:
    """The record (looked up again while a brand-new message is not in it yet), and why the
    click is not from one of the event's own messages, if it is not."""
    if message is None:
        # Every button Powertrip posts is on a message; Slack names it in `container`.
        return record, "not from one of this event's messages (the click names no message)"
    deadline = time.monotonic() + MESSAGE_GRACE_SECONDS
    while not _posted_by_event(record, message) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        record = await _record(temporal, event_id) or record
    if _posted_by_event(record, message):
        return record, None
    log.warning("click on %s from a message it never posted: %s", event_id, message)
    return record, f"from a message this event never posted (channel {message[0]}, {message[1]})"


async def deliver(
    temporal: Client,
    key: str,
    event_id: str,
    click: Click,
    message: tuple[str, str] | None = None,
) -> str:
    """Check the click against the workflow's own record, sign it, signal it. Returns what
    happened: delivered, refused, mismatch, stale, closed or unknown.

    Who may decide comes from the record (the memo the workflow publishes), never from the
    button: the button value only names the event, and the clicked message must be one that
    event posted, so a click on event A's message can never decide event B. A refused click on
    a running event is signalled too, marked refused, so the event's timeline shows it; the
    workflow changes nothing for it.
    """
    record = await _record(temporal, event_id)
    if record is None:
        await _reply(click.response_url, "Powertrip does not know this event.")
        return "unknown"
    record, mismatch = await _on_its_message(temporal, event_id, record, message)
    if mismatch is not None:
        outcome, refused = "mismatch", mismatch
        reply = ":no_entry: This button does not belong to that event."
    elif refusal := record.refusal(click.action, click.user):
        if refusal.stale:  # already decided: nothing to trace
            await _reply(click.response_url, refusal.text)
            return "stale"
        outcome, reply, refused = "refused", f":no_entry: {refusal.text}", refusal.plain
    else:
        outcome, reply, refused = "delivered", None, None
    handle = temporal.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
    signed = sign(key, event_id, click.model_copy(update={"refused": refused}))
    try:
        await handle.signal(ApprovalWorkflow.decide, signed)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        if reply is None:  # it finished between our look at it and the signal
            outcome = "closed"
            reply = (
                "This event closed before your click arrived, so it was not recorded. If this "
                "was not you, tell the security team at once."
            )
    if reply is not None:
        await _reply(click.response_url, reply)
    return outcome


def _verify(body: bytes, request: Request, secret: str) -> None:
    stamp = request.headers.get("x-slack-request-timestamp", "")
    try:
        age = abs(time.time() - int(stamp))
    except ValueError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Slack timestamp") from None
    if age > REPLAY_WINDOW_SECONDS:
        # A captured request replayed later must not decide anything.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "stale Slack request timestamp")
    if not SignatureVerifier(secret).is_valid_request(body, dict(request.headers)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid Slack signature")


@router.post("/interactions", summary="Slack interactivity request URL")
async def interactions(
    request: Request, settings: SettingsDep, temporal: TemporalDep, signing_key: DecisionKeyDep
) -> Response:
    body = await read_capped(request, settings.max_body_bytes)
    _verify(body, request, settings.secret("slack_signing_secret"))
    try:
        payload: dict[str, Any] = json.loads(parse_qs(body.decode())["payload"][0])
        user = str(payload["user"]["id"])
        name = payload["user"].get("username") or payload["user"].get("name")
        action = payload["actions"][0]
        click = Click(
            action=action_for(str(action["action_id"])),
            user=user,
            name=str(name) if name else None,
            at=datetime.now(UTC),
            via="slack",
            response_url=payload.get("response_url"),
        )
        event_id = str(action["value"])
        container = payload.get("container") or {}
        message = (
            (str(container["channel_id"]), str(container["message_ts"]))
            if container.get("type", "message") == "message"
            and container.get("channel_id")
            and container.get("message_ts")
            else None
        )
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unsupported interaction: {exc}") from exc

    # Slack's retries and a replayed body carry the same action_ts: take each click once.
    key = f"{user}|{event_id}|{action.get('action_id')}|{action.get('action_ts')}"
    if not _seen.first_time(key):
        log.info("repeat of click %s (retry %s)", key, request.headers.get("x-slack-retry-num"))
        return Response(status_code=status.HTTP_200_OK)

    task = asyncio.create_task(_deliver_logged(temporal, signing_key, event_id, click, message))
    try:
        outcome = await asyncio.wait_for(asyncio.shield(task), INLINE_BUDGET_SECONDS)
    except TimeoutError:
        # Temporal is slow: answer Slack now; the task carries on and reports failure itself.
        _background.add(task)
        task.add_done_callback(_background.discard)
        return Response(status_code=status.HTTP_200_OK)
    if outcome == "failed":
        # Say so rather than pretend: Slack shows the clicker that the click failed, and its
        # retry of this request may deliver it.
        _seen.forget(key)
        return Response(status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return Response(status_code=status.HTTP_200_OK)


async def _deliver_logged(
    temporal: Client, key: str, event_id: str, click: Click, message: tuple[str, str] | None
) -> str:
    try:
        outcome = await deliver(temporal, key, event_id, click, message)
    except Exception:
        log.exception("click %s on %s not delivered", click.action.value, event_id)
        await _reply(
            click.response_url, ":warning: Powertrip could not record your click; try again."
        )
        return "failed"
    log.info("click %s by %s on %s: %s", click.action.value, click.user, event_id, outcome)
    return outcome
