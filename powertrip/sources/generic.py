"""Generic JSON for anything else: one object, a list, `{"events": [...]}`, or NDJSON (one object
a line), each `{"id", "time", "host", "program", "message", ...any other fields}`.

A team can send a custom line from a shell script with curl. A raw syslog line in `message` is
split into host, program and message. Without an `id`, the record's own content is its id, so a
retried delivery is still one event.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from powertrip.sources import ParsedItem, PayloadError, describe_validation_error
from powertrip.syslog import event_from_text

SOURCE = "json"


class GenericEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | int | None = None
    time: datetime | None = None
    host: str | None = None
    program: str | None = None
    message: str = ""

    @model_validator(mode="after")
    def _something_to_match(self) -> GenericEvent:
        if not self.message and not self.model_extra:
            raise ValueError("give a `message` or fields for JSON rules")
        return self


def parse_ndjson(body: bytes) -> list[ParsedItem]:
    """One record a line; a result's index is its line number - 1 (blank lines are skipped)."""
    items = []
    for index, line in enumerate(body.decode("utf-8", errors="replace").splitlines()):
        if not line.strip():
            continue
        try:
            member = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append(ParsedItem(index=index, error=f"line {index + 1}: not JSON: {exc}"))
            continue
        except RecursionError:
            items.append(ParsedItem(index=index, error=f"line {index + 1}: nested too deeply"))
            continue
        items.append(_one(index, member))
    if not items:
        raise PayloadError("no events in the body")
    return items


def parse_generic(payload: Any) -> list[ParsedItem]:
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        members = payload["events"]
    elif isinstance(payload, list):
        members = payload
    elif isinstance(payload, dict):
        members = [payload]
    else:
        raise PayloadError("expected a JSON object, a list of objects, or NDJSON")
    if not members:
        raise PayloadError("no events in the body")
    return [_one(index, member) for index, member in enumerate(members)]


def _one(index: int, member: Any) -> ParsedItem:
    if not isinstance(member, dict):
        return ParsedItem(index=index, error=f"expected a JSON object, got {type(member).__name__}")
    try:
        event = GenericEvent.model_validate(member)
        provider_id = str(event.id) if event.id not in (None, "") else _content_id(member)
        raw = event_from_text(
            event.message,
            SOURCE,
            provider_id,
            received_at=event.time,
            host=event.host,
            program=event.program,
            fields=member,
        )
    except ValidationError as exc:
        return ParsedItem(index=index, error=describe_validation_error(exc))
    return ParsedItem(index=index, raw=raw)


def _content_id(member: dict[str, Any]) -> str:
    canonical = json.dumps(member, sort_keys=True, separators=(",", ":"), default=str)
    return "c" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
