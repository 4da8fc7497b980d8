"""Syslog framing, split into time, host, program, pid and message so rules see the message alone.

Dialects read (each line is tried against them in this order):
- RFC 5424 (`<38>1 2019-07-08T17:40:16Z host sshd 57915 - - msg`), also with rsyslog's
  `RSYSLOG_SyslogProtocol23Format`, which keeps the blank before MSG, and RFC 6587 octet counting
  (`123 <38>1 ...`) as TCP syslog is saved; https://www.rfc-editor.org/rfc/rfc5424,
  https://www.rfc-editor.org/rfc/rfc6587#section-3.4.1.
- RFC 3339-stamped lines: rsyslog's `RSYSLOG_FileFormat` (Ubuntu's default since 24.04),
  `journalctl -o short-iso` / `short-iso-precise`, syslog-ng's ISO stamps and macOS
  `log show --style syslog` (`2019-06-14T10:40:20.912+01:30 host sudo: msg`).
- RFC 3164 (`Nov 27 01:02:03 host sshd[123]: msg`; https://www.rfc-editor.org/rfc/rfc3164),
  also with fractional seconds (`journalctl -o short-precise`), with a year after the day (`Nov 27
  2024 01:02:03`, as some devices and templates write it) and without a host (`journalctl
  --no-hostname`).
- the other `journalctl` text modes (systemd's `logs-show.c`, journalctl(1) `--output`):
  `short-full` and `with-unit` (`Wed 2024-11-27 01:02:03 UTC host sshd[1]: msg`), `short-unix`
  (`1732669323.123456 host sshd[1]: msg`), `short-monotonic` and `short-delta`
  (`[ 8712.123456] host sshd[1]: msg`, which carry no wall-clock time).

A message that starts with the CEE cookie (`@cee:{...}`, as sudo's `log_format=json` and
rsyslog's mmjsonparse write it; https://www.rsyslog.com/doc/configuration/modules/mmjsonparse.html)
also gives its JSON object to JSON rules.

Used by every place a provider hands over a raw line: CloudWatch, SNS, generic JSON, Wazuh,
backfill and `powertrip rules test`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from powertrip import jsontext
from powertrip.models import RawEvent, out_of_range
from powertrip.sources import content_id

_MONTHS = {
    name: number
    for number, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        start=1,
    )
}
_PRI = r"(?:<(?P<pri>\d{1,3})>)?"
# The host, when there is one: never a bracket (that starts a tag) and never ending in a colon.
_HOST = r"(?:\s+(?P<host>(?!\[)[^\s:\[\]]+(?<!:)))??"
# The tag: `sshd[123]:`, `sudo:`, `[sshd]:` (some BSDs), `[sshd]` (no colon, fail2ban gh-267).
_TAG = r"(?:\[(?P<bprog>[^\]\s]+)\]:?|(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]*)\])?:)"
_REST = _HOST + r"\s+" + _TAG + r"\s?(?P<msg>.*)$"
_RFC3164 = re.compile(
    _PRI + r"(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+(?:(?P<year>\d{4})\s+)?"
    r"(?P<hms>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?" + _REST
)
_RFC3339 = re.compile(
    _PRI
    + r"(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    + _REST
)
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) "
    r"(?P<procid>\S+) (?P<msgid>\S+) (?P<rest>.*)$"
)
# RFC 6587 octet counting: a TCP stream saved as is prefixes each message with its length.
_OCTET_COUNT = re.compile(r"^\d{1,7} (?=<\d{1,3}>)")
# journalctl -o short-full / with-unit: `%a %Y-%m-%d %H:%M:%S %Z`.
_JOURNAL_FULL = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<date>\d{4}-\d{2}-\d{2}) (?P<hms>\d{2}:\d{2}:\d{2})"
    r"(?P<frac>\.\d{1,9})? (?P<zone>[A-Za-z]{1,6}|[+-]\d{2}:?\d{2})" + _REST
)
# journalctl -o short-unix: seconds since the epoch with microseconds.
_JOURNAL_UNIX = re.compile(r"(?P<epoch>\d{9,11}(?:\.\d{1,9})?)" + _REST)
# journalctl -o short-monotonic / short-delta: time since boot, no wall clock.
_JOURNAL_MONOTONIC = re.compile(r"\[\s*\d+\.\d+(?:\s+<\s*\d+\.\d+\s*[ *]?>)?\]" + _REST)
# Solaris/illumos prefix the message with the message id and facility: `[ID 800047 auth.info]`.
_SOLARIS_ID = re.compile(r"^\[ID \d+ [\w.]+\] ")
CEE_COOKIE = "@cee:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Zone names journalctl's short-full may print that mean one offset wherever they are used.
# Ambiguous ones (CST, IST, BST, AST...) are read as UTC, like RFC 3164 stamps, which have none.
_ZONES = {
    name: timezone(timedelta(minutes=minutes))
    for name, minutes in {
        "UTC": 0,
        "GMT": 0,
        "UT": 0,
        "Z": 0,
        "WET": 0,
        "WEST": 60,
        "CET": 60,
        "CEST": 120,
        "EET": 120,
        "EEST": 180,
        "MSK": 180,
        "JST": 540,
        "KST": 540,
        "HKT": 480,
        "SGT": 480,
        "AWST": 480,
        "ACST": 570,
        "ACDT": 630,
        "AEST": 600,
        "AEDT": 660,
        "NZST": 720,
        "NZDT": 780,
        "HST": -600,
        "AKST": -540,
        "AKDT": -480,
        "PST": -480,
        "PDT": -420,
        "MST": -420,
        "MDT": -360,
        "CDT": -300,
        "EST": -300,
        "EDT": -240,
    }.items()
}


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
    written. Stamps with a zone keep it; stamps without one are UTC.
    """
    line = _OCTET_COUNT.sub("", line.rstrip("\r\n"), count=1)
    if line.startswith("<") and (found := _RFC5424.match(line)):
        return _from_5424(found)
    if found := _RFC3339.match(line):
        return _record(found, _parse_rfc3339(found["ts"]), zoned=_has_zone(found["ts"]))
    if (found := _RFC3164.match(line)) and found["mon"] in _MONTHS:
        return _record(found, _parse_3164_time(found, year, now), zoned=False)
    if found := _JOURNAL_FULL.match(line):
        return _record(found, _journal_full_time(found))
    if found := _JOURNAL_UNIX.match(line):
        return _record(found, _in_range(EPOCH + timedelta(seconds=float(found["epoch"]))))
    if found := _JOURNAL_MONOTONIC.match(line):
        return _record(found, None)
    return None


def parse_syslog_line(
    line: str,
    source: str,
    provider_id: str | None = None,
    year: int | None = None,
    now: datetime | None = None,
) -> RawEvent | None:
    """A raw line (a log file, a backfill) as the `RawEvent` a source adapter would produce; None
    without syslog framing.

    Without a provider id the record is named by its content and its own time (`content_id`), so
    the same line read twice (a retried delivery, an overlapping backfill) is the same event and
    the same text at another time is another. Raises `ValueError` for a record `RawEvent`
    refuses (its reason says which part).
    """
    record = parse_syslog(line, year, now)
    if record is None:
        return None
    text = line.rstrip("\r\n")
    return raw_event(
        source,
        provider_id or content_id(text, record.time, now),
        record.time,
        record.host,
        record.program,
        record.message,
        {},
        time_without_zone=record.time is not None and not record.zoned,
    )


def _has_zone(stamp: str) -> bool:
    return bool(re.search(r"(?:Z|[+-]\d{2}:?\d{2})$", stamp))


def _record(found: re.Match[str], when: datetime | None, zoned: bool = True) -> SyslogRecord:
    facility, severity = _pri(found.groupdict().get("pri"))
    return SyslogRecord(
        zoned=zoned,
        time=when,
        host=found["host"],
        program=found["prog"] or found["bprog"],
        pid=found["pid"] or None,
        message=_SOLARIS_ID.sub("", _message(found["msg"])),
        facility=facility,
        severity=severity,
    )


def _message(text: str) -> str:
    """MSG without the blanks some templates put before it (rsyslog's RFC 5424 template, sudo's
    padded user) and without RFC 5424's UTF-8 byte order mark: rules anchor at its start."""
    return text.lstrip(" ").removeprefix("\ufeff").lstrip(" ")


def _from_5424(found: re.Match[str]) -> SyslogRecord:
    facility, severity = _pri(found["pri"])
    return SyslogRecord(
        time=_parse_rfc3339(found["ts"]),
        host=_nil(found["host"]),
        program=_nil(found["app"]),
        pid=_nil(found["procid"]),
        message=_message(_skip_structured_data(found["rest"])),
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
    text = text.replace(" ", "T", 1).replace(",", ".", 1)
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
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _in_range(when: datetime) -> datetime | None:
    """`when`, or None (no time of its own) when it cannot be a record's time: a stamp in the
    framing that is no time (`Nov 31`, `25:00:00`, the year 9999 in a far zone) leaves the
    record to its provider's time or its arrival, like a stamp that does not parse."""
    return None if out_of_range(when) else when


def _microseconds(fraction: str | None) -> int:
    """`.123` → 123000: a fraction of a second written with up to nine digits."""
    return int((fraction or ".0")[1:7].ljust(6, "0"))


def _parse_3164_time(
    found: re.Match[str], year: int | None, now: datetime | None
) -> datetime | None:
    month = _MONTHS[found["mon"]]
    hour, minute, second = (int(p) for p in found["hms"].split(":"))
    day = int(found["day"])
    micro = _microseconds(found["frac"])
    if found["year"]:  # `Nov 27 2024 01:02:03`, as some devices and templates write it
        year = int(found["year"])
    try:  # in a leap year, so that 29 February is a day
        datetime(2024 if year is None else year, month, day, hour, minute, second, micro)
    except ValueError:
        return None  # `Nov 31`, `25:00:00`, the year 0: no time
    if year is not None:
        return _in_range(datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC))
    now = now or datetime.now(UTC)
    for candidate in (now.year, now.year - 1):
        try:
            when = datetime(candidate, month, day, hour, minute, second, micro, tzinfo=UTC)
        except ValueError:  # 29 February in a non-leap year
            continue
        # A day of slack for clocks and zones: later than that, it was written last year.
        if when <= now + timedelta(days=1):
            return when
    return datetime(now.year - 1, month, min(day, 28), hour, minute, second, micro, tzinfo=UTC)


def _journal_full_time(found: re.Match[str]) -> datetime | None:
    zone_text = found["zone"]
    if zone_text[0] in "+-":
        zone_text = zone_text if ":" in zone_text else f"{zone_text[:3]}:{zone_text[3:]}"
        return _parse_rfc3339(f"{found['date']}T{found['hms']}{found['frac'] or ''}{zone_text}")
    try:
        naive = datetime.fromisoformat(f"{found['date']}T{found['hms']}")
    except ValueError:
        return None
    zone = _ZONES.get(zone_text.upper(), UTC)
    zoned = _in_range(naive.replace(microsecond=_microseconds(found["frac"]), tzinfo=zone))
    return zoned.astimezone(UTC) if zoned else None


def cee_fields(message: str) -> dict[str, Any] | None:
    """The JSON object after a CEE cookie (`@cee: {...}`), or None when there is none or it is
    not a JSON object (the message is then matched as text only)."""
    if not message.startswith(CEE_COOKIE):
        return None
    try:
        value = jsontext.loads(message[len(CEE_COOKIE) :])
    except jsontext.JsonError:
        return None
    # A number no Python value stands for: the message is matched as text, as when no JSON.
    return value if isinstance(value, dict) and not jsontext.unreadable(value) else None


def raw_event(
    source: str,
    provider_id: str,
    time: datetime | None,
    host: str | None,
    program: str | None,
    message: str,
    fields: dict[str, Any],
    *,
    time_without_zone: bool = False,
) -> RawEvent:
    """A `RawEvent` of a record already split into its parts; a CEE message (`@cee:{...}`) also
    gives its JSON object to JSON rules, under the record's own `fields`, which win."""
    cee = cee_fields(message)
    if cee:
        # The provider's own fields win: content never overrides what the transport said.
        fields = {**cee, **fields}
    return RawEvent(
        source=source,
        provider_id=provider_id,
        received_at=time,
        time_without_zone=time_without_zone,
        host=host or None,
        program=program or None,
        message=message,
        fields=fields,
    )


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
    """A provider's text record, with what the provider said about it winning over the text.

    When the provider named the program, `text` is that program's own message: any syslog
    framing inside it is message content (a line any local user can write with `logger`), never
    a claim about host or program. When it did not (a raw line, as CloudWatch Logs, SNS or a file
    shipper carries it), the line's framing fills in the program and whatever else the provider
    left empty: the provider's host and time (which has a year and a zone) still win.

    Raises pydantic's `ValidationError` for a record `RawEvent` refuses (e.g. fields nested too
    deeply).
    """
    if received_at is not None and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)  # as `RawEvent` takes it
    text = text.rstrip("\r\n")
    record = None if program else parse_syslog(text, now=received_at)
    if record is None:
        message = _message(text)
        return raw_event(source, provider_id, received_at, host, program, message, fields or {})
    return raw_event(
        source,
        provider_id,
        received_at or record.time,
        host or record.host,
        record.program,
        record.message,
        fields or {},
        time_without_zone=received_at is None and record.time is not None and not record.zoned,
    )
