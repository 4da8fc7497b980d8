"""Start-up checks against Slack: the token works, it has the scopes Powertrip uses, and the
security channel exists and the bot is in it. A worker that would fail on its first event says so
at start, with what to fix."""

from __future__ import annotations

from pydantic import BaseModel
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from powertrip.config import PowertripConfig

# Bot scopes and why (slack/manifest.yml grants exactly these; a test keeps them in step).
SCOPES: dict[str, str] = {
    "chat:write": "post and update notifications, DMs and reminders",
    "users:read": "look users up",
    "users:read.email": "map `email:` users with users.lookupByEmail",
    "channels:read": "check a public security channel exists (conversations.info)",
    "groups:read": "check a private security channel exists (conversations.info)",
    "usergroups:read": "resolve `security_team_group` with usergroups.users.list",
    "commands": "the `/powertrip` slash command (`/powertrip passkey` registers a passkey)",
    "im:write": "find the DM an interrupted post went to (conversations.open)",
    "im:history": "find a DM an interrupted attempt already posted, so a retry never posts twice",
    "channels:history": "the same for a public security channel",
    "groups:history": "the same for a private security channel",
}


class SlackSetupError(RuntimeError):
    """Slack is not set up the way Powertrip needs; the message says what to fix."""


class SlackIdentity(BaseModel):
    team: str | None = None
    user: str | None = None
    scopes: list[str] | None = None


def needed_scopes(config: PowertripConfig) -> set[str]:
    needed = {"chat:write"}
    if any(user.email and not user.slack for user in config.users.values()):
        needed |= {"users:read", "users:read.email"}
    if config.security_team_group:
        needed.add("usergroups:read")
    return needed


async def check_slack(
    client: AsyncWebClient, config: PowertripConfig, channel: str
) -> SlackIdentity:
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        raise SlackSetupError(
            f"Slack rejected the bot token (auth.test: {exc.response.get('error')}); check "
            "POWERTRIP_SLACK_BOT_TOKEN (an xoxb- token of the installed app)"
        ) from exc
    header = auth.headers.get("x-oauth-scopes") or auth.headers.get("X-OAuth-Scopes")
    granted = {s.strip() for s in header.split(",") if s.strip()} if header else None
    if granted is not None:
        missing = sorted(needed_scopes(config) - granted)
        if missing:
            raise SlackSetupError(
                f"the Slack token lacks scopes {', '.join(missing)} ("
                + "; ".join(f"{s}: {SCOPES[s]}" for s in missing)
                + "). Add them under OAuth & Permissions (or re-create the app from "
                "slack/manifest.yml) and reinstall the app."
            )
    try:
        info = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error == "missing_scope":
            raise SlackSetupError(
                f"cannot check the security channel: the token lacks scope "
                f"{exc.response.get('needed')}; add it and reinstall the app"
            ) from exc
        raise SlackSetupError(
            f"security channel {channel} cannot be used ({error}): check the channel id and "
            "invite the app to it (/invite @Powertrip)"
        ) from exc
    found = info.get("channel") or {}
    if found.get("is_archived"):
        raise SlackSetupError(f"security channel {channel} is archived")
    if found.get("is_member") is False:
        raise SlackSetupError(f"the app is not in security channel {channel}: /invite it there")
    return SlackIdentity(
        team=auth.get("team"), user=auth.get("user"), scopes=sorted(granted) if granted else None
    )
