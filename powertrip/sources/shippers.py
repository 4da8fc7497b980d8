"""The JSON records log shippers send, read by their own field names.

A record is matched against the shippers below in order: the first whose marker fields it has
says where its id, time, host, program, pid and message are (each a list of dotted paths, the
first present wins; a path finds nested objects, flat dotted keys such as `{"host.name": ...}`,
or a mix). A source's config can name other paths (`sources.<name>.fields`), which are tried
before the shipper's; Powertrip's own names (`time`, `host`, `program`, `message`...) are tried
after them, in any letter case. Everything else in the record stays available to JSON rules.

Batch envelopes (a Loki push or query answer, an OTLP/JSON export request) hold many records:
`batch_records` gives one record per log line, with the labels or resource they share.

What a record says about itself is not all equally trusted:
- **The program.** A syslog identifier (journald's `SYSLOG_IDENTIFIER`, `logger -t`) is whatever
  the sending process chose. Where the shipper also carries what the kernel told journald about
  that process (`_EXE`, `_COMM`), those win: a record whose identifier names another program is
  the program that really logged it (`logger`), and one logged by an executable outside the
  system's own directories (`/usr`, `/bin`, `/sbin`, `/lib*`, `/opt`, the Nix/Guix stores,
  `/snap`), where any user may have put it (`/home`, `/tmp`, `/run/lock`...), is named by that
  path.
- **Syslog framing inside a message** (`Nov 30 05:00:00 bastion sshd[999]: ...`) is read only
  from a record that names no program, no host and no container (a bare line), or from a line a
  syslog daemon wrote to one of `FieldMap.syslog_files` (the system's own logs by default, or a
  central syslog server's files): an application's output that looks like syslog is the
  application's text, never a claim about another program or host.
- **A time without a zone** (NXLog's `EventTime`, a naive ISO string) is the writer's local time:
  read as UTC and marked zone-less, like an RFC 3164 stamp.

References for the field names:
- journald: systemd.journal-fields(7) and the Journal JSON Format
  (https://systemd.io/JOURNAL_EXPORT_FORMATS/); `journalctl -o json`, Vector's journald source,
  Fluent Bit's `systemd` input (also with `Strip_Underscores` and `Lowercase`).
- syslog-ng `format-json` with the `syslog-ng` scope (`PROGRAM`, `HOST`, `ISODATE`, `MESSAGE`;
  https://syslog-ng.github.io/admin-guide/110_Template_and_rewrite/000_Customize_message_format/
  004_Macros_of_syslog-ng).
- Elastic Common Schema (https://www.elastic.co/guide/en/ecs/current/): Filebeat, Elastic Agent,
  Logstash with `ecs_compatibility`; Filebeat's journald input (`journald.process.*`,
  `syslog.identifier`).
- Logstash without ECS: the `syslog` input and grok's `SYSLOGBASE` (`logsource`, `program`).
- rsyslog: the `%jsonmesg%` property (https://www.rsyslog.com/doc/configuration/properties.html),
  `RSYSLOG_StdJSONFmt` (omhttp's and omelasticsearch's default: `fromhost`, no program) and the
  JSON templates of its documentation and the web (`syslog-tag`; `sysloghost`, `programname`).
- Vector: the `syslog` and `file` sources (https://vector.dev/docs/reference/configuration/
  sources/).
- Fluent Bit and Fluentd: the `syslog` parser (`ident`, `host`, `pid`), Fluent Bit's HTTP output
  time key `date`; Docker/CRI logs (`log`, `stream`) and the `kubernetes` filter.
- Datadog: log attributes (`ddsource`, `hostname`, `service`, `syslog.*`; https://docs.
  datadoghq.com/logs/log_configuration/attributes_naming_convention/) and the log export shape
  (`content.*`).
- Splunk HTTP Event Collector (`event` as text or an object, `time`, `host`, `source`,
  `sourcetype`; https://docs.splunk.com/Documentation/Splunk/latest/Data/FormateventsforHTTPEventCollector).
- Graylog GELF 1.1 (`short_message`, `host`, `timestamp`).
- NXLog `to_json()` (`EventTime`, `Hostname`, `SourceName`, `Message`, `FileName`).
- Grafana Loki: the push API's JSON body (`streams[].stream`, `values[][ts_ns, line]`,
  https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs), query answers
  (`data.result`) and `logcli --output=jsonl` (`labels`, `line`, `timestamp`).
- OpenTelemetry OTLP/JSON logs (`resourceLogs[].scopeLogs[].logRecords[]`, AnyValue encoding;
  https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), the collector's syslog
  receiver attributes (`hostname`, `appname`, `proc_id`) and semantic conventions (`host.name`,
  `service.name`, `k8s.*`, `container.*`, `log.file.path`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from powertrip.jsontext import Unreadable, decimal
from powertrip.models import out_of_range
from powertrip.sources import sample_of
from powertrip.sources.syslog import parse_bsd_stamp

Paths = tuple[str, ...]
Marker = str | tuple[str, ...]  # a path, or paths that must all be present
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The files syslog daemons write on the system itself (Debian/Ubuntu, RHEL/Fedora, the BSDs), and
# their rotations: their lines' framing was written by the daemon.
SYSLOG_FILES = (
    "/var/log/auth.log*",
    "/var/log/secure*",
    "/var/log/messages*",
    "/var/log/syslog*",
    "/var/log/authlog*",
)
# Only root writes here (the FHS's and the Nix/Guix/snap stores): an executable elsewhere (a home
# under any name, /tmp, /run/lock, /var/crash, /dev/mqueue, a memfd...) may have been put there by
# any local user, so what it logs names no program. A list of the trusted places, not of the
# writable ones: a writable place nobody thought of is then distrusted, not believed.
_SYSTEM_DIRECTORIES = (
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib32/",
    "/lib64/",
    "/libx32/",
    "/opt/",
    "/nix/store/",
    "/gnu/store/",
    "/snap/",
)
# The kernel keeps a process name (`comm`, journald's `_COMM`) to this many characters.
_COMM_LENGTH = 15
_DELETED = " (deleted)"  # /proc/<pid>/exe of a binary replaced since (an upgrade)


class FieldMap(BaseModel):
    """Where a source's JSON records keep what Powertrip reads (config `sources.<name>.fields`):
    for each, one dotted path or a list of them, tried before the shipper's own names; and which
    files' lines are syslog text (`syslog_files`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: list[str] = Field(default_factory=list, description="The record's unique id.")
    time: list[str] = Field(
        default_factory=list, description="When it happened: ISO 8601 or epoch (s, ms, µs, ns)."
    )
    host: list[str] = Field(default_factory=list, description="The machine it happened on.")
    program: list[str] = Field(default_factory=list, description="The program that logged it.")
    pid: list[str] = Field(default_factory=list, description="Its process id.")
    message: list[str] = Field(default_factory=list, description="The log message.")
    file: list[str] = Field(
        default_factory=list, description="The path of the file the shipper read it from."
    )
    syslog_files: list[str] = Field(
        default_factory=lambda: list(SYSLOG_FILES),
        description="Files a syslog daemon writes (glob patterns; `*` matches `/` too): a "
        "record read from one is that file's line, whose framing names the program and the "
        "host, which wins over the shipper's own host (Filebeat or Vector on a central syslog "
        "server reads other hosts' lines). Default: the system's own syslog files; listing "
        "files replaces the default.",
    )

    @field_validator("id", "time", "host", "program", "pid", "message", "file", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def is_syslog_file(self, path: str | None) -> bool:
        """Whether a record read from `path` is a line a syslog daemon wrote."""
        return path is not None and any(fnmatchcase(path, glob) for glob in self.syslog_files)


DEFAULT_FIELDS = FieldMap()


@dataclass(frozen=True)
class Shipper:
    name: str
    sends: str = field(compare=False)  # for the README: what sends this shape
    markers: tuple[Marker, ...]  # any of these present: a record of this shipper
    id: Paths = ()
    time: Paths = ()
    host: Paths = ()
    program: Paths = ()  # what the record claims (a syslog identifier)
    pid: Paths = ()
    message: Paths = ()
    # What the kernel told journald about the logging process, which it cannot choose: its name
    # (`_COMM`) and its executable (`_EXE`). Either wins over a `program` that disagrees.
    process: Paths = ()
    executable: Paths = ()
    file: Paths = ()  # the file the shipper read the record from


def _journal(*names: str) -> Paths:
    """A journal field as journald, and Fluent Bit with `Lowercase` and/or `Strip_Underscores`,
    name it: `_HOSTNAME`, `_hostname`, `HOSTNAME`, `hostname`."""
    variants: list[str] = []
    for name in names:
        once = name.removeprefix("_")  # Fluent Bit strips one underscore
        bare = name.lstrip("_")
        variants += [name, name.lower(), once, once.lower(), bare, bare.lower()]
    return tuple(dict.fromkeys(variants))


SHIPPERS: tuple[Shipper, ...] = (
    Shipper(
        "journald",
        "`journalctl -o json`, Vector's journald source, Fluent Bit's `systemd` input",
        # Not `MESSAGE` alone (syslog-ng writes it too), nor `hostname` (everyone does).
        markers=(
            "__REALTIME_TIMESTAMP",
            "__CURSOR",
            "_HOSTNAME",
            "_hostname",
            "_COMM",
            "_comm",
            "_EXE",
            "_TRANSPORT",
            "_SYSTEMD_UNIT",
            *_journal("_BOOT_ID", "_MACHINE_ID", "SYSLOG_IDENTIFIER"),
        ),
        id=("__CURSOR",),
        # journalctl shows the time the program logged (`_SOURCE_REALTIME_TIMESTAMP`) when the
        # entry has it, else when journald received it; microseconds since the epoch.
        time=(
            *_journal("_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"),
            "timestamp",
            "date",
        ),
        host=(*_journal("_HOSTNAME"), "host"),
        program=_journal("SYSLOG_IDENTIFIER"),
        pid=_journal("_PID", "SYSLOG_PID"),
        message=_journal("MESSAGE"),
        process=_journal("_COMM"),
        executable=_journal("_EXE"),
    ),
    Shipper(
        "syslog-ng",
        "syslog-ng `format-json` (`--scope syslog-ng`, `--scope rfc5424`)",
        markers=(
            "PROGRAM",
            "ISODATE",
            "HOST_FROM",
            "SOURCEIP",
            "LEGACY_MSGHDR",
            ("HOST", "MESSAGE"),
        ),
        time=("ISODATE", "R_ISODATE", "S_ISODATE", "R_UNIXTIME", "UNIXTIME"),
        host=("HOST",),
        program=("PROGRAM",),
        pid=("PID",),
        message=("MESSAGE", "MSG"),
        # Its `systemd-journal()` source keeps journald's fields under `.journald.`, which
        # format-json writes as `_journald` (`.journald` with `--leave-initial-dot`).
        process=("_journald._COMM", ".journald._COMM"),
        executable=("_journald._EXE", ".journald._EXE"),
        file=("FILE_NAME",),
    ),
    Shipper(
        "ecs",
        "Elastic Common Schema: Filebeat (also its journald input), Elastic Agent, Logstash (ECS)",
        markers=("ecs.version", "host.hostname", "host.name", "process.name", "log.syslog"),
        id=("event.id",),
        time=("@timestamp",),
        host=("log.syslog.hostname", "host.hostname", "host.name"),
        # Winlogbeat names a Windows event's provider (`OpenSSH`) in `winlog.provider_name`.
        program=(
            "process.name",
            "log.syslog.appname",
            "syslog.identifier",
            "log.syslog.identifier",
            "winlog.provider_name",
        ),
        pid=(
            "process.pid",
            "log.syslog.procid",
            "journald.pid",
            "syslog.pid",
            "winlog.process.pid",
        ),
        message=("message", "event.original"),
        process=("journald.process.name",),
        executable=("journald.process.executable",),
        file=("log.file.path",),
    ),
    Shipper(
        "rsyslog",
        "rsyslog `%jsonmesg%`, `RSYSLOG_StdJSONFmt` and JSON templates",
        markers=("timereported", "syslogtag", "syslog-tag", "programname", "fromhost"),
        id=("uuid",),
        time=("timereported", "@timestamp", "timegenerated"),
        # `fromhost` is the host rsyslog received it from (a relay), when the line named none.
        host=("hostname", "sysloghost", "host", "fromhost"),
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
        file=("path",),
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
        "datadog",
        "Datadog: log forwarding, archives and the log export (`content`)",
        markers=("ddsource", "ddtags", "content.service", "content.attributes"),
        id=("id",),
        time=("timestamp", "date", "content.timestamp", "@timestamp"),
        host=(
            "syslog.hostname",
            "attributes.syslog.hostname",
            "content.attributes.syslog.hostname",
            "hostname",
            "host",
            "content.host",
        ),
        program=(
            "syslog.appname",
            "attributes.syslog.appname",
            "content.attributes.syslog.appname",
            "service",
            "content.service",
        ),
        pid=("syslog.procid", "attributes.syslog.procid", "content.attributes.syslog.procid"),
        message=("message", "content.message"),
    ),
    Shipper(
        "splunk-hec",
        "Splunk HTTP Event Collector format",
        markers=("sourcetype", ("event", "host"), ("event", "time")),
        time=("time", "event.timestamp", "event.time"),
        host=("event.hostname", "event.host", "host"),
        program=("event.appname", "event.program", "event.ident", "event.process.name"),
        pid=("event.procid", "event.pid"),
        message=("event", "event.message"),  # a text event, or an object with a message
        file=("source",),
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
        file=("FileName",),
    ),
    Shipper(
        "loki",
        "Grafana Loki: Promtail/Alloy push, query answers, `logcli --output=jsonl`",
        markers=(("labels", "line"),),
        time=("timestamp",),
        host=("labels.host", "labels.hostname", "labels.nodename"),
        program=("labels.app", "labels.appname", "labels.program", "labels.syslog_identifier"),
        pid=("labels.pid",),
        message=("line",),
        process=("labels.comm",),
        executable=("labels.exe",),
        file=("labels.filename", "labels.path"),
    ),
    Shipper(
        "otlp",
        "OpenTelemetry OTLP/JSON logs (collector `otlphttp` exporter, `file` exporter)",
        markers=(("resource", "body"), "timeUnixNano", "observedTimeUnixNano"),
        # An OTLP time of 0 means "unknown" (skipped as no time).
        time=("timeUnixNano", "observedTimeUnixNano"),
        host=(
            "attributes.hostname",
            "attributes.host.name",
            "resource.host.name",
            "resource.host.hostname",
        ),
        program=(
            "attributes.appname",
            "attributes.process.executable.name",
            "resource.process.executable.name",
            "resource.service.name",
        ),
        pid=("attributes.proc_id", "attributes.process.pid", "resource.process.pid"),
        message=("attributes.message", "body"),
        file=("attributes.log.file.path",),
    ),
)
GENERIC = Shipper(
    "powertrip",
    "Powertrip's own shape (a script's curl)",
    markers=(),
    id=("id",),
    time=("time", "timestamp", "@timestamp", "date"),
    host=("host", "hostname", "kubernetes.host"),
    program=("program",),
    pid=("pid",),
    message=("message", "log"),  # `log`: Docker's and CRI's JSON logs, as Fluent Bit tails them
    file=("file", "filename", "path"),
)
# Where shippers say a record is a container's output (its stdout is the application's text).
CONTAINER_PATHS: Paths = (
    "container.name",
    "container.id",
    "container_name",
    "container_id",
    "_container_name",
    "_container_id",
    *_journal("CONTAINER_NAME", "CONTAINER_ID"),
    "kubernetes.pod_name",
    "kubernetes.container_name",
    "k8s.pod.name",
    "labels.container",
    "labels.container_name",
    "labels.pod",
    "resource.container.name",
    "resource.container.id",
    "resource.k8s.pod.name",
    "resource.k8s.container.name",
)
# Docker's and CRI's `stream` (Fluent Bit's `docker` and `cri` parsers): a process's output.
_CONTAINER_STREAMS = ("stdout", "stderr")


def find(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested objects and lists, where any run of parts may also be one flat
    dotted key (`{"host.name": ...}`, `{"resource": {"k8s.pod.name": ...}}`); None where the
    path does not exist. The longest key wins."""
    if isinstance(data, dict):
        for key, rest in _splits(path):
            if key in data:
                found = data[key] if rest is None else find(data[key], rest)
                if found is not None:
                    return found
        return None
    if isinstance(data, list):
        head, _, rest = path.partition(".")
        if head.isdigit() and int(head) < len(data):
            return find(data[int(head)], rest) if rest else data[int(head)]
    return None


@lru_cache(maxsize=4096)
def _splits(path: str) -> tuple[tuple[str, str | None], ...]:
    """The ways to read `path` as a first key and the rest, the longest key first."""
    parts = path.split(".")
    return tuple(
        (".".join(parts[:end]), ".".join(parts[end:]) or None) for end in range(len(parts), 0, -1)
    )


def _has(record: dict[str, Any], marker: Marker) -> bool:
    paths = (marker,) if isinstance(marker, str) else marker
    return all(find(record, path) is not None for path in paths)


def _top_keys(path: str) -> list[str]:
    """The keys a record holding `path` has at its top level, one of which is enough."""
    return [key for key, _ in _splits(path)]


# Which shippers a top-level key can be a marker of: a record is checked against those only.
_MARKED_BY: dict[str, set[int]] = {}
for _position, _shipper in enumerate(SHIPPERS):
    for _marker in _shipper.markers:
        for _key in _top_keys(_marker if isinstance(_marker, str) else _marker[0]):
            _MARKED_BY.setdefault(_key, set()).add(_position)
_CONTAINER_KEYS = frozenset(key for path in CONTAINER_PATHS for key in _top_keys(path))


def shipper_of(record: dict[str, Any]) -> Shipper:
    possible = sorted({p for key in record for p in _MARKED_BY.get(key, ())})
    for shipper in (SHIPPERS[position] for position in possible):
        if any(_has(record, marker) for marker in shipper.markers):
            return shipper
    return GENERIC


def names_container(record: dict[str, Any]) -> bool:
    """Whether a shipper says the record is a container's (or any process's) output: Docker,
    CRI, Kubernetes metadata, or the output `stream` it was read from."""
    if not _CONTAINER_KEYS.isdisjoint(record) and any(
        find(record, path) not in (None, "", [], {}) for path in CONTAINER_PATHS
    ):
        return True
    return record.get("stream") in _CONTAINER_STREAMS


class FieldError(ValueError):
    """A field holds something that cannot be what it names; the message says which."""


@dataclass(frozen=True)
class Extracted:
    """What a shipper's record says about itself, in Powertrip's terms. `zoned`: `time` had a
    zone (or was a number since the epoch); without one it was read as UTC. `file`: the file the
    shipper read it from; `container`: a container's output."""

    shipper: str
    id: str | None
    time: datetime | None
    host: str | None
    program: str | None
    pid: str | None
    message: str
    zoned: bool = True
    file: str | None = None
    container: bool = False


def extract(record: dict[str, Any], mapped: FieldMap | None = None) -> Extracted:
    """Read a shipper's record; `FieldError` naming the field whose value cannot be read."""
    shipper = shipper_of(record)
    mapped = mapped or DEFAULT_FIELDS
    folded: dict[str, str] | None = None

    def candidates(name: str) -> Iterator[tuple[str, Any]]:
        # The config's names, the shipper's, then Powertrip's own (never the id: a shipper's
        # record may carry an unrelated `id`), then those in another letter case (`Host`).
        nonlocal folded
        own: Paths = () if name == "id" else getattr(GENERIC, name)
        for path in _paths(tuple(getattr(mapped, name)), getattr(shipper, name), own):
            value = find(record, path)
            if value not in (None, "", [], {}):
                yield path, value
        folded = {k.lower(): k for k in record if isinstance(k, str)} if folded is None else folded
        for path in own:
            key = folded.get(path)
            if key is not None and key != path and record[key] not in (None, "", [], {}):
                yield key, record[key]

    def first(name: str, read: Callable[[str, Any], Any]) -> Any:
        for path, value in candidates(name):
            if name == "message" and isinstance(value, dict):
                continue  # a structured event (Splunk's `event` object): its fields are matched
            return read(path, value)
        return read(name, None)

    when, zoned = _first_time(candidates("time"))
    claimed = first("program", _program)
    process = _first_of(record, shipper.process, _name)
    executable = _first_of(record, shipper.executable, _name)
    return Extracted(
        shipper=shipper.name,
        id=first("id", _identifier),
        time=when,
        zoned=zoned,
        host=first("host", _name),
        program=program_of(claimed, process, executable),
        pid=first("pid", _identifier),
        message=first("message", _message),
        file=first("file", _name),
        container=names_container(record),
    )


@lru_cache(maxsize=1024)
def _paths(mapped: tuple[str, ...], shipper: Paths, own: Paths) -> Paths:
    return tuple(dict.fromkeys((*mapped, *shipper, *own)))


def _first_of(record: dict[str, Any], paths: Paths, read: Callable[[str, Any], Any]) -> Any:
    for path in paths:
        value = find(record, path)
        if value not in (None, "", [], {}):
            return read(path, value)
    return None


def _first_time(candidates: Iterable[tuple[str, Any]]) -> tuple[datetime | None, bool]:
    """The first time field that can be read and has a zone, else the first that can be read:
    one that cannot (Fluent Bit's `Time_Keep` leaves `time: "Nov 27 01:02:03"` beside a good
    `date`) or has no zone (no year either, in that case) gives way to the next. `FieldError`
    only when none can be read. An epoch of 0 (OTLP: unknown) is no time."""
    errors: list[str] = []
    zoneless: tuple[datetime | None, bool] | None = None
    for path, value in candidates:
        if value in (0, "0"):
            continue
        try:
            when, zoned = parse_stamp(value, path)
        except FieldError as exc:
            errors.append(str(exc))
            continue
        if zoned:
            return when, True
        zoneless = zoneless or (when, False)
    if zoneless:
        return zoneless
    if errors:
        raise FieldError(errors[0])
    return None, True


def program_of(claimed: str | None, process: str | None, executable: str | None) -> str | None:
    """The program a record is from: the name it claims (a syslog identifier, which the sender
    chooses) when the process that logged it agrees, else that process.

    `executable` is the path of the logging process's binary (journald's `_EXE`), `process` its
    kernel name (`_COMM`, which a process can rename, so the executable is asked first). A binary
    outside the system's own directories (`/usr`, `/bin`, `/sbin`, `/lib*`, `/opt`, the Nix/Guix
    stores, `/snap`), where a user may have put it (`/home`, `/tmp`, `/run/lock`...), is named by
    its path, whatever it claims: a copy of `logger` saved as `~/sshd` is not sshd. Names compare
    ignoring case (`CRON` is `/usr/sbin/cron`) and the kernel's 15-character cut of `comm`."""
    if executable:
        executable = executable.removesuffix(_DELETED)
        if not _in_system_directory(executable):
            return executable
        logged_by = executable.rsplit("/", 1)[-1]
    else:
        logged_by = process or ""
    if not logged_by:
        return claimed
    if claimed is None:
        return logged_by
    name = claimed.rsplit("/", 1)[-1].lower()
    actual = logged_by.lower()
    if name == actual or (len(actual) == _COMM_LENGTH and name.startswith(actual)):
        return claimed
    return logged_by


def _in_system_directory(executable: str) -> bool:
    """Whether a binary's path (journald's `_EXE`, which the kernel resolves) lies where only
    root writes; a path spelt with `.`/`..` steps or empty steps is not taken at its word."""
    steps = executable.split("/")[1:]
    return executable.startswith(_SYSTEM_DIRECTORIES) and not {"", ".", ".."} & set(steps[:-1])


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
    """A time as shippers write it (see `parse_stamp`), in UTC when it had no zone."""
    return parse_stamp(value, path)[0]


def parse_stamp(value: Any, path: str = "time") -> tuple[datetime, bool]:
    """A time as shippers write it, and whether it had a zone: ISO 8601 / RFC 3339 (a space for
    `T`, a comma for the dot, `Z` or an offset; without one it is the writer's local time, taken
    as UTC and answered `False`), an RFC 3164 stamp (`Nov 27 01:02:03`: no zone either, see
    `syslog.parse_bsd_stamp`), or a number since the epoch whose size says the unit (seconds,
    milliseconds, microseconds as journald writes them, or nanoseconds), as a number or as text
    (always UTC). Always between `EARLIEST_TIME` and `LATEST_TIME`, in constant time: a
    negative, non-finite or absurd number, or an absurd year, is a `FieldError` naming `path`,
    as is anything else that is no time."""
    if isinstance(value, bool):
        raise FieldError(f"{path}: not a time: {_shown(value)}")
    if isinstance(value, str) and _EPOCH_NUMBER.fullmatch(value.strip()):
        return _from_epoch(Decimal(value.strip()), path, value), True
    if isinstance(value, int | float | Decimal):
        return _from_epoch(value, path, value), True
    if isinstance(value, str) and len(value) <= _MAX_TIME_CHARS:
        text = value.strip().replace(",", ".", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit() and ":" not in text[-5:]:
            text = f"{text[:-2]}:{text[-2:]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            if (stamp := parse_bsd_stamp(value)) is not None:
                return stamp, False
            raise FieldError(f"{path}: not a time: {_shown(value)}") from exc
        if why := out_of_range(parsed):
            raise FieldError(f"{path}: {why}")
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC), False
        return parsed, True
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


# Batch envelopes -----------------------------------------------------------------------------


def batch_records(value: Any) -> list[tuple[Any, str | None]] | None:
    """The records of a batch envelope, one per log line, each `(record, None)` or `(what was
    there, why it is no record)`; None when `value` is no envelope.

    - Loki push (`{"streams": [{"stream": {labels}, "values": [[ts_ns, line, metadata?]]}]}`)
      and query answers (`{"data": {"resultType": "streams", "result": [...]}}`): each line as
      `{"labels", "timestamp", "line", "metadata"?}`, the shape `logcli --output=jsonl` prints.
    - OTLP/JSON (`{"resourceLogs": [{"resource", "scopeLogs": [{"scope", "logRecords"}]}]}`):
      each log record with its AnyValues decoded (`body`, `attributes` as an object) and the
      `resource` attributes and `scope` it shares; a body that is a journal entry (the journald
      receiver) is the record, with `attributes`, `resource` and `scope` beside its fields.
    """
    if not isinstance(value, dict):
        return None
    try:
        if isinstance(value.get("streams"), list):
            return list(_loki(value["streams"]))
        data = value.get("data")
        if isinstance(data, dict) and data.get("resultType") == "streams":
            result = data.get("result")
            return list(_loki(result if isinstance(result, list) else []))
        if isinstance(value.get("resourceLogs"), list):
            return list(_otlp(value["resourceLogs"]))
    except RecursionError:
        return [(value, "nested too deeply")]
    return None


def _loki(streams: list[Any]) -> Any:
    for stream in streams:
        labels = stream.get("stream") if isinstance(stream, dict) else None
        values = stream.get("values") if isinstance(stream, dict) else None
        if not isinstance(labels, dict) or not isinstance(values, list):
            yield stream, "a Loki stream needs `stream` (labels) and `values`"
            continue
        for entry in values:
            if not (
                isinstance(entry, list)
                and len(entry) in (2, 3)
                and isinstance(entry[0], str)
                and isinstance(entry[1], str)
            ):
                yield entry, 'a Loki value is ["<unix ns>", "<line>"] (and metadata)'
                continue
            record = {"labels": labels, "timestamp": entry[0], "line": entry[1]}
            if len(entry) == 3:
                record["metadata"] = entry[2]
            yield record, None


def _otlp(resource_logs: list[Any]) -> Any:
    for resource_log in resource_logs:
        if not isinstance(resource_log, dict):
            yield resource_log, "an OTLP resourceLogs member is an object"
            continue
        resource = _attributes(_get(resource_log.get("resource"), "attributes"))
        for scope_log in _list(resource_log.get("scopeLogs")):
            if not isinstance(scope_log, dict):
                yield scope_log, "an OTLP scopeLogs member is an object"
                continue
            scope = scope_log.get("scope")
            scope = scope if isinstance(scope, dict) else {}
            scope = {**scope, "attributes": _attributes(scope.get("attributes"))}
            for log in _list(scope_log.get("logRecords")):
                if not isinstance(log, dict):
                    yield log, "an OTLP log record is an object"
                    continue
                body = _any_value(log.get("body"))
                context = {
                    "attributes": _attributes(log.get("attributes")),
                    "resource": resource,
                    "scope": scope,
                }
                if isinstance(body, dict) and shipper_of(body).name == "journald":
                    # The collector's journald receiver: the body is the journal entry itself,
                    # read as journald's (its trusted fields included).
                    yield {**body, **context}, None
                else:
                    yield {**log, "body": body, **context}, None


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _attributes(pairs: Any) -> dict[str, Any]:
    """OTLP `[{"key": k, "value": AnyValue}]` as `{k: value}`; malformed pairs are left out."""
    return {
        pair["key"]: _any_value(pair.get("value"))
        for pair in _list(pairs)
        if isinstance(pair, dict) and isinstance(pair.get("key"), str)
    }


def _any_value(value: Any) -> Any:
    """An OTLP AnyValue as plain JSON (`{"stringValue": "x"}` is `"x"`; `intValue`, a string in
    OTLP/JSON, a number)."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        number = value["intValue"]
        text = str(number)
        parsed = decimal(text, 20)  # an int64 has 19 digits
        return number if parsed is None else parsed
    if "arrayValue" in value:
        return [_any_value(v) for v in _list(_get(value["arrayValue"], "values"))]
    if "kvlistValue" in value:
        return _attributes(_get(value["kvlistValue"], "values"))
    return None
