"""Papertrail search alerts: `{"events": [...], "saved_search": {...}, "min_id", "max_id"}`,
as the `payload` form field Papertrail posts or as a plain JSON body."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from powertrip.models import RawEvent
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid

SOURCE = "papertrail"
_ARCHIVE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}$")


class PapertrailEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | str
    received_at: str | None = None
    hostname: str | None = None
    source_name: str | None = None
    program: str | None = None
    message: str = Field(min_length=1)

    @field_validator("received_at")
    @classmethod
    def _archive_time(cls, value: str | None) -> str | None:
        # Papertrail's archives (TSV) stamp `2011-02-10 00:19:36 -0800`, which ISO 8601 parsers
        # refuse; the webhook and search API send ISO 8601 already.
        if value is not None and _ARCHIVE_TIME.match(value):
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").isoformat()
        return value

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value


def parse_papertrail(payload: Any) -> list[ParsedItem]:
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise PayloadError("expected a JSON object with an `events` list")
    items = []
    for index, member in enumerate(payload["events"]):
        try:
            event = PapertrailEvent.model_validate(member)
            raw = RawEvent(
                source=SOURCE,
                provider_id=str(event.id),
                received_at=event.received_at,
                host=event.hostname or event.source_name,
                program=event.program,
                message=event.message,
                fields=member,
            )
        except ValidationError as exc:
            items.append(invalid(index, describe_validation_error(exc), member))
            continue
        items.append(ParsedItem(index=index, raw=raw))
    return items
