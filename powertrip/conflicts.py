"""A provider id seen again with different content: never silently a duplicate.

Whoever can post to a webhook could post a record under an id they expect the provider to use
next (Papertrail ids are sequential); the real record would then be swallowed as a "retry". The
ingest path keeps a digest of every record's content with its event (memo `content`) and, when
an id arrives again with other content, answers `conflict`, starts nothing, and reports both
versions to the security channel (`ConflictWorkflow`, once per event and content).
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from powertrip.messages import code, escape, name
from powertrip.models import SecurityEvent

LINE_SHOWN = 1200


class ConflictReport(BaseModel):
    """What the security channel is told about one conflicting delivery."""

    event_id: str = Field(description="The event the id already names.")
    recorded: SecurityEvent | None = Field(description="What the event recorded first.")
    arriving: SecurityEvent = Field(description="What the record that came with the same id says.")
    arriving_digest: str


def conflict_workflow_id(event_id: str, digest: str) -> str:
    """One report per event and conflicting content: a retried conflicting delivery reports once."""
    return f"powertrip-conflict-{event_id}-{digest[:16]}"


def _fenced(text: str) -> str:
    clipped = text if len(text) <= LINE_SHOWN else text[: LINE_SHOWN - 1] + "…"
    return "```" + escape(clipped).replace("```", "'''") + "```"


def _facts(event: SecurityEvent) -> str:
    origin = f" from {code(event.address)}" if event.address else ""
    return (
        f"{code(event.action)} as {name(event.actor)} on {name(event.host or '?')}{origin} at "
        f"{event.occurred_at.isoformat()}"
    )


def conflict_message(report: ConflictReport) -> tuple[str, list[Block]]:
    raw, first = report.arriving, report.recorded
    text = f"Conflicting delivery for {report.event_id}: same id, different content"
    recorded = _facts(first) if first else "(unknown)"
    blocks: list[Block] = [
        HeaderBlock(text="Same event id, different content"),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{escape(raw.source)}* delivered id {code(raw.provider_id)} again with "
                f"content that differs from what event {code(report.event_id)} recorded. It was "
                "*not* started. Either the provider reused an id, or someone posted a record "
                "under an id they expected, ahead of the real one: check the provider's log "
                "for the real record."
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=f"*Recorded first:* {recorded}")),
        SectionBlock(text=MarkdownTextObject(text=f"*Arriving now:* {_facts(raw)}")),
        SectionBlock(text=MarkdownTextObject(text=_fenced(raw.message or "(no message)"))),
        ContextBlock(
            elements=[MarkdownTextObject(text=f"content digest {code(report.arriving_digest)}")]
        ),
    ]
    return text, blocks
