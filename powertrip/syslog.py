"""Syslog framing: RFC 3164 (`Nov 27 01:02:03 host sshd[123]: ...`), RFC 3339-stamped lines
(`2019-06-14T10:40:20.912+01:30 host sudo: ...`, rsyslog's high-precision format) and RFC 5424
(`<38>1 2019-07-08T17:40:16Z host sshd 57915 - - ...`), split into time, host, program, pid and
message so rules see the message alone.

Used by every place a provider hands over the raw line: CloudWatch, SNS, generic JSON, backfill
and `powertrip rules test`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from powertrip.models import RawEvent

_MONTHS = {
    name: number
    for number, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        start=1,
    )
}
_PRI = r"(?:<(?P<pri>\d{1,3})>)?"
# The tag: `sshd[123]:`, `sudo:`, `[sshd]:` (some BSDs), `[sshd]` (no colon, fail2ban gh-267).
_TAG = r"(?:\[(?P<bprog>[^\]\s]+)\]:?|(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]*)\])?:)"
_RFC3164 = re.compile(
    _PRI + r"(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+(?P<hms>\d{2}:\d{2}:\d{2})"
    r"(?:\s+(?P<host>(?!\[)[^\s:\[\]]+(?<!:)))??\s+" + _TAG + r"\s?(?P<msg>.*)$"
)
_RFC3339 = re.compile(
    _PRI + r"(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"(?:\s+(?P<host>(?!\[)[^\s:\[\]]+(?<!:)))??\s+" + _TAG + r"\s?(?P<msg>.*)$"
)
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) "
    r"(?P<procid>\S+) (?P<msgid>\S+) (?P<rest>.*)$"
)
# Solaris/illumos prefix the message with the message id and facility: `[ID 800047 auth.info]`.
_SOLARIS_ID = re.compile(r"^\[ID \d+ [\w.]+\] ")


@dataclass(frozen=True)
class SyslogRecord:
    time: datetime | None
    host: str | None
    program: str | None
    pid: str | None
    message: str
    facility: int | None = None
    severity: int | None = None
    zoned: bool = True  # False: the stamp had no zone (RFC 3164) and `time` assumes UTC


def parse_syslog(
    line: str, year: int | None = None, now: datetime | None = None
) -> SyslogRecord | None:
    """Split a syslog line into its parts; None when the line has no syslog framing.

    RFC 3164 timestamps have no year and no zone: they are taken as UTC in `year`, or (without
    one) in the year that puts them closest before `now`, since logs arrive after they are
    written.
    """
    line = line.rstrip("\r\n")
    if line.startswith("<") and (found := _RFC5424.match(line)):
        return _from_5424(found)
    if found := _RFC3339.match(line):
        return _record(found, _parse_rfc3339(found["ts"]), zoned=_has_zone(found["ts"]))
    if (found := _RFC3164.match(line)) and found["mon"] in _MONTHS:
        return _record(found, _parse_3164_time(found, year, now), zoned=False)
    return None


def parse_syslog_line(
    line: str,
    source: str,
    provider_id: str | None = None,
    year: int | None = None,
    now: datetime | None = None,
) -> RawEvent | None:
    """A raw line as the `RawEvent` a source adapter would produce; None without syslog framing.

    Without a provider id the line's own fingerprint is used, so the same line read twice (a
    retried delivery, an overlapping backfill) is the same event.
    """
    record = parse_syslog(line, year, now)
    if record is None:
        return None
    return RawEvent(
        source=source,
        provider_id=provider_id or line_fingerprint(line),
        received_at=record.time,
        time_without_zone=record.time is not None and not record.zoned,
        host=record.host,
        program=record.program,
        message=record.message,
    )


def line_fingerprint(line: str) -> str:
    """A stable id for a record whose provider gives none."""
    return "l" + hashlib.sha256(line.rstrip("\r\n").encode()).hexdigest()[:32]


def _has_zone(stamp: str) -> bool:
    return bool(re.search(r"(?:Z|[+-]\d{2}:?\d{2})$", stamp))


def _record(found: re.Match[str], when: datetime | None, zoned: bool = True) -> SyslogRecord:
    facility, severity = _pri(found["pri"])
    return SyslogRecord(
        time=when,
        host=found["host"],
        program=found["prog"] or found["bprog"],
        pid=found["pid"] or None,
        message=_SOLARIS_ID.sub("", found["msg"]),
        facility=facility,
        severity=severity,
        zoned=zoned,
    )


def _from_5424(found: re.Match[str]) -> SyslogRecord:
    facility, severity = _pri(found["pri"])
    message = _skip_structured_data(found["rest"])
    if message.startswith("\ufeff"):  # RFC 5424 marks UTF-8 messages with a BOM
        message = message[1:]
    return SyslogRecord(
        time=_parse_rfc3339(found["ts"]),
        host=_nil(found["host"]),
        program=_nil(found["app"]),
        pid=_nil(found["procid"]),
        message=message,
        facility=facility,
        severity=severity,
    )


def _skip_structured_data(rest: str) -> str:
    """Drop RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"]...`) and return the MSG after it.

    Values are quoted and may hold `]` (escaped or not, as real senders do), so walk the text.
    """
    if rest.startswith("- ") or rest == "-":
        return rest[2:]
    index, in_quotes = 0, False
    while index < len(rest) and rest[index] == "[":
        index += 1
        while index < len(rest):
            char = rest[index]
            if char == "\\" and in_quotes:
                index += 2
                continue
            if char == '"':
                in_quotes = not in_quotes
            elif char == "]" and not in_quotes:
                index += 1
                break
            index += 1
    return rest[index:].removeprefix(" ")


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _pri(pri: str | None) -> tuple[int | None, int | None]:
    if pri is None:
        return None, None
    number = int(pri)
    return number // 8, number % 8


def _parse_rfc3339(text: str) -> datetime | None:
    text = text.replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # No zone: the writer's local time, which we cannot know; UTC is the documented assumption
    # (and what Filebeat's expected output uses).
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_3164_time(found: re.Match[str], year: int | None, now: datetime | None) -> datetime:
    month = _MONTHS[found["mon"]]
    hour, minute, second = (int(p) for p in found["hms"].split(":"))
    day = int(found["day"])
    if year is not None:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    now = now or datetime.now(UTC)
    for candidate in (now.year, now.year - 1):
        try:
            when = datetime(candidate, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:  # 29 February in a non-leap year
            continue
        # A day of slack for clocks and zones: later than that, it was written last year.
        if when <= now + timedelta(days=1):
            return when
    return datetime(now.year - 1, month, min(day, 28), hour, minute, second, tzinfo=UTC)


def event_from_text(
    text: str,
    source: str,
    provider_id: str,
    *,
    received_at: datetime | None = None,
    host: str | None = None,
    program: str | None = None,
    fields: dict[str, Any] | None = None,
) -> RawEvent:
    """A provider's text record: its syslog framing (when it has one) gives host, program and
    message; the provider's own time (which has a year and a zone) wins over the line's, and the
    provider's host and program fill in what the line lacks."""
    if received_at is not None and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)  # as `RawEvent` takes it
    record = parse_syslog(text, now=received_at)
    if record is None:
        return RawEvent(
            source=source,
            provider_id=provider_id,
            received_at=received_at,
            host=host,
            program=program,
            message=text.rstrip("\r\n"),
            fields=fields or {},
        )
    return RawEvent(
        source=source,
        provider_id=provider_id,
        received_at=received_at or record.time,
        time_without_zone=received_at is None and record.time is not None and not record.zoned,
        host=record.host or host,
        program=record.program or program,
        message=record.message,
        fields=fields or {},
    )
