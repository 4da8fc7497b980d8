"""`PasskeyNoticeWorkflow`'s Slack calls: the security channel's message about a passkey, and
its update once a security-team member decided a pending one."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity

from activities.slack import SecurityChannel
from powertrip.contracts.passkeys import NoticeMessage, NoticeState
from powertrip.messages import passkey_notice


class PasskeyNoticeActivities:
    """Post and update passkey notices in the security channel (`security_channel`: its id)."""

    def __init__(self, client: AsyncWebClient, security_channel: str) -> None:
        self.client = client
        self.channel = SecurityChannel(client, security_channel)

    @activity.defn
    async def post_passkey_notice(self, state: NoticeState) -> NoticeMessage:
        """Post the notice (a first passkey, one waiting for approval, an alert); where Slack
        put it."""
        channel, ts = await self.channel.post(*passkey_notice(state))
        return NoticeMessage(channel=channel, ts=ts)

    @activity.defn
    async def update_passkey_notice(self, state: NoticeState) -> None:
        """Show who decided a pending passkey on its notice (its buttons go)."""
        assert state.message is not None
        await self.channel.update(state.message, *passkey_notice(state))
