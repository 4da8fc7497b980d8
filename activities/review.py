"""Review requests for unrecognised or unreadable records: handed to the source's pacer, which
posts them to the security channel one by one or in a digest."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.client import Client

from activities.slack import classify
from powertrip.unrecognised import (
    PacerInput,
    ReviewDigest,
    ReviewPacing,
    ReviewPosted,
    UnrecognisedInput,
    digest_message,
    pacer_id,
    review_message,
)


class ReviewActivities:
    def __init__(
        self,
        client: AsyncWebClient,
        security_channel: str,
        temporal: Client | None = None,
        task_queue: str = "powertrip",
        pacing: ReviewPacing | None = None,
    ) -> None:
        self.client = client
        self.security_channel = security_channel
        self.temporal = temporal
        self.task_queue = task_queue
        self.pacing = pacing or ReviewPacing()

    @activity.defn(name="post_unrecognised")
    async def post_unrecognised(self, request: UnrecognisedInput) -> ReviewPosted:
        """Hand the review to its source's pacer for the hour (started if need be); without a
        Temporal client (older wiring) post it at once."""
        if self.temporal is None:
            return await self.post_review(request)
        await self.temporal.start_workflow(
            # By name: the workflow module imports this one.
            "ReviewPacerWorkflow",
            PacerInput(source=request.source, hour=request.hour, pacing=self.pacing),
            id=pacer_id(self.task_queue, request.source, request.hour),
            task_queue=self.task_queue,
            start_signal="add",
            start_signal_args=[request],
            static_summary=f"reviews of {request.source} records, hour from {request.hour:%H}:00",
        )
        return ReviewPosted(channel=self.security_channel, ts="", queued=True)

    @activity.defn
    async def post_review(self, request: UnrecognisedInput) -> ReviewPosted:
        text, blocks = review_message(request)
        return await self._post(text, blocks)

    @activity.defn
    async def post_review_digest(self, digest: ReviewDigest) -> ReviewPosted:
        text, blocks = digest_message(digest)
        return await self._post(text, blocks)

    async def _post(self, text: str, blocks: list[Block]) -> ReviewPosted:
        try:
            response = await self.client.chat_postMessage(
                channel=self.security_channel, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as exc:
            raise classify(exc) from exc
        return ReviewPosted(channel=response["channel"], ts=response["ts"])
