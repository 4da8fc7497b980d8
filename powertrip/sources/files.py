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
  named `cloudtrail-<eventID>`; `--format cloudtrail` also reads bare CloudTrail records (NDJSON
  or a list) as CloudTrail, which any other format reads as ordinary JSON;
- Wazuh/OSSEC `alerts.json` (one alert a line), `wazuh-<alert id>`;
- any log shipper's JSON records (`powertrip.sources.shippers`), by its field names.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import ValidationError

from powertrip import jsontext
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid
from powertrip.sources.cloudtrail import cloudtrail_item, cloudtrail_records, is_cloudtrail_document
from powertrip.sources.cloudwatch import parse_cloudwatch, parse_filtered_events
from powertrip.sources.eventbridge import is_eventbridge_event, parse_eventbridge
from powertrip.sources.generic import Reading, iter_json_values, parse_generic
from powertrip.sources.papertrail import parse_papertrail
from powertrip.sources.shippers import FieldMap
from powertrip.sources.syslog import parse_syslog, parse_syslog_line
from powertrip.sources.wazuh import is_wazuh_alert, wazuh_item

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


GZIP_MAGIC = b"\x1f\x8b"


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
    text = first_line.strip().lstrip("\x1e")
    if parse_syslog(text) is not None:  # `[ 8712.12] host sshd[1]: ...` (journalctl monotonic)
        return InputFormat.SYSLOG
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


def records(
    lines: Iterable[str],
    fmt: InputFormat = InputFormat.AUTO,
    source: str = SYSLOG_SOURCE,
    year: int | None = None,
    now: datetime | None = None,
    fields: FieldMap | None = None,
) -> Iterator[Located]:
    """Every record in the input with its line number (1-based). Blank lines, and `#` comment
    lines in syslog text, are not records. `fields` maps the JSON records' field names
    (`sources.json.fields`); `now` is when records without a time of their own arrived."""
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
    if fmt in (InputFormat.JSON, InputFormat.CLOUDTRAIL):
        text = "".join(line for _, line in numbered)
        for member, (value, error) in enumerate(iter_json_values(text)):
            if error:
                yield Located(invalid(0, f"not a JSON document: {error}", value), line=1)
                return
            yield from reader.located(value, line=None, member=member if member else None)
        return
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
            try:
                value = jsontext.loads(line.strip().lstrip("\x1e"))  # RFC 7464 json-seq too
            except jsontext.JsonError as exc:
                yield Located(invalid(0, f"not JSON: {exc}", line), line=number)
                continue
            yield from reader.located(value, line=number)


def _chain(
    first: list[tuple[int, str]], rest: Iterator[tuple[int, str]]
) -> Iterator[tuple[int, str]]:
    yield from first
    yield from rest


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
    cloudtrail: bool  # `--format cloudtrail`: bare CloudTrail records are CloudTrail's too

    def located(self, value: Any, line: int | None, member: int | None = None) -> Iterator[Located]:
        for index, item in enumerate(self.items(value)):
            at = member if member is not None else (index if self._many(value) else None)
            yield Located(item, line=line, member=at)

    @staticmethod
    def _many(value: Any) -> bool:
        return isinstance(value, list) or (
            isinstance(value, dict)
            and (
                is_cloudtrail_document(value)
                or isinstance(value.get("events"), list)
                or "awslogs" in value
                or "messageType" in value
            )
        )

    def items(self, value: Any) -> list[ParsedItem]:
        """One JSON value: an event, a list of events, or a saved delivery/export holding many."""
        if self.cloudtrail or is_cloudtrail_document(value):
            # CloudTrail's own files (or records the operator says are CloudTrail's): trusted.
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
        if is_eventbridge_event(value):  # a saved delivery of the EventBridge endpoint
            return _parsed(parse_eventbridge, value)
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
