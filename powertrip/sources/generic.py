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

import re
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
    json_text,
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
    # What an Idempotency-Key names: the records, not saved output's annotations.
    named = sum(not (isinstance(value, _Line) and value.annotation) for _, value, _ in records)
    return [
        invalid(index, error, value)
        if error
        else _one(index, value, reading, _key(reading.idempotency_key, index, named))
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


@dataclass(frozen=True, slots=True)
class JsonValue:
    """One value of a text of JSON values (`iter_json_values`): the line it starts on (1-based),
    its offsets in the text (`start`, `end`), and the value; or, where no value could be read,
    the text there and why (`error`)."""

    line: int
    start: int
    end: int
    value: Any
    error: str | None = None


# Where a value may start after text that is none: a line that begins with neither blank nor a
# closing bracket (a pretty-printer indents what is inside a value and closes it at column 0, so
# such a line is the next value's) ...
_LINE_START = re.compile(r"^\x1e*(?=[^\s\]}])", re.MULTILINE)
# ... or a `{`/`[` right after a `}`/`]`, as values written one after another on one line (`curl
# -d @file` drops the newlines) meet. Inside a string they only cost a read that fails.
_NEXT_ON_LINE = re.compile(r"(?<=[}\]])[ \t\x1e]*(?=[{\[])")
_BLANK = re.compile(r"\s*")  # Unicode `\s` covers RFC 7464's record separator
_LINE_REST = re.compile(r"[ \t\r\x1e]*")


class _Scan:
    """`iter_json_values`' cursor over one text: the next place a value may start, and line
    numbers, each found by searching forward only once (linear in the text)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: dict[re.Pattern[str], tuple[int, int]] = {}  # (searched from, found at)
        self.counted, self.lines = 0, 1

    def next(self, pattern: re.Pattern[str], position: int) -> int:
        """The first place `pattern` matches at or after `position` (the text's end if none)."""
        since, at = self.found.get(pattern, (-1, -1))
        if not since <= position <= at:
            found = pattern.search(self.text, position)
            since, at = self.found[pattern] = (position, found.end() if found else len(self.text))
        return at

    def resume(self, position: int) -> int:
        """Where reading goes on after text that is no value, at or after `position`."""
        return min(self.next(_LINE_START, position), self.next(_NEXT_ON_LINE, position))

    def line(self, position: int) -> int:
        """The 1-based line of `position` (positions asked for never decrease)."""
        self.lines += self.text.count("\n", self.counted, position)
        self.counted = position
        return self.lines


def iter_json_values(text: str) -> Iterator[JsonValue]:
    """JSON values one after another: one a line (NDJSON, JSON Lines), pretty-printed over
    several lines (`journalctl -o json-pretty`, `jq`), run together on one line (`curl -d @file`
    drops the newlines), each optionally after RFC 7464's record separator.

    Text that is no value is yielded with the reason (`JsonValue.error`) and reading resumes at
    the next place a value may start: the next line that does not continue a pretty-printed
    value (it begins with neither blank nor `}`/`]`), or a `{`/`[` right after a `}`/`]`. So a
    broken value costs only itself, whichever it is. A value followed on its line by anything
    but another value is no value either (`{"a": 1} trailing`).

    Linear in the text: each read is of a slice reaching no further than the next place a value
    may start (the decoder's error positions count from the start of what it is given)."""
    scan = _Scan(text)
    position, end = 0, len(text)
    while True:
        position = _BLANK.match(text, position).end()  # type: ignore[union-attr]
        if position >= end:
            return
        start = position
        value, position, error = _read_value(text, start, scan)
        if error is None:
            yield JsonValue(scan.line(start), start, position, value)
            continue
        position = scan.resume(max(position, start + 1))
        what = text[start:position].rstrip()
        yield JsonValue(scan.line(start), start, position, what, error)


# What a JSON value can start with; anything else (a log line) is none without asking the decoder.
_VALUE_STARTS = frozenset('{["-0123456789tfnNI')  # NaN, Infinity: `jsontext` marks them


def _read_value(text: str, start: int, scan: _Scan) -> tuple[Any, int, str | None]:
    """`(value, where it ends, None)` for the value at `start`, or `(None, where reading failed,
    why)` if there is none or something other than another value follows it on its line.

    The decoder is given a slice up to the next place another value may start: a value that
    runs past it (a `}{` inside one of its strings) is read again from a slice twice as long, up
    to the next line that starts a value, which no value runs past."""
    if text[start] not in _VALUE_STARTS:
        return None, start, "not JSON: Expecting value: line 1 column 1 (char 0)"
    limit = scan.next(_LINE_START, start + 1)
    stop = min(scan.next(_NEXT_ON_LINE, start + 1), limit)
    while True:
        chunk = text[start:stop]
        try:
            value, used = jsontext.raw_decode(chunk, 0)
            break
        except jsontext.JsonError as exc:
            cause = exc.__cause__  # the decoder's own error says where; jsontext keeps it there
            at = getattr(cause, "pos", 0)
            ran_past = at >= len(chunk.rstrip()) or getattr(cause, "msg", "").startswith(
                "Unterminated string"
            )
            if not ran_past or stop >= limit:
                return None, start + at, f"not JSON: {exc}"
            stop = min(scan.next(_NEXT_ON_LINE, start + 2 * len(chunk)), limit)
    end = start + used
    after = _LINE_REST.match(text, end).end()  # type: ignore[union-attr]
    if after < len(text) and text[after] != "\n":
        if not (text[after] in "{[" and text[end - 1] in "}]"):
            return None, after, _extra(text, start, after)
    return value, end, None


def _extra(text: str, start: int, at: int) -> str:
    """The decoder's own words for text after a value, counted from the value's start as its
    other errors are."""
    line = text.count("\n", start, at) + 1
    column = at - max(text.rfind("\n", start, at) + 1, start) + 1
    return f"not JSON: Extra data: line {line} column {column} (char {at - start})"


def parse_journal_export(body: bytes, reading: Reading = Reading()) -> list[ParsedItem]:
    """The journal's export format (`journalctl -o export`, `systemd-journal-upload`'s body;
    `powertrip.sources.journal`): each entry read as `journalctl -o json` would give it; a
    result's index is its first line's number - 1."""
    lines = enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1)
    values: list[tuple[int, Any, str | None]] = [
        (number - 1, entry, None) for number, entry in export_entries(lines)
    ]
    return _items(values, reading)


def parse_json_values(body: bytes, reading: Reading = Reading()) -> list[ParsedItem]:
    """NDJSON, pretty-printed JSON values one after another or values run together
    (`iter_json_values`): each value a record, and text that is no JSON its own `invalid`,
    `line N: not JSON: <the decoder's reason>`; the values around it are read all the same."""
    return json_value_items(list(iter_json_values(json_text(body))), reading)


def json_value_items(values: list[JsonValue], reading: Reading = Reading()) -> list[ParsedItem]:
    """`iter_json_values`' values as parsed items; a result's index is its first line's number
    - 1, or, when several start on one line (values run together), its place in the body."""
    indices = _indices([value.line for value in values])
    return _items(
        [
            (index, value.value, f"line {value.line}: {value.error}" if value.error else None)
            for index, value in zip(indices, values, strict=True)
        ],
        reading,
    )


@dataclass(frozen=True, slots=True)
class _Line:
    """A raw log line among JSON records (`parse_text_lines`): read for its syslog framing."""

    text: str
    annotation: bool = False
    """Saved output's own line, no record (`syslog.is_annotation`): answered a non-event."""


def parse_text_lines(body: bytes, reading: Reading = Reading()) -> list[ParsedItem]:
    """Raw log lines (`Content-Type: text/plain`, e.g. Vector's `text` codec, a syslog relay or
    `curl --data-binary @auth.log`), each line read as what it is: one that holds JSON objects
    (and nothing else; pretty-printed over several lines too) is those records, any other is a
    log line with its syslog framing, which the transport did not give (a line without framing
    is a message with no host or program). Continuation lines join their record and saved
    output's annotations (`syslog.is_annotation`: journalctl's `-- Boot <id> --`) are answered
    non-events (`ParsedItem.annotation`), so no line with content is left unanswered; a result's
    index is its first line's number - 1 (its place in the body when several records start on
    one line)."""
    text = json_text(body)
    records: list[tuple[int, Any]] = []
    group: list[JsonValue] = []
    last_line = 0
    for value in iter_json_values(text):
        if group and value.line > last_line:
            records += _text_or_json(text, group)
            group = []
        group.append(value)
        last_line = value.line + text.count("\n", value.start, max(value.end - 1, value.start))
    if group:
        records += _text_or_json(text, group)
    indices = _indices([line for line, _ in records])
    return _items(
        [(index, record, None) for index, (_, record) in zip(indices, records, strict=True)],
        reading,
    )


def _text_or_json(text: str, group: list[JsonValue]) -> list[tuple[int, Any]]:
    """(line, record) of the values of whole lines: JSON objects if that is all they hold, else
    their log lines as `_Line`s."""
    if all(value.error is None and isinstance(value.value, dict) for value in group):
        return [(value.line, value.value) for value in group]
    first = text.rfind("\n", 0, group[0].start) + 1
    last = text.find("\n", group[-1].end - 1)
    lines = text[first : last if last >= 0 else len(text)].split("\n")
    return [
        (number, _Line(line, is_annotation(line)))
        for number, line in logical_lines(enumerate(lines, start=group[0].line), annotations=True)
        if line.strip()
    ]


def _indices(lines: list[int]) -> list[int]:
    """Each record's index: its first line's number - 1, or its place when two share a line."""
    if len(set(lines)) == len(lines):
        return [line - 1 for line in lines]
    return list(range(len(lines)))


def _text_item(index: int, line: str, reading: Reading, provider_id: str | None) -> ParsedItem:
    try:
        raw = event_from_text(line, SOURCE, "pending", now=reading.received)
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), line)
    return ParsedItem(
        index=index,
        raw=raw.model_copy(
            update={
                "provider_id": provider_id or content_id(line, raw.received_at, reading.received),
                "received_at": raw.received_at or reading.received,
            }
        ),
    )


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
    if isinstance(member, _Line) and member.annotation:
        return ParsedItem(index=index, annotation=ANNOTATION, sample=member.text)
    if isinstance(member, _Line):
        return _text_item(index, member.text, reading, provider_id)
    if not isinstance(member, dict):
        return invalid(index, f"expected a JSON object, got {type(member).__name__}", member)
    try:
        raw = generic_raw(member, SOURCE, reading.fields, reading.received, provider_id)
    except FieldError as exc:
        return invalid(index, str(exc), member)
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), member)
    return ParsedItem(index=index, raw=raw)
