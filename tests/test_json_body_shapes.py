"""`/webhooks/json` reads each record as what it is: no one record, first or not, decides how the
rest of its body is read. A body that is one JSON value is that document; anything else is read
record by record, and text that is no record is its own `invalid` (or, in `text/plain`, a log
line) while the records around it start."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.sources.files import InputFormat, records
from powertrip.sources.generic import iter_json_values
from tests.harness import CONFIG_YAML, WEBHOOK_HEADERS, settings_with_config
from tests.servers import ServedApp

TEXT = {**WEBHOOK_HEADERS, "Content-Type": "text/plain"}
# What a sender of JSON labels it: JSON, nothing at all, or `curl -d`'s form.
JSON_LABELS = [
    {**WEBHOOK_HEADERS, "Content-Type": "application/json"},
    WEBHOOK_HEADERS,
    {**WEBHOOK_HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
]


@pytest.fixture
async def http(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = CONFIG_YAML + "rule_packs: [sshd, sudo, custom-example]\n"
    app = create_app(settings_with_config(dev_env, slack_api_url, tmp_path, config))
    async with ServedApp(app) as running, httpx.AsyncClient(base_url=running.url) as client:
        yield client


async def post(
    http: httpx.AsyncClient,
    body: str | bytes,
    headers: dict[str, str],
    path: str = "/webhooks/json",
) -> list[dict[str, Any]]:
    response = await http.post(path, content=body, headers=headers)
    assert response.status_code == 202, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def user() -> str:
    return f"u{uuid.uuid4().hex[:8]}"


def login(name: str) -> str:
    port = 32768 + uuid.uuid4().int % 28000
    return (
        f"Nov 27 01:02:03 bastion sshd[9]: Accepted publickey for {name} from 198.51.100.9 "
        f"port {port} ssh2"
    )


def sudo(name: str) -> str:
    return f"Nov 27 01:02:04 bastion sudo: {name} : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id"


def break_glass(name: str, indent: int | None = None) -> str:
    record = {"host": "db-1", "program": "breakglass", "message": f"BREAKGLASS user={name}"}
    return json.dumps(record, indent=indent)


async def test_text_lines_after_a_json_first_line_are_read_as_lines(
    http: httpx.AsyncClient,
) -> None:
    name = user()
    body = f'{{"level":"info","msg":"app started"}}\n{login(name)}\n{sudo(name)}\n'
    results = await post(http, body, TEXT)
    assert [r["status"] for r in results] == ["unmatched", "started", "started"]
    assert [r["rule_id"] for r in results[1:]] == ["sshd-accepted", "sudo-command"]


@pytest.mark.parametrize(
    "first",
    [
        "[1/1] something",
        "{not json",
        "[   12.345678] usb 1-1: new high-speed USB device",  # dmesg
        '{"msg": "a JSON line with a syslog line after it"}',
    ],
)
async def test_a_text_body_whose_first_line_starts_like_json_is_read_line_by_line(
    http: httpx.AsyncClient, first: str
) -> None:
    results = await post(http, f"{first}\n{login(user())}\n", TEXT)
    assert [r["status"] for r in results] == ["unmatched", "started"]
    assert results[1]["rule_id"] == "sshd-accepted"


@pytest.mark.parametrize("headers", JSON_LABELS)
@pytest.mark.parametrize(
    ("first", "reason"),
    [('{"message": "trunc', "line 1: not JSON: "), ('"hello"', "expected a JSON object")],
)
async def test_a_broken_first_line_of_ndjson_is_its_own_invalid(
    http: httpx.AsyncClient, headers: dict[str, str], first: str, reason: str
) -> None:
    body = "\n".join([first, *(break_glass(user()) for _ in range(3))])
    results = await post(http, body, headers)
    assert [r["status"] for r in results] == ["invalid", "started", "started", "started"]
    assert results[0]["index"] == 0 and reason in results[0]["reason"]


@pytest.mark.parametrize(
    ("between", "indent"),
    [("", None), ("\n", None), ("\n", 2)],
    ids=["run-together", "lines", "pretty"],
)
async def test_a_broken_value_among_values_one_after_another_costs_only_itself(
    http: httpx.AsyncClient, between: str, indent: int | None
) -> None:
    broken = '{"message": oops}' if indent is None else '{\n  "message": oops\n}'
    good = [break_glass(user(), indent) for _ in range(30)]
    body = between.join([good[0], broken, *good[1:]])
    results = await post(http, body, JSON_LABELS[2])  # `curl -d @file` (a form, to curl)
    assert [r["status"] for r in results] == ["started", "invalid"] + ["started"] * 29
    assert "not JSON" in results[1]["reason"]


async def test_a_body_that_is_one_document_is_still_that_document(http: httpx.AsyncClient) -> None:
    names = [user(), user()]
    pretty = json.dumps({"events": [json.loads(break_glass(n)) for n in names]}, indent=2)
    for headers in [*JSON_LABELS, TEXT]:
        results = await post(http, pretty, headers)
        assert [r["index"] for r in results] == [0, 1]
        assert {r["status"] for r in results} <= {"started", "duplicate"}
    # Nothing in it is JSON: the 400 says why, as before.
    response = await http.post(
        "/webhooks/json", content=b'{"message": oops}', headers=JSON_LABELS[0]
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]


async def test_a_line_separator_inside_a_json_string_does_not_split_its_record(
    http: httpx.AsyncClient,
) -> None:
    # U+2028 (and U+0085) may stand unescaped in a JSON string: it is no line break of NDJSON.
    record = {**json.loads(break_glass(user())), "note": "one\u2028two\x85three"}
    body = json.dumps(record, ensure_ascii=False) + "\n" + break_glass(user())
    results = await post(
        http, body.encode(), {**WEBHOOK_HEADERS, "Content-Type": "application/x-ndjson"}
    )
    assert [r["status"] for r in results] == ["started", "started"]


async def test_a_byte_order_mark_does_not_cost_the_first_record(http: httpx.AsyncClient) -> None:
    # PowerShell's `Out-File -Encoding utf8` (Windows PowerShell 5) writes one.
    body = "\ufeff" + break_glass(user()) + "\n" + break_glass(user())
    results = await post(http, body.encode(), JSON_LABELS[0])
    assert [r["status"] for r in results] == ["started", "started"]


async def test_bad_bytes_in_one_cloudwatch_log_event_cost_only_that_event(
    http: httpx.AsyncClient,
) -> None:
    name = user()
    data = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/var/log/secure",
        "logStream": "bastion",
        "logEvents": [
            {"id": uuid.uuid4().hex, "timestamp": 1795741323000, "message": "BADBYTES from an app"},
            {"id": uuid.uuid4().hex, "timestamp": 1795741324000, "message": login(name)},
        ],
    }
    # The subscription's JSON with bytes that are no UTF-8 inside the first line's message.
    raw = json.dumps(data).encode().replace(b"BADBYTES", b"\xff\xfe\xc3(")
    wire = {"awslogs": {"data": base64.b64encode(gzip.compress(raw)).decode()}}
    results = await post(http, json.dumps(wire), JSON_LABELS[0], "/webhooks/cloudwatch")
    assert [r["status"] for r in results] == ["unmatched", "started"]


def test_a_broken_value_in_a_backfilled_file_costs_only_itself() -> None:
    lines = [break_glass("alice", 2), '{"message": oops}', break_glass("bob", 2)]
    located = list(
        records([line + "\n" for line in "\n".join(lines).splitlines()], InputFormat.JSON)
    )
    assert [bool(one.item.error) for one in located] == [False, True, False]
    assert located[1].line == 6 and "not JSON" in (located[1].item.error or "")


def test_where_reading_resumes_after_a_broken_value() -> None:
    text = '{"a": 1,\n{"b": 2}\n[1, 2,\n{"c": 3}{"d": x}{"e": 5}\n{"f": "}{"}'
    read = [
        (value.line, value.value if value.error is None else None)
        for value in iter_json_values(text)
    ]
    assert read == [
        (1, None),
        (2, {"b": 2}),
        (3, None),
        (4, {"c": 3}),
        (4, None),
        (4, {"e": 5}),
        (5, {"f": "}{"}),
    ]
