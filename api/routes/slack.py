"""Slack interactivity: verify the raw body, decide quickly, deliver the click durably."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response, status
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SettingsDep, TemporalDep
from powertrip.approvals import Action, Click, EventRecord
from powertrip.models import EventStatus
from workflows.approval import ApprovalWorkflow

router = APIRouter(prefix="/slack", tags=["slack"])
log = logging.getLogger(__name__)

# Slack gives up after 3 s; deliver inline when Temporal is quick, else finish in the background.
INLINE_BUDGET_SECONDS = 2.0
_background: set[asyncio.Task[None]] = set()


async def _reply(response_url: str | None, text: str) -> None:
    if not response_url:
        return
    try:
        await AsyncWebhookClient(response_url).send(
            text=text, response_type="ephemeral", replace_original=False
        )
    except Exception:  # an ephemeral note is best effort; the decision is what matters
        log.warning("could not send ephemeral reply", exc_info=True)


async def deliver(temporal: Client, event_id: str, click: Click) -> str:
    """Check authority against the workflow's memo, then signal. Returns what happened."""
    handle = temporal.get_workflow_handle_for(ApprovalWorkflow.run, event_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            await _reply(click.response_url, "Powertrip does not know this event.")
            return "unknown"
        raise
    record = await description.memo_value("record", type_hint=EventRecord)
    authority = record.authority
    if authority is None or not authority.may(click.action, record.status, click.user):
        awaiting_ack = click.action is Action.ACKNOWLEDGE and record.status is EventStatus.REPORTED
        if record.status is not EventStatus.PENDING and not awaiting_ack:
            await _reply(click.response_url, f"This event is already {record.status.value}.")
            return "stale"
        await _reply(
            click.response_url,
            f":no_entry: You are not allowed to {click.action.value.replace('_', ' ')} this event. "
            f"Only {record.asked} or the security team can.",
        )
        return "refused"
    await handle.signal(ApprovalWorkflow.decide, click)
    return "delivered"


@router.post("/interactions", summary="Slack interactivity request URL")
async def interactions(request: Request, settings: SettingsDep, temporal: TemporalDep) -> Response:
    body = await request.body()
    verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())
    if not verifier.is_valid_request(body, dict(request.headers)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid Slack signature")
    try:
        payload: dict[str, Any] = json.loads(parse_qs(body.decode())["payload"][0])
        user = str(payload["user"]["id"])
        action = payload["actions"][0]
        click = Click(
            action=Action(action["action_id"]),
            user=user,
            at=datetime.now(UTC),
            via="slack",
            response_url=payload.get("response_url"),
        )
        event_id = str(action["value"])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unsupported interaction: {exc}") from exc

    task = asyncio.create_task(_deliver_logged(temporal, event_id, click))
    try:
        await asyncio.wait_for(asyncio.shield(task), INLINE_BUDGET_SECONDS)
    except TimeoutError:
        _background.add(task)
        task.add_done_callback(_background.discard)
    except Exception:
        # Say so rather than pretend: Slack shows the clicker that the click failed.
        log.exception("click %s on %s not delivered", click.action.value, event_id)
        await _reply(
            click.response_url, ":warning: Powertrip could not record your click; try again."
        )
        return Response(status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return Response(status_code=status.HTTP_200_OK)


async def _deliver_logged(temporal: Client, event_id: str, click: Click) -> None:
    outcome = await deliver(temporal, event_id, click)
    log.info("click %s by %s on %s: %s", click.action.value, click.user, event_id, outcome)
