"""The JSON records log shippers send, read by their own field names.

A record is matched against the shippers below in order: the first whose marker fields it has
says where its id, time, host, program, pid and message are (each a list of dotted paths, the
first present wins). A source's config can name other paths (`sources.<name>.fields`), which are
tried before the shipper's; Powertrip's own names (`time`, `host`, `program`, `message`...) are
tried after them. Everything else in the record stays available to JSON rules.

References for the field names:
- journald: systemd.journal-fields(7) and the Journal JSON Format
  (https://systemd.io/JOURNAL_EXPORT_FORMATS/); `journalctl -o json`, Vector's and Fluent Bit's
  journald inputs.
- Elastic Common Schema (https://www.elastic.co/guide/en/ecs/current/): Filebeat, Elastic Agent,
  Logstash with `ecs_compatibility`.
- Logstash without ECS: the `syslog` input and grok's `SYSLOGBASE` (`logsource`, `program`).
- rsyslog: the `%jsonmesg%` property (https://www.rsyslog.com/doc/configuration/properties.html)
  and the JSON templates of its documentation (`syslog-tag`).
- Vector: the `syslog` source's output (https://vector.dev/docs/reference/configuration/sources/
  syslog/).
- Fluent Bit and Fluentd: the `syslog` parser (`ident`, `host`, `pid`), Fluent Bit's HTTP output
  time key `date`.
- Splunk HTTP Event Collector (`event`, `time`, `host`, `sourcetype`).
- Graylog GELF 1.1 (`short_message`, `host`, `timestamp`).
- NXLog `to_json()` (`EventTime`, `Hostname`, `SourceName`, `Message`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from powertrip.jsontext import Unreadable
from powertrip.models import out_of_range
from powertrip.rules import lookup
from powertrip.sources import sample_of

Paths = tuple[str, ...]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FieldMap(BaseModel):
    """Where a source's JSON records keep what Powertrip reads (config `sources.<name>.fields`):
    for each, one dotted path or a list of them, tried before the shipper's own names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: list[str] = Field(default_factory=list, description="The record's unique id.")
    time: list[str] = Field(
        default_factory=list, description="When it happened: ISO 8601 or epoch (s, ms, µs, ns)."
    )
    host: list[str] = Field(default_factory=list, description="The machine it happened on.")
    program: list[str] = Field(default_factory=list, description="The program that logged it.")
    pid: list[str] = Field(default_factory=list, description="Its process id.")
    message: list[str] = Field(default_factory=list, description="The log message.")

    @field_validator("id", "time", "host", "program", "pid", "message", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


@dataclass(frozen=True)
class Shipper:
    name: str
    sends: str = field(compare=False)  # for the README: what sends this shape
    markers: Paths  # any of these present: a record of this shipper
    id: Paths = ()
    time: Paths = ()
    host: Paths = ()
    program: Paths = ()
    pid: Paths = ()
    message: Paths = ()


SHIPPERS: tuple[Shipper, ...] = (
    Shipper(
        "journald",
        "`journalctl -o json`, Vector's/Fluent Bit's journald inputs",
        markers=("__REALTIME_TIMESTAMP", "_HOSTNAME", "SYSLOG_IDENTIFIER", "MESSAGE", "_COMM"),
        id=("__CURSOR",),
        # journalctl shows the time the program logged (`_SOURCE_REALTIME_TIMESTAMP`) when the
        # entry has it, else when journald received it; microseconds since the epoch.
        time=("_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP", "timestamp", "date"),
        host=("_HOSTNAME", "host"),
        program=("SYSLOG_IDENTIFIER", "_COMM"),
        pid=("_PID", "SYSLOG_PID"),
        message=("MESSAGE", "message"),
    ),
    Shipper(
        "ecs",
        "Elastic Common Schema: Filebeat, Elastic Agent, Logstash (ECS mode)",
        markers=("ecs.version", "host.hostname", "host.name", "process.name", "log.syslog"),
        id=("event.id",),
        time=("@timestamp",),
        host=("log.syslog.hostname", "host.hostname", "host.name"),
        program=("process.name", "log.syslog.appname"),
        pid=("process.pid", "log.syslog.procid"),
        message=("message", "event.original"),
    ),
    Shipper(
        "rsyslog",
        "rsyslog `%jsonmesg%` and JSON templates",
        markers=("timereported", "syslogtag", "syslog-tag", "programname"),
        id=("uuid",),
        time=("timereported", "@timestamp", "timegenerated"),
        host=("hostname", "host"),
        program=("programname", "app-name", "syslogtag", "syslog-tag"),
        pid=("procid",),
        message=("msg", "message"),
    ),
    Shipper(
        "logstash",
        "Logstash `syslog` input and grok `SYSLOGBASE` (without ECS)",
        markers=("logsource",),
        time=("@timestamp",),
        host=("logsource", "host"),
        program=("program",),
        pid=("pid",),
        message=("message",),
    ),
    Shipper(
        "vector",
        "Vector `syslog` source",
        markers=("appname",),
        time=("timestamp",),
        host=("hostname", "host"),
        program=("appname",),
        pid=("procid",),
        message=("message",),
    ),
    Shipper(
        "fluent",
        "Fluent Bit and Fluentd `syslog` parser",
        markers=("ident",),
        time=("time", "date", "timestamp", "@timestamp"),
        host=("host", "hostname"),
        program=("ident",),
        pid=("pid",),
        message=("message",),
    ),
    Shipper(
        "splunk-hec",
        "Splunk HTTP Event Collector format",
        markers=("sourcetype",),
        time=("time",),
        host=("host",),
        message=("event", "event.message"),  # a text event, or an object with a message
    ),
    Shipper(
        "gelf",
        "Graylog GELF",
        markers=("short_message",),
        time=("timestamp",),
        host=("host",),
        program=("_application_name", "_program", "_appname"),
        pid=("_pid",),
        message=("short_message", "full_message"),
    ),
    Shipper(
        "nxlog",
        "NXLog `to_json()`",
        markers=("EventTime", "SourceName"),
        time=("EventTime", "EventReceivedTime"),
        host=("Hostname",),
        program=("SourceName",),
        pid=("ProcessID",),
        message=("Message",),
    ),
)
GENERIC = Shipper(
    "powertrip",
    "Powertrip's own shape (a script's curl)",
    markers=(),
    id=("id",),
    time=("time", "timestamp", "@timestamp", "date"),
    host=("host", "hostname"),
    program=("program",),
    pid=("pid",),
    message=("message", "log"),  # `log`: Docker's and CRI's JSON logs, as Fluent Bit tails them
)


def shipper_of(record: dict[str, Any]) -> Shipper:
    for shipper in SHIPPERS:
        if any(lookup(record, marker) is not None for marker in shipper.markers):
            return shipper
    return GENERIC


class FieldError(ValueError):
    """A field holds something that cannot be what it names; the message says which."""


@dataclass(frozen=True)
class Extracted:
    """What a shipper's record says about itself, in Powertrip's terms."""

    shipper: str
    id: str | None
    time: datetime | None
    host: str | None
    program: str | None
    pid: str | None
    message: str


def extract(record: dict[str, Any], mapped: FieldMap | None = None) -> Extracted:
    """Read a shipper's record; `FieldError` naming the field whose value cannot be read."""
    shipper = shipper_of(record)
    mapped = mapped or FieldMap()

    def first(name: str) -> tuple[str, Any]:
        # The config's names, the shipper's, then Powertrip's own (never the id: a shipper's
        # record may carry an unrelated `id`).
        fallback = () if name == "id" else getattr(GENERIC, name)
        for path in dict.fromkeys((*getattr(mapped, name), *getattr(shipper, name), *fallback)):
            value = lookup(record, path)
            if value in (None, "", [], {}):
                continue
            if name == "message" and isinstance(value, dict):
                continue  # a structured event (Splunk's `event` object): its fields are matched
            return path, value
        return name, None

    id_path, id_value = first("id")
    time_path, time_value = first("time")
    host_path, host_value = first("host")
    program_path, program_value = first("program")
    pid_path, pid_value = first("pid")
    message_path, message_value = first("message")
    return Extracted(
        shipper=shipper.name,
        id=_identifier(id_path, id_value),
        time=None if time_value is None else parse_time(time_value, time_path),
        host=_name(host_path, host_value),
        program=_program(program_path, program_value),
        pid=_identifier(pid_path, pid_value),
        message=_message(message_path, message_value),
    )


def _identifier(path: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError(f"{path}: expected text or a number, got {type(value).__name__}")
    return str(value)


def _name(path: str, value: Any) -> str | None:
    """A host: text, or an object naming it (ECS `host: {hostname, name}`)."""
    if isinstance(value, list) and value:
        value = value[0]  # journald repeats a field as a list
    if isinstance(value, dict):
        value = value.get("hostname") or value.get("name")
        if value is None:
            raise FieldError(f"{path}: an object without `hostname` or `name`")
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{path}: expected text, got {type(value).__name__}")
    return value or None


def _program(path: str, value: Any) -> str | None:
    name = _name(path, value)
    if name and path in ("syslogtag", "syslog-tag"):
        # A syslog tag (`sshd[123]:`) names the program before its pid.
        name = name.split("[", 1)[0].rstrip(":") or None
    return name


def _message(path: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and value and all(isinstance(b, int) for b in value):
        # journald writes a message that is not valid UTF-8 as an array of bytes.
        return bytes(b & 0xFF for b in value).decode("utf-8", errors="replace")
    if isinstance(value, list) and value and all(isinstance(s, str) for s in value):
        return value[0]
    if not isinstance(value, str):
        raise FieldError(f"{path}: expected text, got {type(value).__name__}")
    return value


# A number since the epoch is in the coarsest unit that keeps it under `_UNIT_LIMIT` (before
# the year 5138 in that unit): seconds, milliseconds, microseconds (journald), nanoseconds.
_EPOCH_UNITS = (1, 1_000, 1_000_000, 1_000_000_000)
_UNIT_LIMIT = 10**11
_EPOCH_NUMBER = re.compile(r"\d{1,30}(?:\.\d{1,12})?", re.ASCII)
_MAX_TIME_CHARS = 64  # the longest ISO 8601 time with nanoseconds and an offset is 35


def parse_time(value: Any, path: str = "time") -> datetime:
    """A time as shippers write it: ISO 8601 / RFC 3339 (a space for `T`, a comma for the dot,
    `Z` or an offset; no zone is UTC), or a number since the epoch whose size says the unit
    (seconds, milliseconds, microseconds as journald writes them, or nanoseconds), as a number
    or as text. Always between `EARLIEST_TIME` and `LATEST_TIME`, in constant time: a
    negative, non-finite or absurd number, or an absurd year, is a `FieldError` naming `path`.
    """
    if isinstance(value, bool):
        raise FieldError(f"{path}: not a time: {_shown(value)}")
    if isinstance(value, str) and _EPOCH_NUMBER.fullmatch(value.strip()):
        return _from_epoch(Decimal(value.strip()), path, value)
    if isinstance(value, int | float | Decimal):
        return _from_epoch(value, path, value)
    if isinstance(value, str) and len(value) <= _MAX_TIME_CHARS:
        text = value.strip().replace(",", ".", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit() and ":" not in text[-5:]:
            text = f"{text[:-2]}:{text[-2:]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise FieldError(f"{path}: not a time: {_shown(value)}") from exc
        if why := out_of_range(parsed):
            raise FieldError(f"{path}: {why}")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise FieldError(f"{path}: not a time: {_shown(value)}")


def _shown(value: Any) -> str:
    """A bad time as a reason quotes it: its JSON (text quoted), clipped."""
    if isinstance(value, Unreadable):
        return value.what
    text = repr(value) if isinstance(value, str) else sample_of(value)
    return text if len(text) <= _MAX_TIME_CHARS else text[: _MAX_TIME_CHARS - 1] + "…"


def _from_epoch(value: int | float | Decimal, path: str, given: Any) -> datetime:
    shown = f"{path}: not a time: {_shown(given)}"
    if isinstance(value, int) and value.bit_length() > 128:
        raise FieldError(f"{shown} (too large for any unit)")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise FieldError(shown)
    if number < 0:
        raise FieldError(f"{shown} (before 1970)")
    for unit in _EPOCH_UNITS:
        if number < _UNIT_LIMIT * unit:
            when = EPOCH + timedelta(microseconds=int(number * 1_000_000 / unit))
            if why := out_of_range(when):
                raise FieldError(f"{path}: {why}")
            return when
    raise FieldError(f"{shown} (too large for any unit)")
