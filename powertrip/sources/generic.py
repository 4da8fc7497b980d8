"""Generic JSON for anything else: one object, a list, `{"events": [...]}`, NDJSON (one object a
line) or JSON values written one after another (`curl -d @file` drops the newlines), each record
read by its shipper's own field names (`powertrip.sources.shippers`): Powertrip's own
`{"id", "time", "host", "program", "message", ...any other fields}`, journald, ECS, rsyslog,
Logstash, Vector, Fluent Bit/Fluentd, Splunk HEC, GELF or NXLog.

A team can send a custom line from a shell script with curl. When the record names no program,
a raw syslog line in its message is split into program and message (the record's host and time
still win); when it names one, the message is that program's own text.

A record without an id is named by its content and its own time, or, without a time, by its
content and when it arrived (`powertrip.sources.content_id`); an `Idempotency-Key` header names
the records of its request instead (`keyed_id`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from powertrip import jsontext
from powertrip.models import RawEvent
from powertrip.sources import (
    ParsedItem,
    PayloadError,
    content_id,
    describe_validation_error,
    invalid,
    keyed_id,
)
from powertrip.sources.shippers import FieldError, FieldMap, extract
from powertrip.sources.syslog import event_from_text

SOURCE = "json"
_RECORD_SEPARATOR = "\x1e"  # RFC 7464 JSON text sequences (`journalctl -o json-seq`)
# A record holding only these has nothing a rule could match.
_ONLY_METADATA = frozenset({"id", "time", "timestamp", "@timestamp", "host", "hostname", "program"})


@dataclass(frozen=True)
class Reading:
    """How one request's (or file's) records are read and named: the source's own field names
    (`sources.<name>.fields`), when they arrived, and the request's `Idempotency-Key`."""

    fields: FieldMap | None = None
    received: datetime | None = None
    idempotency_key: str | None = None


def parse_ndjson(body: bytes, reading: Reading = Reading()) -> list[ParsedItem]:
    """One record a line; a result's index is its line number - 1 (blank lines are skipped)."""
    values: list[tuple[int, Any, str | None]] = []
    for index, line in enumerate(body.decode("utf-8", errors="replace").splitlines()):
        text = line.strip().lstrip(_RECORD_SEPARATOR)
        if not text:
            continue
        try:
            values.append((index, jsontext.loads(text), None))
        except jsontext.JsonError as exc:
            values.append((index, line, f"line {index + 1}: not JSON: {exc}"))
    return _items(values, reading)


def _items(values: list[tuple[int, Any, str | None]], reading: Reading) -> list[ParsedItem]:
    """(index, JSON value or what was there, why it is no JSON) as parsed items."""
    if not values:
        raise PayloadError("no events in the body")
    return [
        invalid(index, error, value)
        if error
        else _one(index, value, reading, _key(reading.idempotency_key, index, len(values)))
        for index, value, error in values
    ]


def parse_generic(payload: Any, reading: Reading = Reading()) -> list[ParsedItem]:
    """One object, a list of them, or `{"events": [...]}`; `PayloadError` for anything else."""
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        members = payload["events"]
    elif isinstance(payload, list):
        members = payload
    elif isinstance(payload, dict):
        members = [payload]
    else:
        raise PayloadError("expected a JSON object, a list of objects, or NDJSON")
    values: list[tuple[int, Any, str | None]] = [
        (i, member, None) for i, member in enumerate(members)
    ]
    return _items(values, reading)


def iter_json_values(text: str) -> Iterator[tuple[Any, str | None]]:
    """JSON values written one after another, separated by nothing, whitespace or RFC 7464's
    record separator: `(value, None)` each, or `(rest of the text, reason)` once at the first
    that does not parse (nothing after it can be delimited)."""
    position, end = 0, len(text)
    while True:
        while position < end and (text[position].isspace() or text[position] == "\x1e"):
            position += 1
        if position >= end:
            return
        try:
            value, position = jsontext.raw_decode(text, position)
        except jsontext.JsonError as exc:
            yield text[position:], f"not JSON: {exc}"
            return
        yield value, None


def parse_concatenated(body: bytes, reading: Reading = Reading()) -> list[ParsedItem]:
    """JSON values one after another without newlines (what `curl -d @events.ndjson` sends: it
    drops line breaks), or pretty-printed one after another (`journalctl -o json-pretty`)."""
    values = iter_json_values(body.decode("utf-8", errors="replace"))
    return _items([(index, value, error) for index, (value, error) in enumerate(values)], reading)


def parse_text_lines(
    body: bytes, reading: Reading = Reading(), source: str = SOURCE
) -> list[ParsedItem]:
    """Raw log lines (`Content-Type: text/plain`, e.g. Vector's `text` codec or `curl
    --data-binary @auth.log`): each line with its syslog framing, which the transport did not
    give; a line without framing is a message with no host or program."""
    lines = [
        (index, line)
        for index, line in enumerate(body.decode("utf-8", errors="replace").splitlines())
        if line.strip()
    ]
    if not lines:
        raise PayloadError("no events in the body")
    items = []
    for index, line in lines:
        try:
            raw = event_from_text(line, source, "pending")
        except ValidationError as exc:
            items.append(invalid(index, describe_validation_error(exc), line))
            continue
        provider_id = _key(reading.idempotency_key, index, len(lines)) or content_id(
            line, raw.received_at, reading.received
        )
        received_at = raw.received_at or reading.received
        items.append(
            ParsedItem(
                index=index,
                raw=raw.model_copy(update={"provider_id": provider_id, "received_at": received_at}),
            )
        )
    return items


def _key(idempotency_key: str | None, index: int, batch: int) -> str | None:
    return keyed_id(idempotency_key, index, batch) if idempotency_key else None


def generic_raw(
    member: dict[str, Any],
    source: str,
    fields: FieldMap | None = None,
    received: datetime | None = None,
    provider_id: str | None = None,
) -> RawEvent:
    """One shipper's record as a `RawEvent` of `source`; `FieldError` or pydantic's
    `ValidationError` when it cannot be one (their messages say which field)."""
    found = extract(member, fields)
    if not found.message and set(member) <= _ONLY_METADATA:
        raise FieldError("give a `message` or fields for JSON rules")
    received = received or datetime.now(UTC)
    raw = event_from_text(
        found.message,
        source,
        found.id or provider_id or "pending",
        received_at=found.time,
        host=found.host,
        program=found.program,
        fields=member,
    )
    if found.id or provider_id:
        return raw
    # Named by its content and its own time (its stamp, or its syslog line's), else by when it
    # arrived; a record without a time of its own is stamped with that arrival.
    return raw.model_copy(
        update={
            "provider_id": content_id(member, raw.received_at, received),
            "received_at": raw.received_at or received,
        }
    )


def _one(index: int, member: Any, reading: Reading, provider_id: str | None) -> ParsedItem:
    if not isinstance(member, dict):
        return invalid(index, f"expected a JSON object, got {type(member).__name__}", member)
    try:
        raw = generic_raw(member, SOURCE, reading.fields, reading.received, provider_id)
    except FieldError as exc:
        return invalid(index, str(exc), member)
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), member)
    return ParsedItem(index=index, raw=raw)
