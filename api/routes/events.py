"""The record: what happened to an event and who decided."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ApiAuth, SettingsDep, TemporalDep
from powertrip.approvals import EventRecord, TimelineEntry
from powertrip.models import Decision, EventStatus

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[ApiAuth])


class EventView(BaseModel):
    event_id: str
    status: EventStatus
    actor: str = Field(description="The unix or cloud user who acted.")
    host: str | None
    address: str | None
    action: str
    rule_id: str
    source: str
    occurred_at: datetime
    message: str
    asked: str | None = Field(description="Who was asked first (Slack mention or channel).")
    decision: Decision | None = Field(description="Approval or acknowledgement; null until then.")
    report: Decision | None = Field(description="The *Not me* report, if any.")
    timeline: list[TimelineEntry]
    temporal_url: str

    @classmethod
    def of(cls, record: EventRecord, ui_url: str, namespace: str) -> EventView:
        event = record.event
        return cls(
            event_id=event.event_id,
            status=record.status,
            actor=event.actor,
            host=event.host,
            address=event.address,
            action=event.action,
            rule_id=event.rule_id,
            source=event.source,
            occurred_at=event.occurred_at,
            message=event.message,
            asked=record.asked if record.recipient else None,
            decision=record.decision,
            report=record.report,
            timeline=record.timeline,
            temporal_url=f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{event.event_id}",
        )


@router.get(
    "/events/{event_id}",
    response_model=EventView,
    responses={401: {"description": "Bad token"}, 404: {"description": "No such event"}},
)
async def get_event(event_id: str, temporal: TemporalDep, settings: SettingsDep) -> EventView:
    """Readable while the event is pending and after it is decided (from the workflow's memo)."""
    try:
        description = await temporal.get_workflow_handle(event_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r}") from exc
        raise
    record = await description.memo_value("record", type_hint=EventRecord)
    return EventView.of(record, settings.temporal_ui_url, settings.temporal_namespace)
