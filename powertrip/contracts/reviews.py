"""`UnrecognisedEventWorkflow` (one review request per record shape per hour) and
`ReviewPacerWorkflow` (a source's reviews for one hour, a few on their own and the rest in
digests): their inputs, and what the review activities post and answer.

How shapes and review ids are made is `powertrip.unrecognised`'s business; the review messages
are built in `powertrip.messages`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, Field

from powertrip.models import RawEvent

UNRECOGNISED_WORKFLOW = "UnrecognisedEventWorkflow"
REVIEW_PACER_WORKFLOW = "ReviewPacerWorkflow"
ADD_SIGNAL = "add"
"""`ReviewPacerWorkflow` signal: one more `UnrecognisedInput` to post this hour."""

DIGEST_LISTED = 30
"""Shapes a review digest shows; the rest are counted."""


class UnrecognisedInput(BaseModel):
    """One review request: a record shape no rule recognised (or that could not be read)."""

    source: str
    shape: str = Field(description="The message with its variable parts masked.")
    hour: datetime = Field(description="Start of the hour this review covers (UTC).")
    sample: RawEvent = Field(description="The first record of this shape in the hour.")
    reason: str | None = Field(
        default=None, description="Why the record could not be read (an invalid record)."
    )


def review_id(source: str, shape: str, hour: datetime) -> str:
    """The review workflow's id: one per source, shape and hour (the throttle)."""
    digest = hashlib.sha256(f"{source}\n{shape}".encode()).hexdigest()[:20]
    return f"unrecognised-{source}-{digest}-{hour:%Y%m%d%H}"


def shape_key(request: UnrecognisedInput) -> str:
    """What the pacer remembers of a request it took (against a retried hand-over)."""
    return review_id(request.source, request.shape, request.hour)


class ReviewPosted(BaseModel):
    """Where the review was posted; `queued` when it went to the source's pacer instead."""

    channel: str
    ts: str
    queued: bool = False


class ReviewPacing(BaseModel):
    """How many reviews one source may post in an hour before the rest go into digests."""

    before_digest: int = Field(default=3, ge=0, description="Shapes posted on their own.")
    digest_every_seconds: float = Field(
        default=600, gt=0, description="At most one digest of later shapes this often."
    )


class PacerInput(BaseModel):
    """A source's review pacer for one hour (carried over `continue_as_new`)."""

    source: str
    hour: datetime
    pacing: ReviewPacing = Field(default_factory=ReviewPacing)
    posted: int = 0
    queued: list[UnrecognisedInput] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list, description="Shape ids already taken.")


class ReviewDigest(BaseModel):
    """The activity `post_review_digest`: the shapes beyond what the source may post alone."""

    source: str
    hour: datetime
    total: int
    requests: list[UnrecognisedInput] = Field(description=f"The first {DIGEST_LISTED}.")


def pacer_id(task_queue: str, source: str, hour: datetime) -> str:
    """One pacer per source and hour for the workers of `task_queue` (the ones that run it)."""
    return f"unrecognised-reviews-{task_queue}-{source}-{hour:%Y%m%d%H}"
