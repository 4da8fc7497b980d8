"""CloudTrail records, whichever route delivers them (EventBridge, CloudWatch Logs, SNS, a
backfill): CloudTrail's own `eventID` names the event, so one API call that reaches Powertrip by
two routes is one event, `cloudtrail-<eventID>`. The delivering route stays the record's source
(its endpoint, secret, metrics and `ignore_unmatched`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from powertrip.models import RawEvent
from powertrip.rules import lookup

ID_NAMESPACE = "cloudtrail"


def is_cloudtrail_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("eventID"), str)
        and bool(value["eventID"])
        and "eventSource" in value
        and "eventName" in value
    )


def cloudtrail_raw(
    record: dict[str, Any],
    source: str,
    *,
    received_at: datetime | str | None = None,
    account: str | None = None,
) -> RawEvent:
    """The same RawEvent from the same CloudTrail record on every route (rules match `fields`)."""
    user = lookup(record, "userIdentity.arn") or lookup(record, "userIdentity.userName")
    return RawEvent(
        source=source,
        id_namespace=ID_NAMESPACE,
        provider_id=record["eventID"],
        received_at=record.get("eventTime") or received_at,
        host=record.get("recipientAccountId") or account,
        program=record.get("eventSource"),
        message=" ".join(str(part) for part in (record.get("eventName"), user) if part),
        fields=record,
    )
