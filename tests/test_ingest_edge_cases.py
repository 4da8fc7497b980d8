"""Ingest edge cases a production sender hits: hostile or huge lines, compressed payloads that
expand without bound, JSON nested deeper than the parser recurses, times without a zone, and the
documented Papertrail archive format."""

from __future__ import annotations

import base64
import functools
import gzip
import json
import threading
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.config import config_from_mapping
from powertrip.models import RawEvent, SecurityEvent
from powertrip.rules import Rule, RuleSet
from powertrip.services.recognise import recognise
from powertrip.sources import ParsedItem, PayloadError
from powertrip.sources.cloudwatch import encode_awslogs, parse_cloudwatch, parse_subscription
from powertrip.sources.files import InputFormat, records
from powertrip.sources.generic import (
    Reading,
    parse_generic,
    parse_json_values,
    parse_text_lines,
)
from powertrip.sources.papertrail import parse_papertrail
from powertrip.sources.papertrail_api import newer
from powertrip.sources.shippers import FieldError, parse_time
from powertrip.sources.sns import SnsMessage, parse_notification
from powertrip.sources.syslog import event_from_text, parse_bsd_stamp, parse_syslog
from powertrip.sources.wazuh import wazuh_raw
from powertrip.temporal import HOST
from powertrip.unrecognised import message_shape
from tests.harness import (
    API_HEADERS,
    WEBHOOK_HEADERS,
    api_client,
    make_config,
    make_settings,
    ssh_line,
)

T = TypeVar("T")


@pytest.fixture
async def http(
    dev_env: WorkflowEnvironment, slack_api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    async with api_client(settings) as client:
        yield client


def test_shape_of_a_long_unrecognised_line_takes_linear_time() -> None:
    # Every unmatched line is shaped in the API's event loop; a 60 kB line without digits took
    # ~15 s (quadratic masking), a 1 MB one over an hour.
    for text in ("a" * 60_000, "z:" * 30_000):
        raw = RawEvent(source="json", provider_id="x", message=text)
        began = time.perf_counter()
        shape = message_shape(raw)
        assert time.perf_counter() - began < 0.5
        assert shape.startswith("-: " + text[:10])
    # Masking itself is unchanged: tokens with a digit, addresses, quoted values.
    raw = RawEvent(
        source="json",
        provider_id="x",
        program="app",
        message='user "bob" id=42 from 10.0.0.1 took 3ms',
    )
    assert message_shape(raw) == "app: user <str> <n> from <addr> took <n>"


def test_cloudwatch_payload_that_expands_beyond_reason_is_refused_without_expanding_it() -> None:
    # 256 MB of zeros gzips to ~250 kB, well under the body cap; the 5 MB cap lets through
    # one that expands to 5 GB. Decompressing it whole takes that much memory per request.
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)
    payload = {"awslogs": {"data": base64.b64encode(bomb).decode()}}
    tracemalloc.start()
    try:
        with pytest.raises(PayloadError, match="larger than"):
            parse_cloudwatch(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_papertrail_archive_lines_in_the_documented_format_are_read() -> None:
    # The archive format from Papertrail's help page: `2011-02-10 00:19:36 -0800` stamps.
    line = (
        "50342052\t2011-02-10 00:19:36 -0800\t2011-02-10 00:19:37 -0800\t42424\tmysystem\t"
        "208.122.34.202\tAuth\tInfo\tsshd\t" + ssh_line("alice") + "\n"
    )
    [located] = records([line])
    assert located.item.error is None
    raw = located.item.raw
    assert raw is not None and raw.provider_id == "50342052" and raw.host == "mysystem"
    assert raw.received_at is not None
    assert raw.received_at.isoformat() == "2011-02-10T00:19:37-08:00"


@pytest.mark.parametrize("path", ["/webhooks/json", "/webhooks/papertrail"])
async def test_json_nested_deeper_than_the_parser_goes_fails_its_record_not_the_body(
    http: httpx.AsyncClient, path: str
) -> None:
    # 200,000 levels, far past the decoder's stack: once a 400 for the whole body, which lost
    # the login beside it.
    good = {"id": uuid.uuid4().hex, "hostname": "web1", "program": "sshd"}
    good["message"] = ssh_line(f"u{uuid.uuid4().hex[:8]}")
    body = (
        b'{"events": ['
        + json.dumps(good).encode()
        + b', {"id": "deep", "message": "x", "a": '
        + b"[" * 200_000
        + b"]" * 200_000
        + b"}]}"
    )
    response = await http.post(
        path, content=body, headers={**WEBHOOK_HEADERS, "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    started, deep = response.json()["results"]
    assert started["status"] == "started", started
    assert deep["status"] == "invalid" and "nested" in deep["reason"], deep


def test_a_deeply_nested_record_fails_alone_in_ndjson_cloudwatch_and_backfill() -> None:
    deep = '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}"
    good = json.dumps({"id": "ok", "program": "sshd", "message": ssh_line("alice")})
    items = parse_json_values(f"{deep}\n{good}\n".encode())
    assert items[0].error is not None and "nested" in items[0].error
    assert items[1].raw is not None
    # A CloudWatch JSON log line nested too deeply is its own invalid, as at 100 levels.
    [item] = parse_subscription(
        {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "timestamp": 0, "message": deep}]}
    )
    assert item.error is not None and "nested deeper" in item.error
    located = list(records([deep + "\n", good + "\n"], InputFormat.NDJSON))
    assert located[0].item.error and located[0].line == 1
    assert located[1].item.raw is not None


async def test_generic_time_without_a_zone_is_utc_and_the_batch_proceeds(
    http: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    framed, bare = uuid.uuid4().hex, uuid.uuid4().hex
    events = [
        {
            "id": framed,
            "time": "2024-05-01T10:00:00",
            "message": "May  1 10:00:00 web1 sshd[42]: " + ssh_line("alice"),
        },
        {"id": bare, "time": "2024-05-01T11:00:00", "program": "sshd", "message": ssh_line("bob")},
    ]
    response = await http.post("/webhooks/json", json={"events": events}, headers=WEBHOOK_HEADERS)
    assert response.status_code == 202, response.text
    assert [r["status"] for r in response.json()["results"]] == ["started", "started"]
    for provider_id, hour in ((framed, 10), (bare, 11)):
        handle = dev_env.client.get_workflow_handle(f"json-{provider_id}")
        description = await handle.describe()
        memo = await description.memo_value("record")
        assert memo["event"]["occurred_at"] == f"2024-05-01T{hour}:00:00Z"


async def test_an_oversized_field_fails_its_own_record_not_the_batch(
    http: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    good, huge = uuid.uuid4().hex, uuid.uuid4().hex
    events = [
        {"id": huge, "hostname": "h" * 5000, "program": "sshd", "message": ssh_line("alice")},
        {"id": good, "hostname": "web1", "program": "sshd", "message": ssh_line("alice")},
    ]
    response = await http.post(
        "/webhooks/papertrail", json={"events": events}, headers=WEBHOOK_HEADERS
    )
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    # Refusing it would let a crafted host dodge approval: it is started, with its searchable
    # host clipped to what Temporal accepts and the full value kept in the record.
    assert [r["status"] for r in results] == ["started", "started"]
    view = await http.get(f"/v1/events/{results[0]['event_id']}", headers=API_HEADERS)
    assert view.json()["host"] == "h" * 5000
    description = await dev_env.client.get_workflow_handle(results[0]["event_id"]).describe()
    searchable = description.typed_search_attributes.get(HOST)
    assert searchable is not None and searchable.startswith("h" * 1000) and len(searchable) < 2048


def test_a_huge_line_is_not_matched_in_quadratic_time_but_left_for_review() -> None:
    rules = make_config().rule_set()
    hostile = "Accepted x for u" + " from a port 1: k f ID " * 4000 + " X"
    raw = RawEvent(source="json", provider_id="big", program="sshd", message=hostile)
    started = time.perf_counter()
    event, reasons = rules.explain(raw)
    assert time.perf_counter() - started < 0.5
    assert event is None
    assert "rules read at most" in reasons["sshd-accepted"]


@pytest.mark.parametrize("stamp", ["1e999", "-1e999", "NaN", "Infinity", "9" * 5000])
async def test_an_infinite_or_absurd_time_fails_its_own_record_at_once(
    http: httpx.AsyncClient, stamp: str
) -> None:
    # JSON `1e999` is infinity to Python's parser: the epoch-unit loop once divided it forever and
    # hung the API (red-team F1). The record is invalid, the rest of the batch is started.
    bad, good = uuid.uuid4().hex, uuid.uuid4().hex
    body = (
        '{"events": ['
        f'{{"id": "{bad}", "time": {stamp}, "program": "sshd", "message": "{ssh_line("alice")}"}},'
        f'{{"id": "{good}", "program": "sshd", "message": "{ssh_line("alice")}"}}]}}'
    )
    started = time.monotonic()
    response = await http.post(
        "/webhooks/json",
        content=body,
        headers={**WEBHOOK_HEADERS, "Content-Type": "application/json"},
    )
    assert time.monotonic() - started < 10
    assert response.status_code == 202, response.text
    assert [r["status"] for r in response.json()["results"]] == ["invalid", "started"]


# --- Numbers and times a sender controls (issue 10, red-team F1 and F2) ------------------------

BIG = "1" * 5000  # a JSON integer Python will not convert (its 4,300-digit limit)


def finishes(call: Callable[[], T], within: float = 5.0) -> T:
    """`call()`, failing the test (not hanging it) if it does not return within `within` s."""
    done: list[T] = []
    worker = threading.Thread(target=lambda: done.append(call()), daemon=True)
    worker.start()
    worker.join(within)
    assert done, f"still running after {within}s"
    return done[0]


def refused(value: object) -> str:
    def attempt() -> str:
        try:
            parse_time(value)
        except FieldError as exc:
            return str(exc)
        return "accepted"

    return finishes(attempt)


@pytest.mark.parametrize(
    "value",
    [
        float("inf"),  # json.loads reads `1e999` and `Infinity` so: an endless loop (F1)
        float("-inf"),
        float("nan"),  # decimal.InvalidOperation, uncaught (F1)
        "1e999",
        "NaN",
        -1,
        -1e300,
        1e300,  # divided down to some date in 2001
        10**400,
        "9" * 5000,
        "99999999999",  # seconds: the year 5138
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+23:59",  # no UTC time exists for it
        "9999-12-31T23:59:59-23:59",
        "2026-11-30T05:00:00Z" + " " * 100_000,
    ],
)
def test_a_time_no_record_can_have_is_refused_at_once(value: object) -> None:
    assert refused(value).startswith("time: "), value


def test_every_epoch_unit_still_reads_the_same_instant() -> None:
    instant = datetime(2026, 11, 30, 5, 0, 0, 123456, tzinfo=UTC)
    for value in (
        1796014800.123456,
        "1796014800.123456",
        1796014800123.456,
        1796014800123456,
        "1796014800123456",
        1796014800123456000,
        "2026-11-30T05:00:00.123456Z",
        "2026-11-30 07:00:00,123456+0200",
    ):
        assert finishes(functools.partial(parse_time, value)) == instant, value


@pytest.mark.parametrize(
    "line",
    [
        "Nov 30 25:00:00 bastion sshd[999]: LOGIN",
        "Nov 31 05:00:00 bastion sshd[999]: LOGIN",
        "Nov 30 0000 05:00:00 bastion sshd[999]: LOGIN",
        "Mon 9999-12-31 23:59:59 EDT bastion sshd[999]: LOGIN",
        "0001-01-01T00:00:00+23:59 bastion sshd[999]: LOGIN",
        "99999999999.5 bastion sshd[999]: LOGIN",
        "<38>1 0001-01-01T00:00:00+23:59 bastion sshd 999 - - LOGIN",
    ],
)
def test_a_syslog_stamp_that_is_no_time_leaves_the_record_without_one(line: str) -> None:
    """The framing still names host and program; the record has no time of its own (its
    arrival stands in), as for a stamp that does not parse. Before: `ValueError` or
    `OverflowError` out of the parser, the whole request a 500."""
    raw = finishes(lambda: event_from_text(line.replace("LOGIN", ssh_line("alice")), "json", "x"))
    assert (raw.host, raw.program, raw.received_at) == ("bastion", "sshd", None)
    [located] = records([line + "\n"], InputFormat.SYSLOG)
    assert located.item.raw is not None and located.item.raw.received_at is None


def test_a_number_python_cannot_hold_is_its_own_records_invalid_in_every_reader() -> None:
    good = json.dumps({"id": "ok", "program": "sshd", "message": ssh_line("alice")})
    bad = [
        ('{"id":"n","message":"x","n":' + BIG + "}", "n: an integer of 5000 digits"),
        ('{"id":"t","message":"x","time":1e999}', "time: not a time: a number out of range"),
        ('{"id":"c","message":"x","time":NaN}', "time: not a time: NaN"),
        ('{"id":"i","message":"x","deep":[{"v":-Infinity}]}', "deep.0.v: -Infinity"),
    ]
    lines = [line for line, _ in bad] + [good]
    for items in (
        parse_json_values("\n".join(lines).encode()),
        parse_json_values("".join(lines).encode()),
        [located.item for located in records([line + "\n" for line in lines])],
    ):
        assert [item.error is None for item in items] == [False] * len(bad) + [True]
        for item, (_, reason) in zip(items, bad, strict=False):
            assert item.error is not None and reason in item.error, item.error
    # A CloudWatch log line that is an app's JSON: that line alone.
    [line, login] = parse_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "logEvents": [
                {"id": "1", "timestamp": 0, "message": '{"level":"info","order":' + BIG + "}"},
                {"id": "2", "timestamp": 10**20, "message": ssh_line("alice")},
            ],
        }
    )
    assert line.error is not None and "order: an integer of 5000 digits" in line.error
    assert login.error is not None and "timestamp" in login.error
    # An SNS message whose JSON holds one: that message's invalid, not a 500.
    sns = SnsMessage.model_validate(
        {
            "Type": "Notification",
            "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:logs",
            "Message": '{"message":"x","n":NaN}',
            "Timestamp": "2026-11-30T05:00:00Z",
            "SignatureVersion": "1",
            "Signature": "x",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
        }
    )
    [item] = parse_notification(sns)
    assert item.error is not None and "n: NaN" in item.error
    # A CEE message (`@cee:{...}`) holding one is matched as text, as any JSON that is none.
    raw = event_from_text("@cee:" + '{"n":' + BIG + "}", "json", "x", program="sudo")
    assert raw.fields == {}


@pytest.mark.parametrize("port", ["²", "٣", "99999", "-1", "0x16"])
def test_a_port_that_is_no_port_leaves_the_event_without_one(port: str) -> None:
    """A JSON record's port field is the sender's text: anything but a port (a superscript
    digit `int` refuses, another script's digit, out of range) is no port; the event is still
    recognised, never made `invalid` by it."""
    rule = {
        "id": "json-login",
        "title": "JSON login",
        "match": {"fields": {"event": "login"}},
        "event": {"actor": "{user}", "action": "login", "port": "{source.port}"},
    }
    rules = config_from_mapping({"rule_packs": [], "rules": [rule]}, Path.cwd(), "test").rule_set()
    fields = {"event": "login", "user": "alice", "source": {"port": port}}
    event = rules.recognise(RawEvent(source="json", provider_id="1", fields=fields))
    assert event is not None and (event.actor, event.port) == ("alice", None)


async def test_hostile_numbers_leave_the_rest_of_each_batch_to_proceed(
    http: httpx.AsyncClient,
) -> None:
    """F1: `"time": 1e999` hung the API for good (`parse_time` looped forever); F2: a huge
    integer or NaN made the whole batch a 500. Each is now its record's `invalid`."""

    def login(**extra: object) -> str:
        record = {"id": uuid.uuid4().hex, "host": "bastion", "program": "sshd"}
        return json.dumps({**record, "message": ssh_line("alice"), **extra})

    hostile = [
        login()[:-1] + ',"time":1e999}',
        login()[:-1] + ',"time":Infinity}',
        login()[:-1] + ',"time":NaN}',
        login()[:-1] + ',"n":' + BIG + "}",
        login(time=-1),
        login(time="0001-01-01T00:00:00+23:59"),
    ]
    bodies = [
        ("application/x-ndjson", "\n".join([*hostile, login()])),
        ("application/json", "[" + ",".join([*hostile, login()]) + "]"),
        ("application/json", "".join([*hostile, login()])),  # values one after another
    ]
    for content_type, body in bodies:
        response = await http.post(
            "/webhooks/json",
            content=body,
            headers={**WEBHOOK_HEADERS, "Content-Type": content_type},
        )
        assert response.status_code == 202, (content_type, response.text[:300])
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["invalid"] * len(hostile) + ["started"]
        assert all(r["reason"] for r in results[:-1])
    alert = {
        "timestamp": "TIME",
        "id": f"1796014800.{uuid.uuid4().int % 10**6}",
        "rule": {"level": 3, "id": "5715", "description": "sshd: authentication success."},
        "agent": {"id": "003", "name": "bastion"},
        "full_log": f"Nov 30 05:00:00 bastion sshd[999]: {ssh_line('alice')}",
    }
    response = await http.post(
        "/webhooks/wazuh",
        content=json.dumps(alert).replace('"TIME"', "1e999"),
        headers={**WEBHOOK_HEADERS, "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text[:300]
    [result] = response.json()["results"]
    assert result["status"] == "invalid" and result["reason"].startswith("timestamp: ")
    stamp = 1796014800000
    framed = f"Nov 30 05:00:00 bastion sshd[999]: {ssh_line('bob')}"
    login_event = {"id": uuid.uuid4().hex, "timestamp": stamp, "message": framed}
    app_line = {"id": uuid.uuid4().hex, "timestamp": stamp, "message": '{"n":' + BIG + "}"}
    subscription = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/var/log/secure",
        "logStream": "bastion",
        "logEvents": [app_line, login_event],
    }
    response = await http.post(
        "/webhooks/cloudwatch", json=encode_awslogs(subscription), headers=WEBHOOK_HEADERS
    )
    assert response.status_code == 202, response.text[:300]
    assert [r["status"] for r in response.json()["results"]] == ["invalid", "started"]
    # A whole document that is no JSON object is a 400 with the reason, never a 500.
    for body in ("NaN", BIG, "1e999"):
        response = await http.post(
            "/webhooks/json",
            content=body,
            headers={**WEBHOOK_HEADERS, "Content-Type": "application/json"},
        )
        assert response.status_code == 400 and response.json()["detail"], body
    assert (await http.get("/healthz")).status_code == 200


async def test_a_huge_unmatched_record_is_reviewed_clipped_and_the_batch_proceeds(
    http: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    # Its review's input once held the whole record: over Temporal's 2 MB, a 500 for the batch.
    login = {"id": uuid.uuid4().hex, "program": "sshd", "message": ssh_line("alice")}
    blob = {"id": uuid.uuid4().hex, "message": "", "blob": "A" * 2_300_000, "tag": "kept"}
    host = {"id": uuid.uuid4().hex, "host": "h" * 2_300_000, "message": "hello from a host"}
    response = await http.post("/webhooks/json", json=[login, blob, host], headers=WEBHOOK_HEADERS)
    assert response.status_code == 202, response.text
    started, *unmatched = response.json()["results"]
    assert started["status"] == "started", started
    for result in unmatched:
        assert result["status"] == "unmatched" and result["review"] == "requested", result
    review = dev_env.client.get_workflow_handle(unmatched[0]["review_id"])
    [request] = (
        (await review.fetch_history())
        .events[0]
        .workflow_execution_started_event_attributes.input.payloads
    )
    sample = json.loads(request.data)["sample"]
    assert sample["fields"]["tag"] == "kept" and len(sample["fields"]["blob"]) <= 2000


NEW_YEARS_EVE = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
NEW_YEARS_DAY = datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC)


def _yearless_times(stamp: str, now: datetime) -> dict[str, datetime | None]:
    """The time every reader of a year-less RFC 3164 stamp gives a record stamped `stamp`
    (`Jan  1 00:00:01`) that arrived at `now`."""
    line = f"{stamp} bastion sshd[1]: {ssh_line('alice')}"
    [located] = records([line + "\n"], InputFormat.SYSLOG, now=now)
    assert located.item.raw is not None
    [text] = parse_text_lines(line.encode(), Reading(received=now))
    [shipped] = parse_json_values(json.dumps({"message": line}).encode(), Reading(received=now))
    repeat = parse_syslog(f"{stamp} bastion last message repeated 2 times", now=now)
    sudo_log = parse_syslog(f"{stamp} : alice : TTY=pts/0 ; USER=root ; COMMAND=/bin/id", now=now)
    assert text.raw is not None and shipped.raw is not None
    assert repeat is not None and sudo_log is not None
    return {
        "syslog line": located.item.raw.received_at,
        "text/plain body": text.raw.received_at,
        "shipper's bare line": shipped.raw.received_at,
        "untagged repeat": repeat.time,
        "sudo log file": sudo_log.time,
        "JSON stamp": parse_bsd_stamp(stamp, now=now),
    }


def test_a_yearless_stamp_read_around_new_year_keeps_the_year_it_was_written() -> None:
    """A line stamped just after midnight on 1 January, read a moment before midnight by a
    reader behind the writer's clock, is next year's; a line from 31 December read on 1 January
    is last year's. Before: every reader dated the first a year back (2026-01-01)."""
    next_year = _yearless_times("Jan  1 00:00:01", NEW_YEARS_EVE)
    assert set(next_year.values()) == {datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)}, next_year
    last_year = _yearless_times("Dec 31 23:59:58", NEW_YEARS_DAY)
    assert set(last_year.values()) == {datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)}, last_year
    # More than a day ahead of its arrival: written last year, as before.
    assert parse_bsd_stamp("Jan  3 00:00:01", now=NEW_YEARS_EVE) == datetime(
        2026, 1, 3, 0, 0, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("now", "year"),
    [
        (datetime(2027, 3, 1, tzinfo=UTC), 2024),  # read in a common year: the last leap year's
        (datetime(2028, 2, 28, 12, tzinfo=UTC), 2028),  # within a day of it
        (datetime(2028, 3, 1, tzinfo=UTC), 2028),
    ],
)
def test_a_leap_day_stamp_is_dated_in_a_leap_year(now: datetime, year: int) -> None:
    """`Feb 29` is a day only in leap years. Before: read in a common year it became 28
    February of a common year, a day no line was written on."""
    when = _yearless_times("Feb 29 12:00:00", now)
    assert set(when.values()) == {datetime(year, 2, 29, 12, tzinfo=UTC)}, when


def test_a_wazuh_alert_on_a_line_written_after_midnight_ahead_of_utc_keeps_its_zone() -> None:
    """The end-to-end report: a host an hour ahead of UTC writes `Jan  1 00:30:00` and the
    manager alerts at 23:30:05Z on 31 December. The line is next year's, at the alert's instant
    (its zone told from the alert's time). Before: 2026-01-01T00:30, a year early and zone-less."""
    alert = {
        "id": "1767223805.1",
        "timestamp": "2026-12-31T23:30:05.000+0000",
        "rule": {"id": "5715", "description": "sshd: authentication success."},
        "agent": {"id": "001", "name": "bastion"},
        "full_log": f"Jan  1 00:30:00 bastion sshd[1]: {ssh_line('alice')}",
    }
    raw = wazuh_raw(alert)
    assert raw.received_at == datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert raw.time_without_zone is False


async def test_a_trailing_blank_or_line_ending_does_not_unmatch_a_login_or_make_it_new(
    http: httpx.AsyncClient,
) -> None:
    """The report: Papertrail's `message` ending in a blank or `\\r` left `sshd-accepted`
    (anchored at `ssh2$`) unmatched. Now it starts; the retry without the `\\r` is the same
    event, and the record as received stays in its fields."""
    event_id = uuid.uuid4().hex
    line = ssh_line("alice", address="203.0.113.50")
    for message, status in ((line + "\r", "started"), (line, "duplicate")):
        event = {"id": event_id, "hostname": "bastion", "program": "sshd", "message": message}
        response = await http.post(
            "/webhooks/papertrail", json={"events": [event]}, headers=WEBHOOK_HEADERS
        )
        assert response.status_code == 202, response.text
        [result] = response.json()["results"]
        assert result["status"] == status, result
    view = (await http.get(f"/v1/events/papertrail-{event_id}", headers=API_HEADERS)).json()
    assert view["message"] == line


@pytest.mark.parametrize("noise", [" ", "\r", "\t", "\r\n", " \r\n", "\x00", "\u00a0"])
def test_trailing_noise_changes_no_route_s_match_or_name(noise: str) -> None:
    """Every adapter's record goes through `RawEvent`: Papertrail's message, a framed line (in
    a text body, a backfill, a shipper's JSON) and a repeated line's `[ ... ]`."""
    rules = make_config().rule_set()
    line = f"Nov 27 01:02:03 bastion sshd[1]: {ssh_line('alice', port=43000)}"
    event = {
        "id": 1,
        "hostname": "bastion",
        "program": "sshd",
        "message": ssh_line("alice") + noise,
    }
    [papertrail] = parse_papertrail({"events": [event]})
    assert papertrail.raw is not None and papertrail.raw.fields["message"].endswith(noise)
    now = datetime(2026, 11, 27, 2, tzinfo=UTC)
    [backfill, noisy_backfill] = records([line + "\n", line + noise + "\n"], now=now)
    [text, noisy_text] = parse_text_lines(f"{line}\n{line}{noise}\n".encode(), Reading())
    [shipped] = parse_json_values(json.dumps({"message": line + noise}).encode(), Reading())
    for raw in (papertrail.raw, noisy_backfill.item.raw, noisy_text.raw, shipped.raw):
        assert raw is not None
        found = rules.recognise(raw)
        assert found is not None and found.rule_id == "sshd-accepted", (raw.message, found)
    assert noisy_backfill.item.raw and backfill.item.raw
    assert noisy_backfill.item.raw.provider_id == backfill.item.raw.provider_id
    assert noisy_text.raw and text.raw and noisy_text.raw.provider_id == text.raw.provider_id
    failed = "Failed password for alice from 203.0.113.5 port 4000 ssh2"
    repeated = f"Nov 27 01:02:03 bastion sshd[1]: message repeated 2 times: [ {failed}]{noise}"
    known = rules.non_event(event_from_text(repeated, "json", "x"))
    assert known is not None and known.id == "sshd-failed-login"


@pytest.mark.parametrize(
    ("written", "port"),
    [("99999", None), ("9" * 5000, None), ("000000000022", 22), ("65535", 65535)],
)
def test_a_port_no_connection_has_is_no_port_never_pythons_error(
    written: str, port: int | None
) -> None:
    """The report: 5000 digits in sshd's `port` made the login `invalid` with CPython's
    int-conversion message as its reason (`Exceeds the limit (4300 digits) ...`), where 99999
    already gave a login without a port. Both are now that login, without a port."""
    line = "Nov 27 01:02:03 bastion sshd[1]: Accepted publickey for alice from 203.0.113.5 port "
    raw = event_from_text(line + f"{written} ssh2", "json", "x")
    found = finishes(lambda: recognise(make_config().rule_set(), ParsedItem(0, raw=raw)))
    assert isinstance(found, SecurityEvent), found
    assert (found.rule_id, found.actor, found.port) == ("sshd-accepted", "alice", port)


@pytest.mark.parametrize("written", ["²", "٤٣", "+22", "2_2", "-1", ""])
def test_a_port_from_a_field_is_ascii_decimal_or_none(written: str) -> None:
    """A rule's port may come from a JSON field: digits `str.isdigit` accepts but `int` refuses
    (`²`: before, a `ValueError` text as the reason) or reads otherwise (Arabic-Indic digits,
    `2_2`) are no port."""
    rule = Rule.model_validate(
        {
            "id": "vpn-login",
            "title": "VPN login",
            "match": {"fields": {"event": "login"}},
            "event": {"actor": "{user}", "action": "VPN login", "port": "{client_port}"},
        }
    )
    fields = {"event": "login", "user": "alice", "client_port": written}
    raw = RawEvent(source="json", provider_id="x", message="", fields=fields)
    event = RuleSet([rule], timedelta(hours=1)).recognise(raw)
    assert event is not None and event.port is None


def test_an_otlp_int_value_int_refuses_fails_no_batch() -> None:
    """OTLP/JSON sends `intValue` as text. `²` (a digit to `str.isdigit`, not to `int`) made
    the whole export a 500; it is now kept as the text it was, beside a record's good ints."""
    attributes = [
        {"key": "odd", "value": {"intValue": "²"}},
        {"key": "pid", "value": {"intValue": "-42"}},
    ]
    record = {"timeUnixNano": "1796014800000000000", "body": {"stringValue": "x"}}
    export = {
        "resourceLogs": [{"scopeLogs": [{"logRecords": [{**record, "attributes": attributes}]}]}]
    }
    [item] = parse_generic(export, Reading())
    assert item.raw is not None and item.raw.fields["attributes"] == {"odd": "²", "pid": -42}


def test_papertrail_ids_compare_as_numbers_without_int() -> None:
    """A search page's ids are compared as numbers; one no `int` reads (5000 digits, `²`)
    stopped the poll with CPython's error."""
    assert newer("99", "100") == "100"
    assert newer("9" * 5000, "1" + "0" * 5000) == "1" + "0" * 5000
    assert newer("²", "1") == "1" and newer("0", "²") == "²"
