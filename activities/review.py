"""Review requests for unrecognised or unreadable records: handed to the source's pacer, which
posts them to the security channel one by one or in a digest."""

from __future__ import annotations

from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.client import Client

from activities.slack import SecurityChannel
from powertrip.contracts.reviews import ReviewDigest, ReviewPacing, ReviewPosted, UnrecognisedInput
from powertrip.messages import review_digest_message, review_message
from powertrip.services.starts import hand_to_pacer


class ReviewActivities:
    """The review workflows' activities: hand a review to its source's pacer, post one, post a
    digest of many."""

    def __init__(
        self,
        client: AsyncWebClient,
        security_channel: str,
        temporal: Client | None = None,
        task_queue: str = "powertrip",
        pacing: ReviewPacing | None = None,
    ) -> None:
        self.channel = SecurityChannel(client, security_channel)
        self.temporal = temporal
        self.task_queue = task_queue
        self.pacing = pacing or ReviewPacing()

    @activity.defn(name="post_unrecognised")
    async def post_unrecognised(self, request: UnrecognisedInput) -> ReviewPosted:
        """Hand the review to its source's pacer for the hour (started if need be); without a
        Temporal client (older wiring) post it at once."""
        if self.temporal is None:
            return await self.post_review(request)
        await hand_to_pacer(self.temporal, request, self.task_queue, self.pacing)
        return ReviewPosted(channel=self.channel.channel, ts="", queued=True)

    @activity.defn
    async def post_review(self, request: UnrecognisedInput) -> ReviewPosted:
        """Post one review request (a record shape no rule recognised, or an invalid record)."""
        text, blocks = review_message(request)
        return await self._post(text, blocks)

    @activity.defn
    async def post_review_digest(self, digest: ReviewDigest) -> ReviewPosted:
        """Post the shapes a source sent beyond what it may post on its own this hour."""
        text, blocks = review_digest_message(digest)
        return await self._post(text, blocks)

    async def _post(self, text: str, blocks: list[Block]) -> ReviewPosted:
        channel, ts = await self.channel.post(text, blocks)
        return ReviewPosted(channel=channel, ts=ts)
