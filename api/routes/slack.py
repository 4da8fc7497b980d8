"""Slack's request URL: every interaction Slack sends, handed to the Bolt app (api/slack_app.py)
with the Temporal client and the decision key; the listeners there answer within Slack's 3 s."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import APIKeyHeader
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp

from api.body import read_capped
from api.deps import ConfigDep, DecisionKeyDep, SettingsDep, TemporalDep
from api.slack_app import CONFIG, DECISION_KEY, SETTINGS, TEMPORAL

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


def get_slack_app(request: Request) -> AsyncApp:
    """The app's Bolt app (made at startup, api/slack_app.py)."""
    slack: AsyncApp = request.app.state.slack
    return slack


SlackAppDep = Annotated[AsyncApp, Depends(get_slack_app)]


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
    slack: SlackAppDep,
    config: ConfigDep,
) -> Response:
    """Every request Slack sends (button clicks, the `/powertrip` slash command, modal
    submissions, the `app_home_opened` event), size-capped and handed to the Bolt app."""
    body = await read_capped(request, settings.max_body_bytes)
    try:
        bolt_request = to_async_bolt_request(
            request,
            body,
            {TEMPORAL: temporal, DECISION_KEY: signing_key, SETTINGS: settings, CONFIG: config},
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unsupported interaction: {exc}") from exc
    return to_starlette_response(await slack.async_dispatch(bolt_request))
