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
from datetime import UTC, datetime
from typing import TypeVar

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.models import RawEvent
from powertrip.sources import PayloadError
from powertrip.sources.cloudwatch import encode_awslogs, parse_cloudwatch, parse_subscription
from powertrip.sources.files import InputFormat, records
from powertrip.sources.generic import parse_json_values
from powertrip.sources.shippers import FieldError, parse_time
from powertrip.sources.sns import SnsMessage, parse_notification
from powertrip.sources.syslog import event_from_text
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
async def test_json_nested_deeper_than_the_parser_goes_is_a_400(
    http: httpx.AsyncClient, path: str
) -> None:
    body = b'{"events": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    response = await http.post(
        path, content=body, headers={**WEBHOOK_HEADERS, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_a_deeply_nested_record_fails_alone_in_ndjson_cloudwatch_and_backfill() -> None:
    deep = '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}"
    good = json.dumps({"id": "ok", "program": "sshd", "message": ssh_line("alice")})
    items = parse_json_values(f"{deep}\n{good}\n".encode())
    assert items[0].error is not None and "nested" in items[0].error
    assert items[1].raw is not None
    # A CloudWatch log line that looks like JSON but nests too deeply is matched as text.
    [item] = parse_subscription(
        {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "timestamp": 0, "message": deep}]}
    )
    assert item.raw is not None and item.raw.message == deep
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
