"""`ConflictWorkflow`: one security-channel message about a delivery whose id was seen before
with other content (see `powertrip.services.starts` for when one starts)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from powertrip.models import SecurityEvent

CONFLICT_WORKFLOW = "ConflictWorkflow"


class ConflictReport(BaseModel):
    """What the security channel is told about one conflicting delivery."""

    event_id: str = Field(description="The event the id already names.")
    recorded: SecurityEvent | None = Field(description="What the event recorded first.")
    arriving: SecurityEvent = Field(description="What the record that came with the same id says.")
    arriving_digest: str


def conflict_workflow_id(event_id: str, digest: str) -> str:
    """One report per event and conflicting content: a retried conflicting delivery reports once."""
    return f"powertrip-conflict-{event_id}-{digest[:16]}"
