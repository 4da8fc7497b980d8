"""Posting a conflicting delivery (same id, other content) to the security channel."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity

from activities.slack import SecurityChannel
from powertrip.contracts.conflict import ConflictReport
from powertrip.messages import conflict_message


class ConflictActivities:
    """`ConflictWorkflow`'s one activity."""

    def __init__(self, client: AsyncWebClient, security_channel: str) -> None:
        self.channel = SecurityChannel(client, security_channel)

    @activity.defn
    async def post_conflict(self, report: ConflictReport) -> None:
        """Tell the security channel about a delivery that reused an id with other content."""
        await self.channel.post(*conflict_message(report))
