"""AWS CloudWatch Logs subscription data: `{"awslogs": {"data": base64(gzip(JSON))}}`, the JSON
being `{"messageType": "DATA_MESSAGE", "logGroup", "logStream", "logEvents": [{"id", "timestamp",
"message"}]}`. `CONTROL_MESSAGE`s (CloudWatch checking the destination is reachable) hold no logs.

Each log event's own `id` is its provider id, so the same record delivered directly and again
through SNS, or re-sent by a retry, is one event. A log event is a raw line (the CloudWatch agent
ships files): its syslog framing gives program, host and time, the stream name standing in for a
host the line does not name. A JSON log event is matched on its fields (the subscription's own
`logGroup`, `logStream` and `owner` win over the line's); it is a CloudTrail record only in a
group listed as CloudTrail's (`cloudtrail_groups`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from powertrip import jsontext
from powertrip.models import LATEST_TIME
from powertrip.sources import (
    ParsedItem,
    PayloadError,
    describe_validation_error,
    invalid,
    json_text,
)
from powertrip.sources.cloudtrail import cloudtrail_raw, is_cloudtrail_record
from powertrip.sources.syslog import event_from_text

SOURCE = "cloudwatch"
# CloudWatch caps a PutLogEvents batch at 1 MiB of messages; a subscription message holds at most
# that plus JSON framing and escaping. Far above it, nothing real is lost.
MAX_DECOMPRESSED = 16 * 1024 * 1024


class LogEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    timestamp: int = Field(
        ge=0, lt=int(LATEST_TIME.timestamp()) * 1000, description="Milliseconds since the epoch."
    )
    message: str = Field(min_length=1)


def decode_awslogs(payload: Any) -> dict[str, Any]:
    """The subscription JSON inside `awslogs.data`; a `PayloadError` saying which layer broke."""
    if not isinstance(payload, dict) or not isinstance(payload.get("awslogs"), dict):
        raise PayloadError('expected a JSON object {"awslogs": {"data": "<base64 gzip>"}}')
    data = payload["awslogs"].get("data")
    if not isinstance(data, str) or not data:
        raise PayloadError("awslogs.data must be a non-empty base64 string")
    try:
        compressed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"awslogs.data is not valid base64: {exc}") from exc
    text = json_text(_gunzip(compressed))  # a log line's bad bytes are that line's
    try:
        decoded = jsontext.loads(text)
    except jsontext.JsonError as exc:
        raise PayloadError(f"awslogs.data does not hold valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise PayloadError("awslogs.data must hold a JSON object")
    return decoded


def _gunzip(compressed: bytes) -> bytes:
    """Decompress at most `MAX_DECOMPRESSED` bytes: the body cap bounds the compressed size only,
    and zeros gzip about 1000:1 (a 5 MB body could expand to 5 GB)."""
    parts: list[bytes] = []
    size, rest = 0, compressed
    try:
        while rest:  # gzip allows several members one after another
            inflater = zlib.decompressobj(wbits=31)  # gzip framing
            part = inflater.decompress(rest, MAX_DECOMPRESSED - size + 1)
            size += len(part)
            if size > MAX_DECOMPRESSED:
                raise PayloadError(f"awslogs.data expands to larger than {MAX_DECOMPRESSED} bytes")
            if not inflater.eof:
                raise PayloadError("awslogs.data is not valid gzip: truncated stream")
            parts.append(part)
            rest = inflater.unused_data
    except zlib.error as exc:
        raise PayloadError(f"awslogs.data is not valid gzip: {exc}") from exc
    return b"".join(parts)


def parse_cloudwatch(payload: Any, cloudtrail_groups: Collection[str] = ()) -> list[ParsedItem]:
    """The wire form (`awslogs.data`) or, as SNS relays and exports hold it, the decoded form."""
    if not (isinstance(payload, dict) and "messageType" in payload):
        payload = decode_awslogs(payload)
    return parse_subscription(payload, cloudtrail_groups)


def parse_subscription(data: Any, cloudtrail_groups: Collection[str] = ()) -> list[ParsedItem]:
    """A decoded subscription message; `cloudtrail_groups`: the log groups a trail writes to."""
    if not isinstance(data, dict):
        raise PayloadError("expected a CloudWatch Logs subscription JSON object")
    kind = data.get("messageType")
    if kind == "CONTROL_MESSAGE":
        return []
    if kind != "DATA_MESSAGE":
        raise PayloadError(
            f"unknown messageType {kind!r}: expected DATA_MESSAGE or CONTROL_MESSAGE"
        )
    events = data.get("logEvents")
    if not isinstance(events, list):
        raise PayloadError("DATA_MESSAGE without a `logEvents` list")
    context = {k: data.get(k) for k in ("owner", "logGroup", "logStream")}
    trusted = context["logGroup"] in cloudtrail_groups
    return [_one(index, member, context, trusted) for index, member in enumerate(events)]


def _one(index: int, member: Any, context: dict[str, Any], cloudtrail: bool) -> ParsedItem:
    try:
        event = LogEvent.model_validate(member)
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), member)
    fields: dict[str, Any] = {}
    received_at = datetime.fromtimestamp(event.timestamp / 1000, UTC)
    # A JSON log line (CloudTrail in CloudWatch, app logs) is matched on its fields.
    if event.message.lstrip().startswith("{"):
        try:
            record = jsontext.loads(event.message)
        except jsontext.JsonError:  # matched as text then
            record = None
        if cloudtrail and is_cloudtrail_record(record):
            try:
                raw = cloudtrail_raw(record, SOURCE, received_at=received_at)
            except ValidationError as exc:
                return invalid(index, describe_validation_error(exc), member)
            return ParsedItem(index=index, raw=raw)
        if isinstance(record, dict):
            fields = record
    # What CloudWatch says about the line wins over what the line says about itself.
    fields = {**fields, **context, "id": event.id}
    stream = context["logStream"]
    try:
        raw = event_from_text(
            event.message,
            SOURCE,
            event.id,
            received_at=received_at,
            # The CloudWatch agent names the stream after the instance by default: a host only
            # where the line's own framing names none.
            fields=fields,
        )
        if raw.host is None and isinstance(stream, str):
            raw = raw.model_copy(update={"host": stream})
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), member)
    return ParsedItem(index=index, raw=raw)


def parse_filtered_events(
    events: list[Any], log_group: str | None = None, cloudtrail_groups: Collection[str] = ()
) -> list[ParsedItem]:
    """Events as `FilterLogEvents` answers them (the API, `aws logs filter-log-events` exports):
    `eventId` is the subscription's `logEvents[].id`, so a polled or backfilled event and the
    same event delivered by the subscription share one workflow id."""
    items = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            items.append(invalid(index, "expected a JSON object", event))
            continue
        [item] = parse_subscription(
            {
                "messageType": "DATA_MESSAGE",
                "logGroup": event.get("logGroupName", log_group),
                "logStream": event.get("logStreamName"),
                "logEvents": [
                    {
                        "id": event.get("eventId"),
                        "timestamp": event.get("timestamp"),
                        "message": event.get("message"),
                    }
                ],
            },
            cloudtrail_groups,
        )
        items.append(ParsedItem(index=index, raw=item.raw, error=item.error, sample=item.sample))
    return items


def encode_awslogs(data: dict[str, Any]) -> dict[str, Any]:
    """The wire form of a subscription message (for tests, the bench and the sandbox)."""
    packed = base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()
    return {"awslogs": {"data": packed}}
