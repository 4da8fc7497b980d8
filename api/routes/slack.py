"""Slack's request URL: every request Slack sends (interactivity, the slash command, modals, the App
Home's events), size-capped and handed to the Bolt app (api/slack_app.py) through Bolt's FastAPI
adapter, with the Temporal client and the decision key in Bolt's `context`; the listeners there
answer within Slack's 3 s."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import APIKeyHeader
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from starlette.types import Message

from api.body import read_capped
from api.deps import ConfigDep, DecisionKeyDep, DirectoryDep, SettingsDep, TemporalDep
from api.slack_app import CONFIG, DECISION_KEY, DIRECTORY, SETTINGS, TEMPORAL

router = APIRouter(prefix="/slack", tags=["slack"])

# Documents the authentication in /docs: Slack signs every request (HMAC-SHA256 of the raw body
# with the app's signing secret); the Bolt app checks it (api.slack_app.SlackSignature).
slack_signature = APIKeyHeader(
    name="X-Slack-Signature",
    scheme_name="SlackSignature",
    description="Slack's `v0=` signature of `v0:<X-Slack-Request-Timestamp>:<body>` with the "
    "app's signing secret (POWERTRIP_SLACK_SIGNING_SECRET); requests older than 5 minutes are "
    "refused.",
    auto_error=False,
)


def get_slack_handler(request: Request) -> AsyncSlackRequestHandler:
    """Bolt's FastAPI adapter around the app's Bolt app (both made at startup, api/main.py)."""
    handler: AsyncSlackRequestHandler = request.app.state.slack
    return handler


SlackHandlerDep = Annotated[AsyncSlackRequestHandler, Depends(get_slack_handler)]


def with_body(request: Request, body: bytes) -> Request:
    """The same request, its body replaced by `body` (already read, size-capped): the adapter
    reads the body again, and the stream can be read only once."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


@router.post(
    "/interactions",
    summary="Slack interactivity request URL",
    dependencies=[Depends(slack_signature)],
    responses={
        400: {"description": "Not an interaction Powertrip posted (unknown button, bad payload)"},
        401: {"description": "Missing, stale or invalid Slack signature"},
        503: {"description": "Temporal refused the click: Slack shows the failure and retries"},
    },
)
async def interactions(
    request: Request,
    settings: SettingsDep,
    temporal: TemporalDep,
    signing_key: DecisionKeyDep,
    slack: SlackHandlerDep,
    config: ConfigDep,
    directory: DirectoryDep,
) -> Response:
    """Every request Slack sends (button clicks, the `/powertrip` slash command, modal
    submissions, the `app_home_opened` event), size-capped and handed to the Bolt app."""
    body = await read_capped(request, settings.max_body_bytes)
    context = {
        TEMPORAL: temporal,
        DECISION_KEY: signing_key,
        SETTINGS: settings,
        CONFIG: config,
        DIRECTORY: directory,
    }
    try:
        return await slack.handle(with_body(request, body), context)
    except (ValueError, UnicodeDecodeError) as exc:  # Bolt could not parse the body
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unsupported interaction: {exc}") from exc
