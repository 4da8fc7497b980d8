"""The JSON field mapping (`powertrip.sources.shippers`) beyond what the conformance corpus
(tests/formats) shows record by record: which process a record is from, which records are read
for syslog framing, a central syslog server's files, times without a zone or that cannot be read,
flat dotted keys, letter case, and batch envelopes (Loki, OTLP) expanding to one record a line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from powertrip.config import config_from_mapping
from powertrip.sources import PayloadError
from powertrip.sources.files import records
from powertrip.sources.generic import Reading, parse_generic, parse_json_values
from powertrip.sources.shippers import FieldMap, extract, program_of

LOGIN = "Accepted publickey for alice from 203.0.113.7 port 48274 ssh2"
FRAMED = f"Nov 27 01:02:03 host1 sshd[26538]: {LOGIN}"


def one(record: dict[str, Any], fields: FieldMap | None = None) -> Any:
    [item] = parse_generic(record, Reading(fields))
    assert item.raw is not None, item.error
    return item.raw


@pytest.mark.parametrize(
    ("claimed", "process", "executable", "program"),
    [
        ("sshd", "sshd", "/usr/sbin/sshd", "sshd"),
        ("sshd", "logger", "/usr/bin/logger", "logger"),  # `logger -t sshd`
        ("sshd", "sshd", "/usr/bin/python3.12", "python3.12"),  # renamed itself (prctl)
        ("sshd", "sshd", None, "sshd"),  # no executable given: its name is all there is
        ("sshd", "logger", None, "logger"),
        ("sshd", "sshd", "/home/mallory/sshd", "/home/mallory/sshd"),  # a user's own copy
        ("sshd", "sshd", "/tmp/.x/sshd", "/tmp/.x/sshd"),
        ("sshd", "sshd", "/memfd:sshd (deleted)", "/memfd:sshd"),  # fexecve of a memfd
        # Other places any user can write on a stock Debian/Ubuntu (mode 1777), and homes
        # outside /home: only the system's own directories vouch for a binary's name.
        ("sshd", "sshd", "/run/lock/sshd", "/run/lock/sshd"),
        ("sshd", "sshd", "/var/crash/sshd", "/var/crash/sshd"),
        ("sshd", "sshd", "/dev/mqueue/sshd", "/dev/mqueue/sshd"),
        ("sshd", "sshd", "/export/home/mallory/sshd", "/export/home/mallory/sshd"),
        ("sshd", "sshd", "/srv/build/sshd", "/srv/build/sshd"),
        ("sshd", "sshd", "/usr/../home/mallory/sshd", "/usr/../home/mallory/sshd"),
        ("sshd", "sshd", "/usr/local/sbin/sshd", "sshd"),  # the system's own directories
        ("sshd", "sshd", "/nix/store/0abc-openssh-9.8p1/bin/sshd", "sshd"),
        ("sshd", "sshd", "/opt/openssh/sbin/sshd", "sshd"),
        ("sshd", "sshd", "/usr/sbin/sshd (deleted)", "sshd"),  # still running after an upgrade
        ("CRON", "cron", "/usr/sbin/cron", "CRON"),  # letter case
        ("unattended-upgrade", "unattended-upgr", None, "unattended-upgrade"),  # comm's 15
        ("unattended-upgrade", "unattended-upgr", "/usr/bin/python3", "python3"),
        ("(systemd)", "(systemd)", "/usr/lib/systemd/systemd", "systemd"),
        (None, "sshd-session", None, "sshd-session"),
        (None, None, "/usr/lib/openssh/sshd-session", "sshd-session"),
        ("sshd", None, None, "sshd"),  # nothing to check it against
        (None, None, None, None),
    ],
)
def test_the_program_is_the_process_that_logged_it(
    claimed: str | None, process: str | None, executable: str | None, program: str | None
) -> None:
    assert program_of(claimed, process, executable) == program


def test_the_trusted_fields_win_in_every_journald_spelling() -> None:
    forged = {"SYSLOG_IDENTIFIER": "sshd", "_COMM": "logger", "_EXE": "/usr/bin/logger"}
    spellings = [
        forged,
        {"SYSLOG_IDENTIFIER": "sshd", "COMM": "logger", "EXE": "/usr/bin/logger"},
        {"syslog_identifier": "sshd", "_comm": "logger", "_exe": "/usr/bin/logger"},
        {"syslog_identifier": "sshd", "comm": "logger", "exe": "/usr/bin/logger"},
        # Vector's journald source adds its own names beside journald's
        {**forged, "host": "host1", "message": LOGIN, "source_type": "journald"},
    ]
    for record in spellings:
        found = extract({"_HOSTNAME": "host1", "MESSAGE": LOGIN, **record})
        assert (found.shipper, found.program) == ("journald", "logger"), record


def test_a_record_naming_a_host_or_container_keeps_its_framing_as_text() -> None:
    for record in (
        {"host": "web-1", "message": FRAMED},
        {"hostname": "web-1", "message": FRAMED},
        {"Host": "web-1", "Message": FRAMED},
        {"kubernetes": {"pod_name": "web-7f9c"}, "log": FRAMED},
        {"_container_name": "web", "short_message": FRAMED, "host": "node-3"},  # Docker GELF
        {"labels": {"container": "web"}, "line": FRAMED, "timestamp": "1732669323000000000"},
        {"stream": "stdout", "logtag": "F", "message": FRAMED},  # Fluent Bit's `cri` parser
    ):
        raw = one(record)
        assert (raw.program, raw.message) == (None, FRAMED), record
    # A bare line names nothing: its framing is all there is, as for a raw line.
    raw = one({"message": FRAMED})
    assert (raw.host, raw.program, raw.message) == ("host1", "sshd", LOGIN)


def central(path: str, **more: Any) -> dict[str, Any]:
    """Filebeat on the central syslog server logfwd1, reading `path`."""
    return {
        "@timestamp": "2024-11-27T01:02:03.500Z",
        "ecs": {"version": "8.0.0"},
        "agent": {"type": "filebeat", "hostname": "logfwd1"},
        "host": {"name": "logfwd1"},
        "log": {"file": {"path": path}},
        "message": FRAMED,
        **more,
    }


def test_a_central_syslog_servers_files_name_the_host_their_lines_came_from() -> None:
    remote = central("/var/log/remote/host1/auth.log")
    # Not configured: the server's own application could have written that file.
    assert (one(remote).host, one(remote).program) == ("logfwd1", None)
    relay = FieldMap(syslog_files=["/var/log/remote/*"])
    raw = one(remote, relay)
    assert (raw.host, raw.program, raw.message) == ("host1", "sshd", LOGIN)
    assert raw.received_at == datetime(2024, 11, 27, 1, 2, 3, 500000, tzinfo=UTC)
    # The system's own syslog files are read so by default, with the line's host.
    raw = one(central("/var/log/auth.log"))
    assert (raw.host, raw.program) == ("host1", "sshd")
    # Listing files replaces the default; a container's output never is a syslog file.
    assert one(central("/var/log/auth.log"), relay).program is None
    container = central("/var/log/remote/x.log", container={"name": "rsyslog"})
    assert one(container, relay).program is None
    # A line without framing in a syslog file keeps the shipper's host.
    bare = {**central("/var/log/auth.log"), "message": "-- MARK --"}
    assert one(bare).host == "logfwd1"


def test_the_relay_option_is_read_from_the_config_by_backfill(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"sources": {"json": {"fields": {"syslog_files": ["/var/log/remote/*"]}}}},
        tmp_path,
        "test",
    )
    fields = config.source_options("json").fields
    lines = [json.dumps(central(f"/var/log/remote/host{n}/auth.log")) + "\n" for n in (1, 2)]
    read = [located.item.raw for located in records(lines, fields=fields)]
    assert [(raw.host, raw.program) for raw in read if raw] == [("host1", "sshd")] * 2


def test_a_time_without_a_zone_is_marked_zoneless() -> None:
    nxlog = {"EventTime": "2026-11-30 07:00:00", "Hostname": "bastion", "SourceName": "sshd"}
    raw = one({**nxlog, "Message": LOGIN})
    assert raw.received_at == datetime(2026, 11, 30, 7, tzinfo=UTC) and raw.time_without_zone
    epoch = int(datetime(2026, 11, 30, 5, tzinfo=UTC).timestamp())
    for zoned in ("2026-11-30T07:00:00+02:00", "2026-11-30T05:00:00Z", epoch, f"{epoch}000"):
        raw = one({"time": zoned, "host": "bastion", "program": "sshd", "message": LOGIN})
        assert raw.received_at == datetime(2026, 11, 30, 5, tzinfo=UTC), zoned
        assert not raw.time_without_zone, zoned


def test_an_unreadable_time_gives_way_to_the_next_and_only_none_readable_is_invalid() -> None:
    fluent = {"host": "host1", "ident": "sshd", "pid": "1", "message": LOGIN}
    # Time_Keep: `time` is the syslog stamp (no year, no zone) beside a good epoch `date`.
    raw = one({**fluent, "time": "Nov 27 01:02:03", "date": 1732669323.5})
    assert raw.received_at == datetime(2024, 11, 27, 1, 2, 3, 500000, tzinfo=UTC)
    assert not raw.time_without_zone
    raw = one({**fluent, "time": "yesterday", "date": "2024-11-27T01:02:03Z"})
    assert raw.received_at == datetime(2024, 11, 27, 1, 2, 3, tzinfo=UTC)
    # A syslog stamp alone is read as such: no zone, the most recent such day.
    raw = one({**fluent, "time": "Nov 27 01:02:03"})
    assert (raw.received_at.month, raw.received_at.day, raw.time_without_zone) == (11, 27, True)
    [item] = parse_generic({**fluent, "time": "yesterday", "date": "soon"})
    assert item.raw is None and item.error == "time: not a time: 'yesterday'"


def test_flat_dotted_keys_and_other_letter_cases_are_read() -> None:
    flat = {"@timestamp": "2024-11-27T01:02:03Z", "host.hostname": "host1"}
    raw = one({**flat, "process.name": "sshd", "process.pid": 1, "message": LOGIN})
    assert (raw.host, raw.program) == ("host1", "sshd")
    mixed = {"host": {"name": "host1"}, "log.syslog": {"appname": "sshd"}, "message": LOGIN}
    assert (one(mixed).host, one(mixed).program) == ("host1", "sshd")
    upper = {"Host": "host1", "Program": "sshd", "Message": LOGIN, "Time": "2024-11-27T01:02:03Z"}
    raw = one(upper)
    assert (raw.host, raw.program, raw.message) == ("host1", "sshd", LOGIN)
    assert raw.received_at == datetime(2024, 11, 27, 1, 2, 3, tzinfo=UTC)


def test_rsyslog_std_json_format_is_read_with_its_host() -> None:
    raw = one(
        {
            "message": f" {LOGIN}",
            "fromhost": "host1",
            "facility": "authpriv",
            "priority": "info",
            "timereported": "2024-11-27T01:02:03.123456+00:00",
        }
    )
    assert (raw.host, raw.program, raw.message) == ("host1", None, LOGIN)


def loki_push(*lines: str) -> dict[str, Any]:
    values = [[str(1732669323000000000 + n), line] for n, line in enumerate(lines)]
    return {"streams": [{"stream": {"host": "host1", "app": "sshd"}, "values": values}]}


def test_an_envelope_is_one_record_a_line_and_the_indices_stay_unique() -> None:
    body = "\n".join(
        [
            json.dumps({"host": "h", "program": "p", "message": "before"}),
            json.dumps(loki_push("one", "two", "three")),
            json.dumps({"host": "h", "program": "p", "message": "after"}),
        ]
    ).encode()
    items = parse_json_values(body, Reading(idempotency_key="k"))
    assert [item.index for item in items] == [0, 1, 2, 3, 4]
    assert [item.raw.message for item in items if item.raw] == [
        "before",
        "one",
        "two",
        "three",
        "after",
    ]
    assert [item.raw.provider_id for item in items if item.raw] == [f"k:{n}" for n in range(5)]
    # Without a key, each line is named by its content and time: a retry is the same event.
    first = [item.raw.provider_id for item in parse_generic(loki_push("one", "two")) if item.raw]
    again = [item.raw.provider_id for item in parse_generic(loki_push("one", "two")) if item.raw]
    assert first == again and len(set(first)) == 2


def test_a_bad_line_in_an_envelope_fails_alone_and_an_empty_one_is_no_events() -> None:
    push = loki_push("one", "two")
    push["streams"][0]["values"].insert(1, [1732669323, {"not": "a line"}])
    push["streams"].append({"labels": '{job="x"}'})
    items = parse_generic(push)
    assert [(item.index, item.error is None) for item in items] == [
        (0, True),
        (1, False),
        (2, True),
        (3, False),
    ]
    structured = {"kvlistValue": {"values": [{"key": "pid", "value": {"intValue": "7"}}]}}
    otlp = {"resourceLogs": [{"scopeLogs": [{"logRecords": ["oops", {"body": structured}]}]}]}
    items = parse_generic(otlp)
    assert items[0].error == "an OTLP log record is an object"
    assert items[1].raw is not None and items[1].raw.fields["body"] == {"pid": 7}
    with pytest.raises(PayloadError):
        parse_generic({"streams": []})
    with pytest.raises(PayloadError):
        parse_generic({"resourceLogs": []})


def test_a_loki_query_answer_is_read_like_a_push() -> None:
    answer = {
        "status": "success",
        "data": {"resultType": "streams", "result": [*loki_push(LOGIN)["streams"]]},
    }
    [item] = parse_generic(answer)
    assert item.raw is not None
    assert (item.raw.host, item.raw.program, item.raw.message) == ("host1", "sshd", LOGIN)
