"""Posting a conflicting delivery (same id, other content) to the security channel."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity

from activities.slack import classify
from powertrip.conflicts import ConflictReport, conflict_message


class ConflictActivities:
    def __init__(self, client: AsyncWebClient, security_channel: str) -> None:
        self.client = client
        self.security_channel = security_channel

    @activity.defn
    async def post_conflict(self, report: ConflictReport) -> None:
        text, blocks = conflict_message(report)
        try:
            await self.client.chat_postMessage(
                channel=self.security_channel, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as exc:
            raise classify(exc) from exc
