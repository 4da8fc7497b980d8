"""Nothing silently dropped: a record no rule understands is counted per source and (unless its
source says `ignore_unmatched`) sent to the security channel for review, once per distinct
message shape per hour, not once per line.

The hour bucket and the shape form the review workflow's id; started with REJECT_DUPLICATE, the
second line of the same shape in the same hour is a duplicate start, which is the throttle.
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


def message_shape(raw: RawEvent) -> str:
    """What lines of one kind share: program and message with addresses, numbers and quoted
    values masked; a JSON record without a message by its sorted field names."""
    if raw.message.strip():
        text = raw.message.strip()
        for pattern, mask in _VARIABLE:
            text = pattern.sub(mask, text)
    else:
        text = "{" + ",".join(sorted(raw.fields)) + "}"
    return f"{raw.program or '-'}: {text}"[:500]


def review_id(source: str, shape: str, hour: datetime) -> str:
    digest = hashlib.sha256(f"{source}\n{shape}".encode()).hexdigest()[:20]
    return f"unrecognised-{source}-{digest}-{hour:%Y%m%d%H}"


async def request_review(
    client: Client, raw: RawEvent, task_queue: str, now: datetime | None = None
) -> tuple[str, bool]:
    """Start the review for this record's shape this hour; (workflow id, True if new)."""
    hour = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    shape = message_shape(raw)
    workflow_id = review_id(raw.source, shape, hour)
    sample = raw.model_copy(update={"message": raw.message[:SAMPLE_CHARS]})
    try:
        await client.start_workflow(
            # By name: the workflow module imports this one.
            "UnrecognisedEventWorkflow",
            UnrecognisedInput(source=raw.source, shape=shape, hour=hour, sample=sample),
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
    channel: str
    ts: str


def review_message(request: UnrecognisedInput) -> tuple[str, list[Block]]:
    """The security channel's review request: what arrived, from where, and what to do about it."""
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
    blocks: list[Block] = [
        HeaderBlock(text="Unrecognised event: please review"),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"No rule recognised a record from *{request.source}*"
                + (f" ({where})" if where else "")
                + ". It may be a login or privileged action Powertrip cannot see yet."
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=f"```{_fence_safe(body)[:2900]}```")),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Shape {code(request.shape)} - one request per shape "
                    f"per hour (from {request.hour:%Y-%m-%d %H:00} UTC). Add a rule "
                    "(`powertrip rules test` helps) or set `ignore_unmatched` for the source."
                )
            ]
        ),
    ]
    return text, blocks


def _fence_safe(text: str) -> str:
    """A log line inside a code block: it can neither close the fence nor ping anyone."""
    return escape(text).replace("```", "'''")
