"""One review request per distinct unrecognised (or unreadable) record shape per hour, paced per
source: the review is handed to its source's `ReviewPacerWorkflow` for the hour, which posts the
first few shapes on their own and lists the rest in digests, so a burst of odd records cannot
flood the security channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.review import ReviewActivities
    from powertrip.contracts.reviews import (
        ADD_SIGNAL,
        DIGEST_LISTED,
        REVIEW_PACER_WORKFLOW,
        UNRECOGNISED_WORKFLOW,
        PacerInput,
        ReviewDigest,
        ReviewPosted,
        UnrecognisedInput,
        shape_key,
    )
    from powertrip.contracts.slack import security_channel_post

HOUR = timedelta(hours=1)
SEEN_KEPT = 5_000  # shape ids remembered against a retried hand-over
A = TypeVar("A")


async def _post(
    activity: Callable[[Any, A], Awaitable[ReviewPosted]], argument: A, summary: str
) -> ReviewPosted:
    # Slack may be down a while; a review request is worth minutes of retrying, not a stuck
    # workflow: give up after a day (the count stays in the metrics).
    return await workflow.execute_activity_method(
        activity, argument, **security_channel_post(summary)
    )


@workflow.defn(name=UNRECOGNISED_WORKFLOW)
class UnrecognisedEventWorkflow:
    """One review request (`UnrecognisedInput`), handed to its source's pacer for the hour."""

    @workflow.run
    async def run(self, input: UnrecognisedInput) -> ReviewPosted:
        # The activity (registered as `post_unrecognised` since the first release) hands the
        # request to the source's pacer; histories recorded before pacing replay unchanged.
        """Hand the review to the source's pacer; what the activity answered."""
        return await _post(
            ReviewActivities.post_unrecognised,
            input,
            f"ask the security channel to review a {input.source} record",
        )


@workflow.defn(name=REVIEW_PACER_WORKFLOW)
class ReviewPacerWorkflow:
    """The reviews of one source for one hour (`unrecognised-reviews-<task queue>-<source>-
    <hour>`): the first `pacing.before_digest` shapes are posted on their own, every later one
    waits for the next digest, posted at most every `pacing.digest_every_seconds`."""

    @workflow.init
    def __init__(self, input: PacerInput) -> None:
        self.queue: list[UnrecognisedInput] = list(input.queued)
        self.seen: set[str] = set(input.seen)
        self.posted = input.posted

    @workflow.signal(name=ADD_SIGNAL)
    def add(self, request: UnrecognisedInput) -> None:
        """One more review for this hour (a retried hand-over of a shape taken is ignored)."""
        key = shape_key(request)
        if key in self.seen:  # a retried hand-over
            return
        self.seen.add(key)
        self.queue.append(request)

    @workflow.run
    async def run(self, input: PacerInput) -> None:
        """Post and digest this hour's reviews, then end."""
        end = input.hour + HOUR
        every = timedelta(seconds=input.pacing.digest_every_seconds)
        while True:
            if not self.queue:
                left = (end - workflow.now()).total_seconds()
                if left <= 0:
                    return
                try:
                    await workflow.wait_condition(
                        lambda: bool(self.queue), timeout=timedelta(seconds=left)
                    )
                except TimeoutError:
                    continue
            while self.queue and self.posted < input.pacing.before_digest:
                await _post(
                    ReviewActivities.post_review,
                    self.queue.pop(0),
                    f"review of a {input.source} record shape",
                )
                self.posted += 1
            if self.queue:
                # Later shapes this hour gather for a while and go out as one message.
                await workflow.sleep(every)
                batch, self.queue = self.queue, []
                await _post(
                    ReviewActivities.post_review_digest,
                    ReviewDigest(
                        source=input.source,
                        hour=input.hour,
                        total=len(batch),
                        requests=batch[:DIGEST_LISTED],
                    ),
                    f"digest of {len(batch)} {input.source} record shapes",
                )
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    input.model_copy(
                        update={
                            "posted": self.posted,
                            "queued": self.queue,
                            "seen": sorted(self.seen)[-SEEN_KEPT:],
                        }
                    )
                )
