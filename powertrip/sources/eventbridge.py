"""Amazon EventBridge events, as an API destination posts them: one event (or a list of them)
`{"version", "id", "detail-type", "source", "account", "time", "region", "detail": {...}}`.

For CloudTrail (`detail-type` "AWS API Call via CloudTrail", "AWS Console Sign In via
CloudTrail"...) the provider id is CloudTrail's own `detail.eventID`, so the same API call
delivered twice, or found again by a backfill of the trail, is one event. Rules match the
CloudTrail record (`detail`), the same JSON a trail file or CloudWatch Logs holds.

Events posted to the EventBridge endpoint come from the API destination the operator set up:
their CloudTrail records are trusted as CloudTrail. EventBridge events relayed by an SNS topic
are trusted only when the topic is listed as CloudTrail's (`cloudtrail=False` otherwise: the
detail is then ordinary JSON, `eventbridge-<id>`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from powertrip.models import RawEvent
from powertrip.rules import lookup
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid
from powertrip.sources.cloudtrail import cloudtrail_raw, is_cloudtrail_record

SOURCE = "eventbridge"


class EventBridgeEvent(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = None
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str = Field(min_length=1)
    account: str | None = None
    time: str | None = None
    region: str | None = None
    detail: dict[str, Any]


def parse_eventbridge(payload: Any, cloudtrail: bool = True) -> list[ParsedItem]:
    """One event or a list; `cloudtrail`: whether the route is trusted to deliver CloudTrail."""
    members = payload if isinstance(payload, list) else [payload]
    if not members or not all(isinstance(m, dict) for m in members):
        raise PayloadError("expected an EventBridge event object or a list of them")
    return [_one(index, member, cloudtrail) for index, member in enumerate(members)]


def is_eventbridge_event(value: Any) -> bool:
    return isinstance(value, dict) and "detail-type" in value and "detail" in value


def _one(index: int, member: dict[str, Any], cloudtrail: bool) -> ParsedItem:
    try:
        event = EventBridgeEvent.model_validate(member)
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), member)
    detail = event.detail
    if cloudtrail and is_cloudtrail_record(detail):
        try:
            raw = cloudtrail_raw(detail, SOURCE, received_at=event.time, account=event.account)
        except ValidationError as exc:
            return invalid(index, describe_validation_error(exc), member)
        return ParsedItem(index=index, raw=raw)
    provider_id = event.id
    if not isinstance(provider_id, str) or not provider_id:
        return invalid(index, "the event's id (or detail.eventID) is missing", member)
    user = lookup(detail, "userIdentity.arn") or lookup(detail, "userIdentity.userName")
    try:
        raw = RawEvent(
            source=SOURCE,
            provider_id=provider_id,
            received_at=detail.get("eventTime") or event.time,
            host=detail.get("recipientAccountId") or event.account,
            program=detail.get("eventSource") or event.source,
            message=" ".join(
                str(part) for part in (event.detail_type, detail.get("eventName"), user) if part
            ),
            fields=detail,
        )
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), member)
    return ParsedItem(index=index, raw=raw)
