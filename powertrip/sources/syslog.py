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

- BusyBox `syslogd` (OpenWrt, Buildroot, Alpine): `facility.level` after the host (`Nov 26
  10:01:21 router1 authpriv.info sshd[1401]: msg`), and OpenWrt's `logread`, a `ctime` stamp with
  the year after the time and no host (`Thu Nov 26 10:01:20 2026 authpriv.info sshd[1]: msg`);
  AIX `syslogd`'s `facility|alias:level` (`auth|security:info`) and its relayed lines (`loghost
  Message forwarded from host1: sshd[1]: msg`, the origin is the host); syslog-ng's
  `chain-hostnames(yes)` (`host1/relay1`: the first is the line's own host); runit's socklog
  (`2024-11-27_01:02:03.12345 auth.info: Nov 27 01:02:03 sshd[1]: msg`: the line inside, at
  svlogd's time).
- RFC 5424 with a nil APP-NAME and the tag in MSG (`<38>1 ... host1 - - - - sshd[1]: msg`).
- `journalctl -o with-unit`, which prints the systemd unit instead of the identifier: a system
  service's unit names its program (`sshd.service`, `sshd@3-192.0.2.5:22-...service`; Debian's
  `ssh.service` is sshd); any other unit (`session-3.scope`) is kept as the program, which no
  built-in rule matches.
- macOS `log show`: `--style syslog` (its host is always `localhost`: no host), `--style compact`
  (`2024-11-27 01:02:03.123 Df sshd[501:1a2b3] msg`, local time) and the default style
  (`2024-11-27 01:02:03.123456-0800 0x1a2b3 Default 0x0 501 0 sshd: msg`), without the sender
  image (`(libsystem_info.dylib)`) and `[subsystem:category]` the styles put before a message.
- Snare's `MSWinEventLog` records (tab-separated, with or without a syslog header): the event's
  provider is the program, its computer the host, its expanded string the message.
- rsyslog's `message repeated N times: [ msg]` is `msg` (the count is not kept).
- Windows OpenSSH (provider `OpenSSH`, every route: NXLog, Snare, Winlogbeat, Wazuh) writes
  `sshd: msg`: the program is the name before the colon (`raw_event`).

Not records (`is_annotation`): journalctl's `-- Boot <id> --`, `-- Reboot --`, `-- Logs begin at
... --`, `-- Journal begins at ... --` and `-- No entries --` lines and `log show`'s header and
summary lines, as saved with their output, each exactly as the tool writes it.
`logical_lines` joins a record's continuation lines (sudo's own log file wraps at 80 columns
with a 4-space indent; journalctl indents the rest of a multi-line message).

A message that starts with the CEE cookie (`@cee:{...}`, as sudo's `log_format=json` and
rsyslog's mmjsonparse write it; https://www.rsyslog.com/doc/configuration/modules/mmjsonparse.html)
also gives its JSON object to JSON rules.

Used by every place a provider hands over a raw line: CloudWatch, SNS, generic JSON, Wazuh,
backfill and `powertrip rules test`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from powertrip import jsontext
from powertrip.models import RawEvent, out_of_range, without_trailing_noise
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
# AIX syslogd relaying another host's line names that host: `Message forwarded from host1:`.
_FORWARDED = r"(?:\s+Message forwarded from (?P<origin>[^\s:\[\]]+):)?"
# BusyBox syslogd's `facility.level` and AIX's `facility|alias:level`, between host and tag.
_FACILITY = (
    r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|ntp|audit|alert"
    r"|clock|security|console|caa|aso|local[0-7])"
)
_LEVEL = r"(?:emerg|panic|alert|crit|err|error|warning|warn|notice|info|debug)"
_FACILITY_LEVEL_TAG = re.compile(rf"{_FACILITY}\.{_LEVEL}")
_FACILITY_LEVEL = rf"(?:\s+(?P<faclevel>{_FACILITY}(?:\|{_FACILITY})*[.:]{_LEVEL}))?"
# The tag: `sshd[123]:`, `sudo:`, `[sshd]:` (some BSDs), `[sshd]` (no colon, fail2ban gh-267).
_TAG = r"(?:\[(?P<bprog>[^\]\s]+)\]:?|(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]*)\])?:)"
_REST = _HOST + _FORWARDED + _FACILITY_LEVEL + r"\s+" + _TAG + r"\s?(?P<msg>.*)$"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
# BSD syslogd's and sysklogd's note, written without a tag: `Nov 27 01:00:01 host1 last message
# repeated 5 times` (macOS: `--- last message repeated 1 time ---`).
_UNTAGGED_REPEAT = re.compile(
    _PRI + r"(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+(?P<hms>\d{2}:\d{2}:\d{2})"
    r"(?:\s+(?P<host>[^\s:\[\]]+))?\s+(?P<msg>(?:--- )?last message repeated \d+ times?(?: ---)?)$"
)
_RFC3164 = re.compile(
    # The year before the month (`2024 Nov 27`, some network devices), between day and time
    # (`Nov 27 2024 01:02:03`, some templates) or after the time (`ctime`: OpenWrt's logread).
    _PRI + rf"(?:{_WEEKDAY}\s+)?(?:(?P<year_first>\d{{4}})\s+)?"
    r"(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+(?:(?P<year>\d{4})\s+)?"
    r"(?P<hms>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?(?:\s+(?P<year_last>\d{4})(?=\s))?" + _REST
)
_RFC3339 = re.compile(
    _PRI
    # `_` for the T: svlogd's `-tt` stamps (runit's socklog).
    + r"(?P<ts>\d{4}-\d{2}-\d{2}[T _]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    + _REST
)
_RFC5424 = re.compile(
    # TIMESTAMP with a space for the `T`, as some senders write it, is still one field.
    r"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\S*|\S+) "
    r"(?P<host>\S+) (?P<app>\S+) "
    r"(?P<procid>\S+) (?P<msgid>\S+) (?P<rest>.*)$"
)
# RFC 6587 octet counting: a TCP stream saved as is prefixes each message with its length.
_OCTET_COUNT = re.compile(r"^\d{1,7} (?=<\d{1,3}>)")
# journalctl -o with-unit prints the unit (`ssh.service[1]:`, a user's
# `user@1000.service/x.service`) where the other modes print the identifier; a unit name may
# hold `:` and `@`.
_UNIT_TYPES = "service|scope|slice|socket|mount|swap|timer|target|path|device|automount"
_UNIT = rf"[\w:.\\@-]+\.(?:{_UNIT_TYPES})"
_UNIT_TAG = rf"(?P<unit>{_UNIT}(?:/{_UNIT})?)(?:\[(?P<upid>\d+)\])?:"
# journalctl -o short-full / with-unit: `%a %Y-%m-%d %H:%M:%S %Z`.
_JOURNAL_FULL = re.compile(
    rf"{_WEEKDAY} (?P<date>\d{{4}}-\d{{2}}-\d{{2}}) (?P<hms>\d{{2}}:\d{{2}}:\d{{2}})"
    r"(?P<frac>\.\d{1,9})? (?P<zone>[A-Za-z]{1,6}|[+-]\d{2}(?::?\d{2})?)"
    + _HOST
    + rf"\s+(?:{_UNIT_TAG}|{_TAG})\s?(?P<msg>.*)$"
)
# sudo's own log file (`Defaults logfile`, sudo_logsrvd `log_type=file`): `time : user :
# [HOST=host :] TTY=... ; ... COMMAND=...`, the time `%h %e %T` with the year after it when
# `log_year` is set (sudo's plugins/sudoers/logging.c).
_SUDO_LOG = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d{2}:\d{2}:\d{2})(?: (?P<year_last>\d{4}))?"
    r" : (?P<user>[^\s:]+) : (?:HOST=(?P<host>[^\s:;]+) : )?(?P<msg>.*)$"
)
# Debian and Ubuntu name sshd's unit `ssh.service`.
_UNIT_PROGRAMS = {"ssh": "sshd"}
# macOS `log show --style syslog` prints `localhost` for every record's host.
_MACOS_SYSLOG = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}[+-]\d{4}  localhost ")
# macOS `log show --style compact`: local time without a zone, the type, `process[pid:thread]`.
_MACOS_COMPACT = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) (?:Df|Db|[A-Z]) +"
    r"(?P<prog>[^\[\]]+?)\[(?P<pid>\d+):[0-9a-fA-F]+\] (?P<msg>.*)$"
)
# macOS `log show` (default style): stamp with zone, thread, type, activity, pid, TTL, `process:`.
_MACOS_DEFAULT = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}[+-]\d{4}) +0x[0-9a-fA-F]+ +"
    r"(?:Default|Info|Debug|Error|Fault|Activity|Signpost|State) +0x[0-9a-fA-F]+ +"
    r"(?P<pid>\d+) +\d+ +(?P<prog>[^:]+?): (?P<msg>.*)$"
)
# What `log show` styles put before a message: the sender image and `[subsystem:category]`.
_MACOS_SENDER = re.compile(r"^(?:\([\w.+-]+\) )?(?:\[[\w.-]+:[\w.-]+\] )?")
# Snare for Windows (`MSWinEventLog` then tab-separated fields), with or without a syslog header.
_SNARE = re.compile(
    r"(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} +)?(?P<host>[^\s]+)?\s*"
    r"MSWinEventLog\t(?P<fields>.*)$"
)
# rsyslog's repeated-message reduction (`$RepeatedMsgReduction on`, Ubuntu's default).
_REPEATED = re.compile(r"^message repeated \d+ times: \[ ?(?P<msg>.*)\]$")
# A tag inside RFC 5424 MSG when APP-NAME is nil.
_INNER_TAG = re.compile(r"(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]*)\])?: ?(?P<msg>.*)$")
# Windows OpenSSH logs through the event provider `OpenSSH`, each message `<program>: <text>`
# (`sshd: Accepted ...`): the program is the one named there, on every route.
_TAGGING_PROVIDERS = frozenset({"OpenSSH"})
_PROVIDER_TAG = re.compile(r"(?P<prog>[\w.-]+): (?P<msg>.*)$", re.DOTALL)
# Lines saved with journalctl's and `log show`'s output that are no record, each exactly as the
# tool writes it: a line merely shaped like one (`-- BREAKGLASS user=x --`) is a record.
# journalctl (systemd's journalctl.c and logs-show.c): `-- Logs begin at <t>, end at <t>. --`
# (`-- Logs begin at <t>. --` with --follow; systemd 246 to 249 `-- Journal begins at <t>, ends at
# <t>. --`), `-- No entries --`, and between boots `-- Boot <boot id> --` (older: `-- Reboot --`);
# each <t> is `format_timestamp`'s `%a %Y-%m-%d %H:%M:%S %Z`.
_JOURNAL_STAMP = rf"{_WEEKDAY} \d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}} [\w+-]+"
_JOURNAL_MARKER = (
    rf"-- (?:Logs begin at {_JOURNAL_STAMP}(?:, end at {_JOURNAL_STAMP})?\."
    rf"|Journal begins at {_JOURNAL_STAMP}(?:, ends at {_JOURNAL_STAMP})?\."
    r"|No entries|Reboot|Boot [0-9a-f]{32}) --"
)
# macOS `log show` (log(1)): its header (`Filtering the log data using "<predicate>"`, `Skipping
# info and debug messages, pass --info and/or --debug to include.`, the column headings of the
# default, compact and syslog styles) and its closing summary (a rule of dashes, the `Log` and
# `Activity` counts).
_LOG_SHOW_LINE = (
    r'Filtering the log data using ".*"'
    r"|Skipping (?:info and debug messages, pass --info and/or --debug"
    r"|debug messages, pass --debug) to include\."
    r"|Timestamp +(?:Thread +Type +Activity +PID +TTL|Ty +Process\[PID:TID\]|\(process\)\[PID\])"
    r"|-{20,}"
    r"|Log +- Default: +\d+, Info: +\d+, Debug: +\d+, Error: +\d+, Fault: +\d+"
    r"|Activity +- Create: +\d+, Transition: +\d+, Actions: +\d+"
)
_ANNOTATION = re.compile(rf"(?:{_JOURNAL_MARKER}|{_LOG_SHOW_LINE})")
ANNOTATION = "a header or marker of saved journalctl or log show output: no record"
"""The reason a text body's annotation line (`is_annotation`) is answered a non-event."""
# journalctl -o short-unix: seconds since the epoch with microseconds.
_JOURNAL_UNIX = re.compile(r"(?P<epoch>\d{9,11}(?:\.\d{1,9})?)" + _REST)
# journalctl -o short-monotonic / short-delta: time since boot, no wall clock.
_JOURNAL_MONOTONIC = re.compile(r"\[\s*\d+\.\d+(?:\s+<\s*\d+\.\d+\s*[ *]?>)?\]" + _REST)
# Solaris/illumos prefix the message with the message id and facility: `[ID 800047 auth.info]`.
_SOLARIS_ID = re.compile(r"^\[ID \d+ [\w.]+\] ")
CEE_COOKIE = "@cee:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Zone abbreviations journalctl's short-full may print (tzdata's, for the zones in use since
# 2015) that name one offset wherever they are used, in minutes. tzdata gives CST (US Central,
# China, Cuba), CDT (US, Cuba), IST (India, Ireland, Israel) and PST (US Pacific, Philippines)
# to zones hours apart: a stamp with one of them, or with a name not listed, is read as a stamp
# without a zone (its wall clock as UTC, marked zone-less), like an RFC 3164 stamp. Zones tzdata
# names by their offset (`-03`, `+0530`) are read as that offset.
_ZONES = {
    name: timezone(timedelta(minutes=minutes))
    for name, minutes in {
        "UTC": 0,
        "GMT": 0,
        "UT": 0,
        "Z": 0,
        "WET": 0,
        "WEST": 60,
        "BST": 60,
        "CET": 60,
        "CEST": 120,
        "MET": 60,
        "MEST": 120,
        "WAT": 60,
        "CAT": 120,
        "SAST": 120,
        "EET": 120,
        "EEST": 180,
        "EAT": 180,
        "IDT": 180,
        "MSK": 180,
        "PKT": 300,
        "WIB": 420,
        "WITA": 480,
        "WIT": 540,
        "HKT": 480,
        "SGT": 480,
        "AWST": 480,
        "JST": 540,
        "KST": 540,
        "ACST": 570,
        "ACDT": 630,
        "AEST": 600,
        "AEDT": 660,
        "CHST": 600,
        "NZST": 720,
        "NZDT": 780,
        "SST": -660,
        "HST": -600,
        "HDT": -540,
        "AKST": -540,
        "AKDT": -480,
        "PDT": -420,
        "MST": -420,
        "MDT": -360,
        "EST": -300,
        "EDT": -240,
        "AST": -240,
        "ADT": -180,
        "NST": -210,
        "NDT": -150,
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
    one) in the year that puts them nearest `now`, at most a day after it (`_parse_3164_time`),
    since logs arrive after they are written. Stamps with a zone keep it; stamps without one are
    UTC.
    """
    return _parse(line, year, now, relayed=True)


def _parse(line: str, year: int | None, now: datetime | None, relayed: bool) -> SyslogRecord | None:
    """`parse_syslog`; `relayed`: a socklog line's inner line is read too (once, not nested)."""
    # Without a transport's trailing noise: the dialects anchor at the line's end.
    line = _OCTET_COUNT.sub("", without_trailing_noise(line), count=1)
    if "MSWinEventLog\t" in line and (found := _SNARE.match(line)):
        return _from_snare(found)
    if line.startswith("<") and (found := _RFC5424.match(line)):
        return _from_5424(found)
    if found := _MACOS_DEFAULT.match(line):
        return _from_macos(found, _parse_rfc3339(found["ts"]), zoned=True)
    if found := _MACOS_COMPACT.match(line):
        return _from_macos(found, _parse_rfc3339(found["ts"]), zoned=False)
    if found := _RFC3339.match(line):
        # svlogd's `-tt` stamps (`_` for the T) are UTC.
        zoned = _has_zone(found["ts"]) or "_" in found["ts"]
        record = _record(found, _parse_rfc3339(found["ts"]), zoned=zoned)
        if _MACOS_SYSLOG.match(line):
            return replace(record, host=None, message=_MACOS_SENDER.sub("", record.message))
        if relayed and record.program and _FACILITY_LEVEL_TAG.fullmatch(record.program):
            # socklog: `<stamp> auth.info: <the line as the program sent it>`.
            inner = _parse(record.message, year, now, relayed=False)
            if inner is not None and inner.program:
                return replace(inner, time=record.time, zoned=record.zoned)
        return record
    if (found := _RFC3164.match(line)) and found["mon"] in _MONTHS:
        return _record(found, _parse_3164_time(found, year, now), zoned=False)
    if (found := _UNTAGGED_REPEAT.match(line)) and found["mon"] in _MONTHS:
        facility, severity = _pri(found["pri"])
        when = _parse_3164_time(found, year, now)
        return SyslogRecord(
            when, found["host"], None, None, found["msg"], facility, severity, False
        )
    if (found := _SUDO_LOG.match(line)) and found["mon"] in _MONTHS:
        return SyslogRecord(
            time=_parse_3164_time(found, year, now),
            host=found["host"],
            program="sudo",
            pid=None,
            message=f"{found['user']} : {found['msg']}",  # as sudo writes it to syslog
            zoned=False,
        )
    if found := _JOURNAL_FULL.match(line):
        return _record(found, *_journal_full_time(found))
    if found := _JOURNAL_UNIX.match(line):
        return _record(found, _in_range(EPOCH + timedelta(seconds=float(found["epoch"]))))
    if found := _JOURNAL_MONOTONIC.match(line):
        return _record(found, None)
    return None


def is_annotation(line: str) -> bool:
    """Whether a line of saved log output is no record: exactly one of journalctl's markers
    (`-- Boot <id> --`, `-- Logs begin at ... --`, `-- No entries --`) or `log show`'s header and
    summary lines (`_ANNOTATION`)."""
    return bool(_ANNOTATION.fullmatch(line.strip()))


def is_continuation(line: str) -> bool:
    """Whether a line continues the record before it: indented, and no record of its own
    (sudo's log file wraps at 80 columns with a 4-space indent; journalctl indents the rest of a
    multi-line message)."""
    return line[:1] in (" ", "\t") and bool(line.strip()) and parse_syslog(line.strip()) is None


def logical_lines(
    lines: Iterable[tuple[int, str]], annotations: bool = False
) -> Iterator[tuple[int, str]]:
    """Numbered text lines as records: each with its continuation lines joined by a blank (as
    sudo wrapped it), numbered by its first line; annotations (`is_annotation`) left out, or
    passed on as they are with `annotations`. Blank lines and anything else are passed on as they
    are. Linear in the input."""
    first: int | None = None
    parts: list[str] = []
    for number, line in lines:
        if first is not None and is_continuation(line):
            parts.append(line.strip())
            continue
        if first is not None:
            yield first, " ".join(parts)
            first, parts = None, []
        if is_annotation(line):
            if annotations:
                yield number, line
            continue
        if line.strip():
            first, parts = number, [line.rstrip("\r\n")]
        else:
            yield number, line
    if first is not None:
        yield first, " ".join(parts)


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
    parts = found.groupdict()
    facility, severity = _pri(parts.get("pri"))
    program, pid = parts["prog"] or parts["bprog"], parts["pid"]
    if parts.get("unit"):
        program, pid = _unit_program(parts["unit"]), parts["upid"]
    # syslog-ng's chain-hostnames: `host1/relay1/...`, the line's own host first.
    host = parts.get("origin") or (parts["host"] or "").split("/", 1)[0] or None
    return SyslogRecord(
        zoned=zoned,
        time=when,
        host=host,
        program=program,
        pid=pid or None,
        message=_SOLARIS_ID.sub("", _message(parts["msg"])),
        facility=facility,
        severity=severity,
    )


def _unit_program(unit: str) -> str:
    """The program a `journalctl -o with-unit` unit names: a system service's name without its
    instance (`sshd@3-...service` is sshd); a user's unit or any other unit as it is."""
    name, dot, kind = unit.rpartition(".")
    if kind != "service" or "/" in unit or not dot:
        return unit
    base = name.split("@", 1)[0]
    return _UNIT_PROGRAMS.get(base, base)


def _from_macos(found: re.Match[str], when: datetime | None, zoned: bool) -> SyslogRecord:
    return SyslogRecord(
        time=when,
        host=None,  # `log show` never names the host it reads
        program=found["prog"],
        pid=found["pid"],
        message=_message(_MACOS_SENDER.sub("", found["msg"])),
        zoned=zoned,
    )


# Snare's fields after `MSWinEventLog`: criticality, log name, counter, time, event id, source
# (the provider), user, SID type, event type, computer, category, data, expanded message, ...
_SNARE_TIME, _SNARE_PROVIDER, _SNARE_COMPUTER, _SNARE_MESSAGE = 3, 5, 9, 12


def _from_snare(found: re.Match[str]) -> SyslogRecord | None:
    fields = found["fields"].split("\t")
    if len(fields) <= _SNARE_MESSAGE:
        return None
    when = None
    with suppress(ValueError):  # `Wed Nov 27 01:02:03 2024`, the Windows host's local time
        when = datetime.strptime(fields[_SNARE_TIME], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    return SyslogRecord(
        time=when,
        host=fields[_SNARE_COMPUTER] or found["host"],
        program=fields[_SNARE_PROVIDER] or None,
        pid=None,
        message=_message(fields[_SNARE_MESSAGE]),
        zoned=False,
    )


def _message(text: str) -> str:
    """MSG without the blanks some templates put before it (rsyslog's RFC 5424 template, sudo's
    padded user), without RFC 5424's UTF-8 byte order mark, and without rsyslog's `message
    repeated N times: [ ... ]` around it: rules anchor at its start. Without trailing noise
    (`models.without_trailing_noise`), which would hide the `]`."""
    text = without_trailing_noise(text.lstrip(" ").removeprefix("\ufeff").lstrip(" "))
    if text.startswith("message repeated ") and (found := _REPEATED.match(text)):
        return found["msg"].lstrip(" ")
    return text


def _from_5424(found: re.Match[str]) -> SyslogRecord:
    facility, severity = _pri(found["pri"])
    program, pid = _nil(found["app"]), _nil(found["procid"])
    message = _message(_skip_structured_data(found["rest"]))
    if program is None and (tagged := _INNER_TAG.match(message)):
        # No APP-NAME (`logger -n` without a tag, devices relaying RFC 3164 lines): the tag is
        # in MSG, as in RFC 3164.
        program, pid, message = tagged["prog"], pid or tagged["pid"] or None, tagged["msg"]
    return SyslogRecord(
        time=_parse_rfc3339(found["ts"]),
        zoned=_has_zone(found["ts"]),
        host=_nil(found["host"]),
        program=program,
        pid=pid,
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
    text = text.replace(" ", "T", 1).replace("_", "T", 1).replace(",", ".", 1)
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


# How far ahead of `now` a year-less stamp may be and still be this year's (or next year's, on
# New Year's Eve): a writer's clock or zone ahead of the reader's. A later stamp was written
# a year before.
YEARLESS_SLACK = timedelta(days=1)
# Years between two leap years are at most 8 (1896 to 1904, 2096 to 2104): so far back, at most,
# the year of a `Feb 29` stamp.
_LEAP_GAP = 8


def _parse_3164_time(
    found: re.Match[str], year: int | None, now: datetime | None
) -> datetime | None:
    """The UTC time of a matched RFC 3164 stamp (groups `mon`, `day`, `hms`, optional `frac` and
    a written year), None when it is no time (`Nov 31`, `25:00:00`, the year 0).

    RFC 3164 (section 4.1.2) writes no year: a written one wins, then `year`, else the year that
    puts the stamp nearest `now` (default: the clock) without being more than `YEARLESS_SLACK`
    after it: `Jan  1 00:00:01` read on 31 December is next year's, `Dec 31 23:59:59` read on
    1 January last year's, and `Feb 29` the latest leap year's.
    """
    parts = found.groupdict()
    month = _MONTHS[parts["mon"]]
    hour, minute, second = (int(p) for p in parts["hms"].split(":"))
    day = int(parts["day"])
    micro = _microseconds(parts.get("frac"))
    written = parts.get("year") or parts.get("year_first") or parts.get("year_last")
    if written:  # `Nov 27 2024 01:02:03`, `Thu Nov 26 10:01:20 2026`: as devices write it
        year = int(written)
    try:  # in a leap year, so that 29 February is a day
        datetime(2024 if year is None else year, month, day, hour, minute, second, micro)
    except ValueError:
        return None  # `Nov 31`, `25:00:00`, the year 0: no time
    if year is not None:
        return _in_range(datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC))
    now = now or datetime.now(UTC)
    latest = now + YEARLESS_SLACK
    # From the year after `latest`'s own: `now` may be in a zone behind UTC's calendar.
    for candidate in range(latest.year + 1, latest.year - _LEAP_GAP - 2, -1):
        try:
            when = datetime(candidate, month, day, hour, minute, second, micro, tzinfo=UTC)
        except ValueError:  # 29 February in a common year, or a year no datetime holds
            continue
        if when <= latest:
            return _in_range(when)
    return None


def _journal_full_time(found: re.Match[str]) -> tuple[datetime | None, bool]:
    """The stamp of a short-full line and whether its zone is known (`_ZONES`, or numeric)."""
    zone_text = found["zone"]
    if zone_text[0] in "+-":
        digits = zone_text[1:].replace(":", "").ljust(4, "0")  # tzdata's `-03` is -03:00
        zone_text = f"{zone_text[0]}{digits[:2]}:{digits[2:]}"
        stamp = f"{found['date']}T{found['hms']}{found['frac'] or ''}{zone_text}"
        return _parse_rfc3339(stamp), True
    try:
        naive = datetime.fromisoformat(f"{found['date']}T{found['hms']}")
    except ValueError:
        return None, True
    zone = _ZONES.get(zone_text.upper())
    when = _in_range(naive.replace(microsecond=_microseconds(found["frac"]), tzinfo=zone or UTC))
    return (when.astimezone(UTC) if when else None), zone is not None


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
    gives its JSON object to JSON rules, under the record's own `fields`, which win. A message
    of Windows OpenSSH's event provider (`OpenSSH`, `sshd: msg`) is its program's (`sshd`)."""
    if program in _TAGGING_PROVIDERS and (tagged := _PROVIDER_TAG.match(message)):
        program, message = tagged["prog"], tagged["msg"]
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
    framing: bool = True,
    now: datetime | None = None,
) -> RawEvent:
    """A provider's text record, with what the provider said about it winning over the text.

    When the provider named the program, `text` is that program's own message: any syslog
    framing inside it is message content (a line any local user can write with `logger`), never
    a claim about host or program. When it did not (a raw line, as CloudWatch Logs, SNS or a file
    shipper carries it), the line's framing fills in the program and whatever else the provider
    left empty: the provider's host and time (which has a year and a zone) still win.
    `framing=False`: the provider says the text is an application's own (it named the host or
    container it came from), so framing is never read from it either. `now`: when the text
    arrived, which tells a year-less stamp's year when the provider gave no time (default: the
    clock).

    Raises pydantic's `ValidationError` for a record `RawEvent` refuses (e.g. fields nested too
    deeply).
    """
    if received_at is not None and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)  # as `RawEvent` takes it
    text = text.rstrip("\r\n")
    record = None if program or not framing else parse_syslog(text, now=received_at or now)
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


_BSD_STAMP = re.compile(
    r"(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+(?:(?P<year>\d{4})\s+)?"
    r"(?P<hms>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?"
)


def parse_bsd_stamp(text: str, now: datetime | None = None) -> datetime | None:
    """An RFC 3164 stamp on its own (`Nov 27 01:02:03`, as syslog-ng's `DATE`, Logstash's
    `timestamp` and Fluent Bit's `Time_Keep` leave it in JSON): UTC in its own year or, without
    one, the year nearest `now`, as `parse_syslog` reads it; it has no zone.
    None when `text` is not one."""
    found = _BSD_STAMP.fullmatch(text.strip())
    if found is None or found["mon"] not in _MONTHS:
        return None
    try:
        return _parse_3164_time(found, None, now)
    except ValueError:  # a day or hour no calendar has
        return None
