"""Nothing silently dropped: a record no rule understands, or that cannot be read at all, is
counted per source and (unless its source says `ignore_unmatched`, for unmatched records) sent to
the security channel for review, once per distinct message shape per hour, not once per line.

The hour bucket and the shape form the review workflow's id; started with REJECT_DUPLICATE, the
second line of the same shape in the same hour is a duplicate start, which is the throttle.

Reviews are also paced per source: the review workflow hands its request to the source's
`ReviewPacerWorkflow` for that hour, which posts the first `ReviewPacing.before_digest` shapes on
their own and lists every later one in a digest, at most one every `digest_every_seconds`. So
300 records of 300 shapes in one request are a few posts and one digest, not 300 posts.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from powertrip.messages import code, escape
from powertrip.models import RawEvent

SAMPLE_CHARS = 2000
DIGEST_LISTED = 30  # shapes a digest shows; the rest are counted
# A user name is part of what varies, not of the shape: `Failed password for invalid user <name>`
# from a brute-force run is one shape, not one per guessed name. The word after `user`, `for` or
# `by` (skipping sshd's `invalid`/`illegal`/`authenticating`), and `user=` style values.
_USER = [
    (
        re.compile(
            r"\b(?P<lead>(?:for|by|user)(?: (?:invalid|illegal|authenticating|unknown))?"
            r"(?: user)?) (?P<name>[^\s;,()\"'][^\s;,()]*)"
        ),
        r"\g<lead> <user>",
    ),
    (re.compile(r"\b(?P<key>(?:r|)user|USER|logname|acct|account)=[^\s;,]*"), r"\g<key>=<user>"),
]
_VARIABLE = [
    (re.compile(r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b"), "<addr>"),  # IPv6
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<addr>"),
    (re.compile(r"\"[^\"]*\"|'[^']*'"), "<str>"),
    # Anything with a digit: ids, ports, pids, times, keys. Only tried where a token starts:
    # from every position inside a long digit-free token `\S*` rescanned the rest (quadratic on
    # a hostile line, in the API's event loop); the matches are the same whole tokens.
    (re.compile(r"(?<!\S)\S*\d\S*"), "<n>"),
]


class UnrecognisedInput(BaseModel):
    source: str
    shape: str = Field(description="The message with its variable parts masked.")
    hour: datetime = Field(description="Start of the hour this review covers (UTC).")
    sample: RawEvent = Field(description="The first record of this shape in the hour.")
    reason: str | None = Field(
        default=None, description="Why the record could not be read (an invalid record)."
    )


def mask(text: str) -> str:
    """`text` with its variable parts masked: user names, addresses, numbers, quoted values."""
    for pattern, replacement in (*_USER, *_VARIABLE):
        text = pattern.sub(replacement, text)
    return text


def message_shape(raw: RawEvent) -> str:
    """What lines of one kind share: program and message with user names, addresses, numbers and
    quoted values masked; a JSON record without a message by its sorted field names."""
    if raw.message.strip():
        text = mask(raw.message.strip())
    else:
        text = "{" + ",".join(sorted(raw.fields)) + "}"
    return f"{raw.program or '-'}: {text}"[:500]


def invalid_sample(source: str, reason: str, sample: str | None) -> RawEvent:
    """What the review of an invalid record shows: the record as received, clipped."""
    return RawEvent(source=source, provider_id="invalid", message=(sample or "")[:SAMPLE_CHARS])


def invalid_shape(reason: str) -> str:
    """Invalid records of one kind share their reason, with its variable parts masked (so `line
    3: not JSON` and `line 9: not JSON` are one review)."""
    return f"invalid: {mask(reason)}"[:500]


def review_id(source: str, shape: str, hour: datetime) -> str:
    digest = hashlib.sha256(f"{source}\n{shape}".encode()).hexdigest()[:20]
    return f"unrecognised-{source}-{digest}-{hour:%Y%m%d%H}"


async def request_review(
    client: Client,
    raw: RawEvent,
    task_queue: str,
    now: datetime | None = None,
    reason: str | None = None,
) -> tuple[str, bool]:
    """Start the review for this record's shape this hour (for an invalid record, `reason` says
    why it could not be read); (workflow id, True if new)."""
    hour = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    shape = invalid_shape(reason) if reason else message_shape(raw)
    workflow_id = review_id(raw.source, shape, hour)
    sample = raw.model_copy(update={"message": raw.message[:SAMPLE_CHARS]})
    try:
        await client.start_workflow(
            # By name: the workflow module imports this one.
            "UnrecognisedEventWorkflow",
            UnrecognisedInput(
                source=raw.source, shape=shape, hour=hour, sample=sample, reason=reason
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"unrecognised {raw.source} record: {shape[:120]}",
        )
    except WorkflowAlreadyStartedError:
        return workflow_id, False
    return workflow_id, True


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
    source: str
    hour: datetime
    total: int
    requests: list[UnrecognisedInput] = Field(description=f"The first {DIGEST_LISTED}.")


def pacer_id(task_queue: str, source: str, hour: datetime) -> str:
    """One pacer per source and hour for the workers of `task_queue` (the ones that run it)."""
    return f"unrecognised-reviews-{task_queue}-{source}-{hour:%Y%m%d%H}"


def shape_key(request: UnrecognisedInput) -> str:
    return review_id(request.source, request.shape, request.hour)


def review_message(request: UnrecognisedInput) -> tuple[str, list[Block]]:
    """The security channel's review request: what arrived, from where, and what to do about it."""
    if request.reason:
        return _invalid_message(request)
    sample = request.sample
    where = " ".join(
        part
        for part in (
            f"host {code(sample.host)}" if sample.host else "",
            f"program {code(sample.program)}" if sample.program else "",
        )
        if part
    )
    text = f"Unrecognised {request.source} record needs review" + (f" ({where})" if where else "")
    body = sample.message or json.dumps(sample.fields, sort_keys=True, default=str)
    intro = (
        f"No rule recognised a record from *{request.source}*"
        + (f" ({where})" if where else "")
        + ". It may be a login or privileged action Powertrip cannot see yet."
    )
    advice = "Add a rule (`powertrip rules test` helps) or set `ignore_unmatched` for the source."
    return text, _review_blocks("Unrecognised event: please review", intro, body, request, advice)


def _review_blocks(
    header: str, intro: str, body: str, request: UnrecognisedInput, advice: str
) -> list[Block]:
    """A review request: what happened, the record itself (fenced), and what to do."""
    return [
        HeaderBlock(text=header),
        SectionBlock(text=MarkdownTextObject(text=intro)),
        SectionBlock(text=MarkdownTextObject(text=f"```{_fence_safe(body)[:2900]}```")),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Shape {code(request.shape)} - one request per shape per hour (from "
                    f"{request.hour:%Y-%m-%d %H:00} UTC). {advice}"
                )
            ]
        ),
    ]


def _fence_safe(text: str) -> str:
    """A log line inside a code block: it can neither close the fence nor ping anyone."""
    return escape(text).replace("```", "'''")


def _invalid_message(request: UnrecognisedInput) -> tuple[str, list[Block]]:
    """An invalid record: the sender's data is broken somewhere, and nothing in it was asked."""
    text = f"Invalid {request.source} record needs review"
    intro = (
        f"A record from *{request.source}* could not be read: "
        f"{code(request.reason or '', limit=500)}. Nobody was asked about it; if it was a login "
        "or privileged action, its owner has not confirmed it."
    )
    advice = "Fix the sender, or map its field names (`sources.<name>.fields`)."
    body = request.sample.message or "(empty)"
    return text, _review_blocks("Invalid record: please review", intro, body, request, advice)


def digest_message(digest: ReviewDigest) -> tuple[str, list[Block]]:
    """One message for the shapes a source sent beyond what it may post on its own this hour."""
    text = (
        f"{digest.total} more unrecognised {digest.source} record shapes need review "
        f"(hour from {digest.hour:%Y-%m-%d %H:00} UTC)"
    )
    lines = []
    for request in digest.requests[:DIGEST_LISTED]:
        sample = request.sample
        what = request.reason or sample.message or json.dumps(sample.fields, default=str)
        where = f" on {code(sample.host, limit=60)}" if sample.host else ""
        lines.append(f"• {code(request.shape, limit=160)}{where}: {code(what, limit=160)}")
    more = digest.total - len(lines)
    if more > 0:
        lines.append(f"… and {more} more (`powertrip_events_total` counts every record)")
    blocks: list[Block] = [
        HeaderBlock(text=f"Unrecognised {digest.source} records: digest"[:150]),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{digest.total}* more record shapes from *{escape(digest.source)}* that "
                "no rule recognises (or that could not be read) arrived this hour. The first "
                "ones were posted on their own; these are listed here instead of one post each."
            )
        ),
    ]
    # One section a shape: Slack caps a section at 3,000 characters and a message at 50 blocks.
    blocks.extend(SectionBlock(text=MarkdownTextObject(text=line)) for line in lines)
    return text, blocks
