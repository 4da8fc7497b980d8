"""Reading records from files: the backfill's input formats, detected from the first non-blank line
unless a format is given, gzipped or not:
- syslog text, one event per line, in every dialect `powertrip.sources.syslog` reads (RFC 3164,
  RFC 3339 stamps, RFC 5424, the `journalctl` text modes);
- Papertrail archives (tab-separated, id first) and papertrail-cli `--json` output;
- NDJSON: one JSON value per line (also `journalctl -o json` and `-o json-seq`), each an event or
  a saved delivery/export (below);
- JSON documents, one or several one after another (also `journalctl -o json-pretty`): a
  Papertrail webhook payload or search API answer (`{"events": [...]}`), a CloudWatch Logs export
  (`aws logs filter-log-events`, subscription data), a list of events;
- CloudTrail's own files: a trail's delivery file `{"Records": [...]}` as written to S3 and
  `aws cloudtrail lookup-events` output (`{"Events": [{"CloudTrailEvent": "..."}]}`), every record
  named `cloudtrail-<eventID>`. Trusted as CloudTrail only when that document is the whole file:
  the same shape on one line of an application's NDJSON log, inside a list or beside other
  values, is ordinary JSON. `--format cloudtrail` (the operator's word) reads every value as
  CloudTrail's: documents, bare records (NDJSON or a list) and saved EventBridge deliveries;
- Wazuh/OSSEC `alerts.json` (one alert a line), `wazuh-<alert id>`;
- the journal's export format (`journalctl -o export`, `powertrip.sources.journal`) and
  `systemd-journal-gatewayd`'s server-sent events (`data: {...}` lines, read as NDJSON);
- sudo's own log files: the text one (`Defaults logfile`, wrapped lines joined) is a syslog
  dialect; the JSON one (`powertrip.sources.sudo`) a JSON document;
- any log shipper's JSON records (`powertrip.sources.shippers`), by its field names.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from pydantic import ValidationError

from powertrip import jsontext
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid
from powertrip.sources.cloudtrail import cloudtrail_item, cloudtrail_records, is_cloudtrail_document
from powertrip.sources.cloudwatch import parse_cloudwatch, parse_filtered_events
from powertrip.sources.eventbridge import is_eventbridge_event, parse_eventbridge
from powertrip.sources.generic import Reading, iter_json_values, parse_generic
from powertrip.sources.journal import export_entries, looks_like_export
from powertrip.sources.papertrail import parse_papertrail
from powertrip.sources.shippers import FieldMap, batch_records
from powertrip.sources.sudo import sudo_log_items
from powertrip.sources.syslog import logical_lines, parse_syslog, parse_syslog_line
from powertrip.sources.wazuh import is_wazuh_alert, wazuh_item

_T = TypeVar("_T")
CHUNK = 5_000  # records recognised and started together
SYSLOG_SOURCE = "syslog"
CLOUDTRAIL_SOURCE = "cloudtrail"  # the source of records read from CloudTrail's own files
# Papertrail archive columns (tab-separated, no header).
_TSV_FIELDS = (
    "id",
    "generated_at",
    "received_at",
    "source_id",
    "source_name",
    "source_ip",
    "facility",
    "severity",
    "program",
    "message",
)


class InputFormat(StrEnum):
    AUTO = "auto"
    SYSLOG = "syslog"
    NDJSON = "ndjson"
    JSON = "json"
    PAPERTRAIL_TSV = "papertrail-tsv"
    CLOUDTRAIL = "cloudtrail"
    JOURNAL_EXPORT = "journal-export"


GZIP_MAGIC = b"\x1f\x8b"
# Far above any log line or CloudTrail file (written as one line); a gzip bomb without line
# breaks would otherwise be read into memory whole.
MAX_LINE_BYTES = 64 * 1024 * 1024


class UnreadableInput(Exception):
    """The input cannot be read on from some line: what was read before it stands."""


class LineTooLong(UnreadableInput):
    """A line of the input is longer than `MAX_LINE_BYTES`: no log this reads."""

    def __init__(self, label: str, number: int) -> None:
        super().__init__(
            f"{label} line {number} is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB: "
            "not a log file this reads (nothing after it was read)"
        )


class InputLines:
    """The text lines of a file or stdin (`open_input`) as the backfill and `powertrip rules
    test` read them, counting the bytes read (for a progress bar). Bytes that are no UTF-8 cost
    only the characters they are (U+FFFD), never the line or the file; a line over
    `MAX_LINE_BYTES` (LineTooLong) or a gzip file cut short or corrupt ends the reading with
    `UnreadableInput` naming the line."""

    def __init__(self, stream: BinaryIO, label: str, size: float | None = None) -> None:
        self.stream = stream
        self.label = label
        self.size = size
        self.bytes = 0

    def __iter__(self) -> Iterator[str]:
        number = 0
        while raw := self._readline(number):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise LineTooLong(self.label, number)
            self.bytes += len(raw)
            yield raw.decode("utf-8", errors="replace")

    def _readline(self, read: int) -> bytes:
        try:
            return self.stream.readline(MAX_LINE_BYTES + 1)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise UnreadableInput(
                f"{self.label} is no complete gzip file after line {read} ({exc}): "
                "nothing after it was read"
            ) from exc


def open_input(path: Path) -> BinaryIO:
    """A file to read lines from, decompressed when it is gzip (CloudTrail writes its files so)."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    raw.seek(0)
    return raw


@dataclass(frozen=True)
class Located:
    """A parsed record and where it came from, for messages a person can act on."""

    item: ParsedItem
    line: int | None = None
    member: int | None = None  # position inside a JSON document holding many events

    @property
    def where(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.member is not None:
            parts.append(f"event {self.member}")
        return ", ".join(parts) or "record"


# Reading --------------------------------------------------------------------------------------


def detect_format(first_line: str) -> InputFormat:
    text = sse_data(first_line.strip().lstrip("\x1e"))
    if parse_syslog(text) is not None:  # `[ 8712.12] host sshd[1]: ...` (journalctl monotonic)
        return InputFormat.SYSLOG
    if looks_like_export(text):
        return InputFormat.JOURNAL_EXPORT
    if text.startswith(("{", "[")):
        try:
            jsontext.loads(text)
        except jsontext.JsonError:
            return InputFormat.JSON  # a document spread over many lines
        return InputFormat.NDJSON
    fields = text.split("\t")
    if len(fields) >= len(_TSV_FIELDS) and fields[0].isdigit():
        return InputFormat.PAPERTRAIL_TSV
    return InputFormat.SYSLOG


def sse_data(line: str) -> str:
    """A server-sent event's `data: ` line (what `systemd-journal-gatewayd` sends for `Accept:
    text/event-stream`) as its data; any other line as it is."""
    return line[5:].lstrip(" ") if line.startswith("data:") else line


def sse_bookkeeping(line: str) -> bool:
    """A server-sent event's field other than data, or a comment: no record."""
    return line.startswith(("id:", "event:", "retry:", ":"))


def records(
    lines: Iterable[str],
    fmt: InputFormat = InputFormat.AUTO,
    source: str = SYSLOG_SOURCE,
    year: int | None = None,
    now: datetime | None = None,
    fields: FieldMap | None = None,
    host: str | None = None,
) -> Iterator[Located]:
    """Every record in the input with its line number (1-based). Blank lines, `#` comment
    lines and saved output's annotations in syslog text are not records. `fields` maps the JSON
    records' field names (`sources.json.fields`); `now` is when records without a time of their
    own arrived; `host` names the host of records that name none (macOS `log show`, OpenWrt's
    `logread`, `journalctl --no-hostname`)."""
    for located in _records(lines, fmt, source, year, now, fields):
        raw = located.item.raw
        if host and raw is not None and raw.host is None:
            item = replace(located.item, raw=raw.model_copy(update={"host": host}))
            located = replace(located, item=item)
        yield located


def _records(
    lines: Iterable[str],
    fmt: InputFormat,
    source: str,
    year: int | None,
    now: datetime | None,
    fields: FieldMap | None,
) -> Iterator[Located]:
    numbered: Iterator[tuple[int, str]] = enumerate(lines, start=1)
    if fmt is InputFormat.AUTO:
        for number, line in numbered:
            if line.strip():
                fmt = detect_format(line)
                numbered = _chain([(number, line)], numbered)
                break
        else:
            return
    reader = _Reader(source, fields, now or datetime.now(UTC), fmt is InputFormat.CLOUDTRAIL)
    if fmt is InputFormat.JOURNAL_EXPORT:
        for number, entry in export_entries(numbered):
            yield from reader.located(entry, line=number)
        return
    if fmt in (InputFormat.JSON, InputFormat.CLOUDTRAIL):
        text = "".join(line for _, line in numbered)
        if fmt is InputFormat.JSON and (sudo := sudo_log_items(text, source, reader.received)):
            for member, item in enumerate(sudo):
                yield Located(item, line=None, member=member)
            return
        values = iter_json_values(text)
        first = next(values, None)
        if first is not None and first.error is None and is_cloudtrail_document(first.value):
            second = next(values, None)
            if second is None:  # the whole file is CloudTrail's own document
                yield from replace(reader, cloudtrail=True).located(first.value, line=None)
                return
            values = _chain([first, second], values)
        elif first is not None:
            values = _chain([first], values)
        for member, value in enumerate(values):
            if value.error:  # that value alone: reading goes on at the next one
                item = invalid(0, f"not a JSON document: {value.error}", value.value)
                yield Located(item, line=value.line)
                continue
            yield from reader.located(value.value, line=None, member=member if member else None)
        return
    if fmt is InputFormat.NDJSON:
        numbered, whole = _whole_cloudtrail_line(numbered)
        if whole is not None:
            number, value = whole
            yield from replace(reader, cloudtrail=True).located(value, line=number)
            return
    if fmt is InputFormat.SYSLOG:
        numbered = logical_lines(numbered)
    for number, line in numbered:
        if not line.strip():
            continue
        if fmt is InputFormat.SYSLOG:
            if line.startswith("#"):
                continue  # an annotated log (comments), never a syslog record
            try:
                raw = parse_syslog_line(line, source, year=year, now=now)
            except ValidationError as exc:
                yield Located(invalid(0, describe_validation_error(exc), line), line=number)
                continue
            error = None if raw else "no syslog framing (expected `Mon DD HH:MM:SS host prog: msg`)"
            item = ParsedItem(index=0, raw=raw, error=error, sample=None if raw else line)
            yield Located(item, line=number)
        elif fmt is InputFormat.PAPERTRAIL_TSV:
            yield from _from_tsv(line, number)
        else:
            text = line.strip()
            if sse_bookkeeping(text):
                continue
            try:
                value = jsontext.loads(sse_data(text).lstrip("\x1e"))  # RFC 7464 json-seq too
            except jsontext.JsonError as exc:
                yield Located(invalid(0, f"not JSON: {exc}", line), line=number)
                continue
            yield from reader.located(value, line=number)


def _chain(first: list[_T], rest: Iterator[_T]) -> Iterator[_T]:
    yield from first
    yield from rest


def _whole_cloudtrail_line(
    numbered: Iterator[tuple[int, str]],
) -> tuple[Iterator[tuple[int, str]], tuple[int, Any] | None]:
    """NDJSON whose only record is CloudTrail's own document (a delivery file is one line):
    `(lines, (line number, document))`; else `(the same lines, None)`, nothing consumed."""
    seen: list[tuple[int, str]] = []
    for number, line in numbered:
        seen.append((number, line))
        if line.strip():
            break
    else:
        return iter(seen), None
    number, line = seen[-1]
    try:
        value = jsontext.loads(line.strip().lstrip("\x1e"))
    except (ValueError, RecursionError):
        return _chain(seen, numbered), None
    if not is_cloudtrail_document(value):
        return _chain(seen, numbered), None
    for more in numbered:
        seen.append(more)
        if more[1].strip():
            return _chain(seen, numbered), None
    return iter(()), (number, value)


def _from_tsv(line: str, number: int) -> Iterator[Located]:
    values = line.rstrip("\r\n").split("\t", len(_TSV_FIELDS) - 1)
    if len(values) < len(_TSV_FIELDS):
        error = f"expected {len(_TSV_FIELDS)} tab-separated Papertrail archive columns"
        yield Located(invalid(0, error, line), line=number)
        return
    event = dict(zip(_TSV_FIELDS, values, strict=True))
    event["hostname"] = event["source_name"]
    for item in parse_papertrail({"events": [event]}):
        yield Located(item, line=number)


_PAPERTRAIL_KEYS = frozenset(
    {"source_name", "display_received_at", "generated_at", "source_id", "hostname", "received_at"}
)


def _is_papertrail_event(value: dict[str, Any]) -> bool:
    return "id" in value and bool(_PAPERTRAIL_KEYS & value.keys())


def _is_cloudwatch_export_event(value: dict[str, Any]) -> bool:
    """A member of `aws logs filter-log-events` output."""
    return "eventId" in value and "timestamp" in value


def _parsed(parse: Callable[[Any], list[ParsedItem]], value: Any) -> list[ParsedItem]:
    try:
        return parse(value)
    except PayloadError as exc:
        return [invalid(0, str(exc), value)]


def json_items(
    value: Any,
    source: str = SYSLOG_SOURCE,
    fields: FieldMap | None = None,
    now: datetime | None = None,
    cloudtrail: bool = False,
) -> list[ParsedItem]:
    """The records one JSON value holds, read as the backfill reads it (`cloudtrail`: bare
    CloudTrail records are CloudTrail's, as with `--format cloudtrail`)."""
    return _Reader(source, fields, now or datetime.now(UTC), cloudtrail).items(value)


@dataclass(frozen=True)
class _Reader:
    """Turns one JSON value of a backfill into its records."""

    source: str
    fields: FieldMap | None
    received: datetime
    # CloudTrail's own file (the whole of it), or `--format cloudtrail`: its CloudTrail records
    # are trusted as CloudTrail's. Never decided by one value of a file: see the module.
    cloudtrail: bool

    def located(self, value: Any, line: int | None, member: int | None = None) -> Iterator[Located]:
        for index, item in enumerate(self.items(value)):
            at = member if member is not None else (index if self._many(value) else None)
            yield Located(item, line=line, member=at)

    @staticmethod
    def _many(value: Any) -> bool:
        return (
            isinstance(value, list)
            or (
                isinstance(value, dict)
                and (
                    is_cloudtrail_document(value)
                    or isinstance(value.get("events"), list)
                    or "awslogs" in value
                    or "messageType" in value
                )
            )
            or batch_records(value) is not None
        )

    def items(self, value: Any) -> list[ParsedItem]:
        """One JSON value: an event, a list of events, or a saved delivery/export holding many."""
        if self.cloudtrail and is_eventbridge_event(value):
            return _parsed(parse_eventbridge, value)
        if self.cloudtrail and not isinstance(value, list):
            # CloudTrail's own file (or records the operator says are CloudTrail's): trusted.
            return [
                invalid(index, error, record)
                if error
                else cloudtrail_item(index, record, CLOUDTRAIL_SOURCE)
                for index, (record, error) in enumerate(cloudtrail_records(value))
            ]
        if isinstance(value, list):
            return [item for element in value for item in self.items(element)]
        if not isinstance(value, dict):
            return [invalid(0, "expected a JSON object", value)]
        if "awslogs" in value or "messageType" in value:
            return _parsed(parse_cloudwatch, value)
        if is_eventbridge_event(value):  # a saved delivery: CloudTrail's only if so told
            return _parsed(lambda event: parse_eventbridge(event, cloudtrail=False), value)
        if isinstance(value.get("events"), list):
            return [item for element in value["events"] for item in self.items(element)]
        if _is_cloudwatch_export_event(value):
            return _parsed(parse_filtered_events, [value])
        if is_wazuh_alert(value):
            return [wazuh_item(0, value)]
        if _is_papertrail_event(value):
            return _parsed(parse_papertrail, {"events": [value]})
        return _parsed(
            lambda member: parse_generic(member, Reading(self.fields, self.received)), value
        )


def chunked(located: Iterable[Located], size: int = CHUNK) -> Iterator[list[Located]]:
    chunk: list[Located] = []
    for record in located:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
