"""Generic JSON for anything else: one object, a list, `{"events": [...]}`, NDJSON (one object a
line) or JSON values written one after another (`curl -d @file` drops the newlines), each record
read by its shipper's own field names (`powertrip.sources.shippers`): Powertrip's own
`{"id", "time", "host", "program", "message", ...any other fields}`, journald, syslog-ng, ECS,
rsyslog, Logstash, Vector, Fluent Bit/Fluentd, Datadog, Splunk HEC, GELF, NXLog, Loki or OTLP.

A team can send a custom line from a shell script with curl. When the record names no program,
no host and no container, a raw syslog line in its message is split into program and message
(the record's time still wins); when it names any of them, the message is that program's,
host's or container's own text, unless the shipper read it from a syslog file
(`FieldMap.syslog_files`). A batch envelope (a Loki push, an OTLP export) is one record per
log line.

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
from powertrip.sources.journal import export_entries
from powertrip.sources.shippers import (
    DEFAULT_FIELDS,
    FieldError,
    FieldMap,
    batch_records,
    extract,
)
from powertrip.sources.syslog import ANNOTATION, event_from_text, is_annotation, logical_lines

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
    """(index, JSON value or what was there, why it is no JSON) as parsed items. A batch
    envelope (a Loki push, an OTLP export) is one record per log line in it: they take
    consecutive indices from its own, and the values after it move up."""
    records: list[tuple[int, Any, str | None]] = []
    shift = 0
    for index, value, error in values:
        inner = None if error else batch_records(value)
        if inner is None:
            records.append((index + shift, value, error))
            continue
        records += [(index + shift + k, record, why) for k, (record, why) in enumerate(inner)]
        shift += len(inner) - 1
    if not records:
        raise PayloadError("no events in the body")
    return [
        invalid(index, error, value)
        if error
        else _one(index, value, reading, _key(reading.idempotency_key, index, len(records)))
        for index, value, error in records
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


def parse_journal_export(body: bytes, reading: Reading = Reading()) -> list[ParsedItem]:
    """The journal's export format (`journalctl -o export`, `systemd-journal-upload`'s body;
    `powertrip.sources.journal`): each entry read as `journalctl -o json` would give it; a
    result's index is its first line's number - 1."""
    lines = enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1)
    values: list[tuple[int, Any, str | None]] = [
        (number - 1, entry, None) for number, entry in export_entries(lines)
    ]
    return _items(values, reading)


def parse_text_lines(
    body: bytes, reading: Reading = Reading(), source: str = SOURCE
) -> list[ParsedItem]:
    """Raw log lines (`Content-Type: text/plain`, e.g. Vector's `text` codec or `curl
    --data-binary @auth.log`): each line with its syslog framing, which the transport did not
    give; a line without framing is a message with no host or program. Continuation lines join
    their record (`syslog.logical_lines`); a result's index is its first line's number - 1. A
    line of saved output that is no record (`syslog.is_annotation`: journalctl's `-- Boot <id>
    --`) is answered a non-event (`ParsedItem.annotation`): no line with content is left
    unanswered."""
    text = body.decode("utf-8", errors="replace")
    lines = [
        (number - 1, line, is_annotation(line))
        for number, line in logical_lines(enumerate(text.splitlines(), start=1), annotations=True)
        if line.strip()
    ]
    if not lines:
        raise PayloadError("no events in the body")
    records = sum(not annotation for _, _, annotation in lines)  # what an Idempotency-Key names
    items = []
    for index, line, annotation in lines:
        if annotation:
            items.append(ParsedItem(index=index, annotation=ANNOTATION, sample=line))
            continue
        try:
            raw = event_from_text(line, source, "pending", now=reading.received)
        except ValidationError as exc:
            items.append(invalid(index, describe_validation_error(exc), line))
            continue
        provider_id = _key(reading.idempotency_key, index, records) or content_id(
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
    `ValidationError` when it cannot be one (their messages say which field).

    Syslog framing in its message is read only when the record names no program and either
    names no host and no container (a bare line) or was read from one of the source's
    `syslog_files`; such a line's own host wins over the shipper's (a central syslog server's
    files hold other hosts' lines)."""
    fields = fields or DEFAULT_FIELDS
    found = extract(member, fields)
    if not found.message and set(member) <= _ONLY_METADATA:
        raise FieldError("give a `message` or fields for JSON rules")
    received = received or datetime.now(UTC)
    syslog_line = not found.container and fields.is_syslog_file(found.file)
    raw = event_from_text(
        found.message,
        source,
        found.id or provider_id or "pending",
        received_at=found.time,
        host=None if syslog_line else found.host,
        program=found.program,
        fields=member,
        framing=syslog_line or not (found.host or found.container),
        now=received,
    )
    if syslog_line and raw.host is None:
        raw = raw.model_copy(update={"host": found.host})
    if found.time is not None and not found.zoned:
        raw = raw.model_copy(update={"time_without_zone": True})
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
