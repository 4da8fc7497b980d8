"""`powertrip backfill` on the real dev server: the same ids as webhook deliveries (overlaps are
duplicates), an interrupted run resumed starts only the rest, malformed lines are reported by line
number, and stale events get one security-channel digest instead of DMs."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.cli.backfill import InputPosition
from powertrip.contracts.polling import STALE_REPORT_WORKFLOW, StaleReport
from powertrip.models import EventStatus
from powertrip.sandbox.fake_papertrail import FakePapertrail
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.services.backfill import Backfill, Report, aiter_chunks
from powertrip.services.starts import report_stale
from powertrip.settings import Settings
from powertrip.sources.cloudwatch import encode_awslogs
from powertrip.sources.files import InputLines, chunked, records
from powertrip.temporal import ACTOR
from tests.aws import cloudtrail_login
from tests.harness import (
    CONFIG_YAML,
    POWERTRIP,
    eventually,
    exists,
    make_config,
    make_settings,
    port_for,
    run_async,
    running_worker,
    summary,
)
from tests.servers import PAPERTRAIL_TOKEN, SECURITY_CHANNEL, ServedApp
from workflows.approval import ApprovalWorkflow


@pytest.fixture
def settings(dev_env: WorkflowEnvironment, slack_api_url: str) -> Settings:
    return make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )


def syslog(user: str, host: str, port: int, when: datetime | None = None) -> str:
    stamp = (when or datetime.now(UTC)).strftime("%b %d %H:%M:%S")
    return (
        f"{stamp} {host} sshd[{port}]: Accepted publickey for {user} from 203.0.113.7 "
        f"port {port} ssh2: ED25519 SHA256:abc"
    )


def noise(host: str, n: int) -> str:
    stamp = datetime.now(UTC).strftime("%b %d %H:%M:%S")
    return f"{stamp} {host} sshd[{n}]: Connection closed by 198.51.100.{n % 250} port {n} [preauth]"


def papertrail_event(provider_id: int, user: str, host: str) -> dict[str, Any]:
    return {
        "id": str(provider_id),
        "received_at": datetime.now(UTC).isoformat(),
        "generated_at": datetime.now(UTC).isoformat(),
        "source_name": host,
        "hostname": host,
        "program": "sshd",
        # Each login its own source port (a repeat of one id, the same one).
        "message": f"Accepted publickey for {user} from 203.0.113.7 port {port_for(provider_id)}",
    }


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "powertrip.yaml"
    path.write_text(CONFIG_YAML)
    return path


async def test_malformed_lines_are_reported_with_their_line_numbers(
    settings: Settings, config_file: Path, tmp_path: Path
) -> None:
    host = f"web-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "auth.log"
    log.write_text(
        "\n".join(
            [
                syslog("alice", host, 50001),
                noise(host, 7),
                "this is not a syslog line",
                "",
                syslog("bob", host, 50002),
                "<<< garbage >>>",
            ]
        )
        + "\n"
    )
    first = await run_async(settings, config_file, str(log), "--json")
    assert first.returncode == 1, first.stderr  # invalid input is not a silent success
    report = summary(first)
    keys = ("read", "matched", "started", "unmatched", "non_events", "invalid")
    assert {k: report[k] for k in keys} == {
        "read": 5,
        "matched": 2,
        "started": 2,
        "unmatched": 0,
        "non_events": 1,  # sshd's `Connection closed ... [preauth]`: counted, not reviewed
        "invalid": 2,
    }
    assert [p["where"] for p in report["invalid_records"]] == ["line 3", "line 6"]

    again = await run_async(settings, config_file, str(log))
    assert again.returncode == 1
    text = again.stdout
    assert "already known" in text and "line 3: no syslog framing" in text
    assert "line 6: no syslog framing" in text
    started_row = next(line for line in text.splitlines() if "started" in line)
    assert started_row.split()[-2] == "0"


async def test_host_names_the_records_of_a_file_that_names_none(
    dev_env: WorkflowEnvironment, settings: Settings, config_file: Path, tmp_path: Path
) -> None:
    """macOS `log show` says `localhost` for every host (and `--style compact` nothing):
    `--host` names it; a line naming its own host keeps it."""
    host, other = f"mac-{uuid.uuid4().hex[:6]}", f"web-{uuid.uuid4().hex[:6]}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    log = tmp_path / "log-show.txt"
    log.write_text(
        f"{stamp}.123456+0000  localhost sshd[501]: Accepted publickey for alice from "
        "203.0.113.7 port 40101 ssh2\n"
        f"{stamp}.123 Df sshd[502:1a2b] Accepted publickey for bob from 203.0.113.7 port 40102 "
        "ssh2\n" + syslog("carol", other, 40103) + "\n"
    )
    result = await run_async(settings, config_file, str(log), "--host", host, "--json")
    assert summary(result)["started"] == 3, result.stdout + result.stderr

    async def actors_on(name: str) -> list[str]:
        listed = dev_env.client.list_workflows(f'PowertripHost = "{name}"')
        return sorted([str(e.typed_search_attributes.get(ACTOR)) async for e in listed])

    async def all_three() -> bool:
        return len(await actors_on(host)) + len(await actors_on(other)) == 3

    await eventually(all_three, within=15)
    assert await actors_on(host) == ["alice", "bob"]
    assert await actors_on(other) == ["carol"]


async def test_interrupted_backfill_resumed_starts_only_the_rest(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    host = f"db-{uuid.uuid4().hex[:6]}"
    lines = []
    for n in range(200):
        lines.append(syslog(f"user{n % 7}", host, 40000 + n))
        lines.append(noise(host, n))
    rules = make_config().rule_set()

    class Interrupted(Exception):
        pass

    def crash_after_two(part: Report, ordinal: int) -> None:
        if ordinal == 1:
            raise Interrupted

    first = Backfill(dev_env.client, rules, settings.task_queue, on_chunk=crash_after_two)
    with pytest.raises(Interrupted):
        await first.run(aiter_chunks(chunked(records(lines), size=50)))
    assert 0 < first.report.started < 200

    second = Backfill(dev_env.client, rules, settings.task_queue)
    report = await second.run(aiter_chunks(chunked(records(lines), size=50)))
    assert report.read == 400 and report.matched == 200 and report.non_events == 200
    # What the first run started (counted or caught mid-flight) is known; nothing twice.
    assert report.already_known >= first.report.started
    assert report.started + report.already_known == 200
    ids = {e for e in await _event_ids(dev_env.client, rules, lines)}
    assert len(ids) == 200
    for event_id in list(ids)[:20]:
        await dev_env.client.get_workflow_handle(event_id).describe()


async def _event_ids(
    client: Client, rules: Any, lines: list[str], year: int | None = None
) -> list[str]:
    ids = []
    for located in records(lines, year=year):
        assert located.item.raw is not None
        event = rules.recognise(located.item.raw)
        if event:
            ids.append(event.event_id)
    return ids


async def test_backfill_overlapping_webhook_deliveries_creates_nothing_twice(
    dev_env: WorkflowEnvironment, settings: Settings, config_file: Path, tmp_path: Path
) -> None:
    host = f"bastion-{uuid.uuid4().hex[:6]}"
    base = uuid.uuid4().int % 10**15
    delivered = [papertrail_event(base + i, "alice", host) for i in range(3)]
    missed = [papertrail_event(base + 10 + i, "bob", host) for i in range(2)]
    async with ServedApp(create_app(settings)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as http:
            response = await http.post(
                "/webhooks/papertrail",
                json={"events": delivered},
                headers={"Authorization": "Bearer hook-secret"},
            )
    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == ["started"] * 3, response.text

    # A saved search API answer covering the webhook's period and the missed events after it.
    export = tmp_path / "papertrail-search.json"
    export.write_text(
        json.dumps({"events": delivered + missed, "reached_beginning": True}, indent=2)
    )

    dry = summary(await run_async(settings, config_file, str(export), "--dry-run", "--json"))
    assert (dry["started"], dry["already_known"]) == (2, 3)
    assert dry["would_start"] == [f"papertrail-{e['id']}" for e in missed]
    for event in missed:  # a dry run starts nothing
        with pytest.raises(Exception, match="not found"):
            await dev_env.client.get_workflow_handle(f"papertrail-{event['id']}").describe()

    real = summary(await run_async(settings, config_file, str(export), "--json"))
    assert (real["read"], real["started"], real["already_known"]) == (5, 2, 3)
    # One workflow per Papertrail id, whichever path saw it first.
    for event in delivered + missed:
        handle = dev_env.client.get_workflow_handle(f"papertrail-{event['id']}")
        assert (await handle.describe()).id == f"papertrail-{event['id']}"

    # papertrail-cli --json / NDJSON of the same events: all duplicates now.
    ndjson = tmp_path / "papertrail.ndjson"
    ndjson.write_text("".join(json.dumps(e) + "\n" for e in delivered + missed))
    again = summary(await run_async(settings, config_file, str(ndjson), "--json"))
    assert (again["started"], again["already_known"]) == (0, 5)


async def test_papertrail_api_backfill_between_since_and_until(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    config_file: Path,
    fake_papertrail: FakePapertrail,
    papertrail_url: str,
) -> None:
    host = f"api-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    fake_papertrail.add(
        f"Accepted publickey for alice from 203.0.113.7 port 1 ssh2 ({host})",
        hostname=host,
        received_at=now - timedelta(days=3),
    )
    inside = [
        fake_papertrail.add(
            f"Accepted publickey for bob from 203.0.113.7 port {i} ssh2",
            hostname=host,
            received_at=now - timedelta(minutes=30 + i),
        )
        for i in range(4)
    ]
    for i in range(20):
        fake_papertrail.add(f"session closed {i}", received_at=now - timedelta(minutes=40))
    env = {
        "POWERTRIP_PAPERTRAIL_API_TOKEN": PAPERTRAIL_TOKEN,
        "POWERTRIP_PAPERTRAIL_API_URL": papertrail_url,
    }
    args = ("--source", "papertrail", "--since", "2h", "--until", now.isoformat(), "--json")
    first = summary(await run_async(settings, config_file, *args, extra_env=env))
    assert (first["read"], first["matched"], first["started"]) == (24, 4, 4)
    assert all(r["tail"] == "false" for r in fake_papertrail.requests)
    for event in inside:
        await dev_env.client.get_workflow_handle(f"papertrail-{event.id}").describe()
    second = summary(await run_async(settings, config_file, *args, extra_env=env))
    assert (second["started"], second["already_known"]) == (0, 4)


async def test_stale_events_get_one_channel_digest_and_no_dm(
    dev_env: WorkflowEnvironment, settings: Settings, fake_slack: FakeSlack
) -> None:
    host = f"old-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    lines = [
        syslog("alice", host, 61001, now - timedelta(days=10)),
        syslog("alice", host, 61002, now - timedelta(days=9)),
        syslog("alice", host, 61003, now - timedelta(minutes=5)),
    ]
    rules = make_config().rule_set()
    async with running_worker(dev_env.client, settings):
        backfill = Backfill(
            dev_env.client, rules, settings.task_queue, stale_before=now - timedelta(days=7)
        )
        report = await backfill.run(aiter_chunks(chunked(records(lines, now=now))))
        assert (report.started, report.stale) == (3, 2)
        digest_id = await report_stale(
            dev_env.client,
            report.stale_events,
            "backfill of auth.log",
            timedelta(days=7),
            settings.task_queue,
        )
        assert digest_id is not None
        await dev_env.client.get_workflow_handle(digest_id).result()
        # Announcing the same events again (a retried run) posts nothing more.
        assert (
            await report_stale(
                dev_env.client,
                report.stale_events,
                "backfill of auth.log",
                timedelta(days=7),
                settings.task_queue,
            )
            == digest_id
        )

        dms = await eventually(
            lambda: [m for m in fake_slack.messages.values() if m.channel == "D0ALICE"]
        )
        channel = [m for m in fake_slack.messages.values() if m.channel == SECURITY_CHANNEL]
        stale_ids = [e.event_id for e in report.stale_events]
        for event_id in stale_ids:
            record = await dev_env.client.get_workflow_handle(event_id).query(
                ApprovalWorkflow.state
            )
            assert record.status is EventStatus.PENDING
            assert [t.what for t in record.timeline][-1] == "stale"
    [fresh] = set(await _event_ids(dev_env.client, rules, lines)) - set(stale_ids)
    assert len(dms) == 1 and fresh in json.dumps(dms[0].blocks)
    assert len(channel) == 1
    digest = json.dumps(channel[0].blocks)
    assert "2 stale events" in digest and all(i in digest for i in stale_ids)


async def test_cloudwatch_export_overlapping_subscription_deliveries(
    dev_env: WorkflowEnvironment, settings: Settings, config_file: Path, tmp_path: Path
) -> None:
    stream = f"i-{uuid.uuid4().hex[:12]}"
    base = uuid.uuid4().int % 10**20
    now_ms = int(datetime.now(UTC).timestamp() * 1000)

    def log_event(n: int) -> dict[str, Any]:
        stamp = datetime.now(UTC).strftime("%b %d %H:%M:%S")
        message = (
            f"{stamp} {stream} sshd[{n}]: Accepted publickey for alice from 203.0.113.7 "
            f"port {50000 + n} ssh2"
        )
        return {"id": str(base + n), "timestamp": now_ms, "message": message}

    delivered = [log_event(n) for n in range(2)]
    subscription = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/var/log/secure",
        "logStream": stream,
        "subscriptionFilters": ["powertrip"],
        "logEvents": delivered,
    }
    async with ServedApp(create_app(settings)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as http:
            response = await http.post(
                "/webhooks/cloudwatch",
                json=encode_awslogs(subscription),
                headers={"Authorization": "Bearer hook-secret"},
            )
    assert response.status_code == 202, response.text
    assert [r["status"] for r in response.json()["results"]] == ["started"] * 2

    # `aws logs filter-log-events` output for the same stream, including one more event.
    export = {
        "events": [
            {
                "logStreamName": stream,
                "timestamp": e["timestamp"],
                "message": e["message"],
                "ingestionTime": e["timestamp"] + 5,
                "eventId": e["id"],
            }
            for e in [*delivered, log_event(2)]
        ],
        "searchedLogStreams": [{"logStreamName": stream, "searchedCompletely": True}],
    }
    path = tmp_path / "filter-log-events.json"
    path.write_text(json.dumps(export, indent=2))
    report = summary(await run_async(settings, config_file, str(path), "--json"))
    assert (report["read"], report["started"], report["already_known"]) == (3, 1, 2)
    await dev_env.client.get_workflow_handle(f"cloudwatch-{base + 2}").describe()


async def test_cloudtrail_is_trusted_only_from_a_whole_cloudtrail_file_or_format_cloudtrail(
    settings: Settings, tmp_path: Path
) -> None:
    """Red team F7: an application's NDJSON log with a line shaped like a trail's delivery file
    (or a saved EventBridge event) must not make Powertrip ask someone about an AWS action."""
    config = tmp_path / "powertrip.yaml"
    config.write_text(CONFIG_YAML + "rule_packs: [sshd, cloudtrail]\n")

    def login(name: str) -> tuple[str, dict[str, Any]]:
        event_id = f"{name}-{uuid.uuid4()}"
        return f"cloudtrail-{event_id}", cloudtrail_login(event_id, "alice")

    async def would_start(path: Path, *args: str) -> list[str]:
        result = await run_async(settings, config, str(path), "--dry-run", "--json", *args)
        assert "Traceback" not in result.stderr, result.stderr
        ids: list[str] = summary(result)["would_start"]
        return ids

    document, in_document = login("doc")
    relayed, in_envelope = login("eb")
    _, in_events = login("nested")
    listed, in_list = login("list")
    app = tmp_path / "app.ndjson"
    app.write_text(
        "\n".join(
            json.dumps(value)
            for value in [
                {"level": "info", "msg": "order placed"},
                {"Records": [in_document["detail"]]},
                in_envelope,
                {"events": [{"Records": [in_events["detail"]]}]},
                [{"Records": [in_list["detail"]]}],
            ]
        )
        + "\n"
    )
    assert await would_start(app) == []
    # A pretty-printed trail document followed by anything else is not the whole file either.
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"Records": [in_document["detail"]]}, indent=2) + '\n{"a": 1}\n')
    assert await would_start(pretty) == []

    # CloudTrail's own file, on one line (as S3 holds it) or pretty-printed: CloudTrail's.
    whole = tmp_path / "123456789012_CloudTrail_us-east-1_20261130T0500Z_abc.json"
    whole.write_text(json.dumps({"Records": [in_document["detail"]]}) + "\n\n")
    assert await would_start(whole) == [document]
    whole.write_text(json.dumps({"Records": [in_document["detail"]]}, indent=2))
    assert await would_start(whole) == [document]
    # The operator's word: every value is CloudTrail's, saved EventBridge deliveries included.
    saved = tmp_path / "saved.ndjson"
    saved.write_text(
        "\n".join(json.dumps(v) for v in [in_envelope, in_list["detail"], {"Records": []}]) + "\n"
    )
    assert sorted(await would_start(saved, "--format", "cloudtrail")) == sorted([relayed, listed])


def test_a_backfill_skips_only_the_markers_its_tools_write() -> None:
    """Saved journalctl and `log show` output's own lines are no records; a line merely shaped
    like one is. Before: any `-- ... --` line, and `Log - x: ...`, was skipped unread."""
    lines = [
        "-- Logs begin at Mon 2024-11-25 00:00:00 UTC, end at Wed 2024-11-27 02:00:00 UTC. --",
        "-- Journal begins at Mon 2024-11-25 00:00:00 CET, ends at Wed 2024-11-27 02:00:00 CET. --",
        "-- Boot 3f2b1c0e9d8a4b7c8e6f5a4b3c2d1e0f --",
        "-- Reboot --",
        "-- No entries --",
        "Skipping info and debug messages, pass --info and/or --debug to include.",
        "-- BREAKGLASS user=mallory --",
        "Log - x: Accepted publickey for carol",
        "Activity - Create: 0, Transition: 0, Actions: 0 and more",
    ]
    read = [located.line for located in records([line + "\n" for line in lines])]
    assert read == [7, 8, 9]


async def test_ctrl_c_stops_starting_sends_the_stale_digest_and_says_how_to_resume(
    dev_env: WorkflowEnvironment, settings: Settings, config_file: Path, tmp_path: Path
) -> None:
    """SIGINT to a real `powertrip backfill`: no hang and no silent exit 0. It starts nothing
    more, finishes what is in flight, sends the stale digest for what it did start (those
    events get no DM: the digest is all anybody hears of them), says how far it got and that
    rerunning resumes, and exits 130."""
    host = f"old-{uuid.uuid4().hex[:6]}"
    lines = [
        f"Nov 27 01:{n // 60 % 60:02d}:{n % 60:02d} {host} sshd[{n}]: Accepted publickey for "
        f"user{n % 7} from 203.0.113.7 port {20000 + n} ssh2"
        for n in range(1500)
    ]
    log = tmp_path / f"long-{host}.log"
    log.write_text("\n".join(lines) + "\n")
    rules = make_config().rule_set()
    [first_id] = await _event_ids(dev_env.client, rules, lines[:1], year=2020)
    env = {
        **os.environ,
        "POWERTRIP_TEMPORAL_ADDRESS": settings.temporal_address,
        "POWERTRIP_TASK_QUEUE": settings.task_queue,
        "POWERTRIP_CONFIG": str(config_file),
    }
    args = [str(POWERTRIP), "backfill", str(log), "--year", "2020", "--json"]
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        await eventually(lambda: exists(dev_env, first_id), within=60)
        proc.send_signal(signal.SIGINT)
        output, errors = await asyncio.wait_for(proc.communicate(), 90)  # never a hang
    finally:
        if proc.returncode is None:
            proc.kill()
    out, err = output.decode(), errors.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["interrupted"] is True
    assert 0 < report["started"] < len(lines)
    assert report["stale"] == report["started"]  # 2020: every one older than 7 days
    said = " ".join(err.split())
    assert f"interrupted after {report['read']:,} records ({report['started']:,} started)" in said
    assert "Run the same command again to resume" in said

    # The digest of exactly what was started, under this run's name (visibility lags a start).
    async def digest_totals() -> list[int]:
        query = f"WorkflowType = '{STALE_REPORT_WORKFLOW}'"
        totals = []
        async for digest in dev_env.client.list_workflows(query):
            history = await dev_env.client.get_workflow_handle(digest.id).fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes
            [sent] = await dev_env.client.data_converter.decode(
                started.input.payloads, [StaleReport]
            )
            if sent.found_by == f"backfill of {log.name}":
                totals.append(sent.total)
        return totals

    assert await eventually(digest_totals) == [report["stale"]]

    # Resumed: only the rest starts.
    again = await asyncio.to_thread(
        subprocess.run, args, env=env, capture_output=True, text=True, timeout=300
    )
    rest = summary(again)
    assert again.returncode == 0, again.stderr
    assert rest["interrupted"] is False
    assert rest["already_known"] >= report["started"]
    assert rest["started"] + rest["already_known"] == len(lines)


async def test_progress_moves_as_records_finish_not_per_chunk() -> None:
    """The bar sat at 0 until a whole 5,000-record chunk finished: records are now counted
    (`Backfill.done`, `on_record`) as each is done, and the bytes they took are interpolated
    within their chunk (`InputPosition`), not taken from the reading, which runs ahead."""
    lines = [syslog(f"user{n}", "progress-host", 30000 + n) for n in range(300)]
    seen: list[int] = []
    at_first_chunk: list[int] = []
    runner = Backfill(None, make_config().rule_set(), "q", dry_run=True)
    runner.on_record = lambda _result: seen.append(runner.done.read)
    runner.on_chunk = lambda _part, _ordinal: at_first_chunk.append(runner.done.read)
    await runner.run(aiter_chunks(chunked(records(lines), size=200)))
    assert seen == list(range(1, 301))
    assert at_first_chunk[0] >= 200  # every record of the chunk was counted before it was done

    position = InputPosition()
    stream = InputLines(io.BytesIO(("\n".join(lines) + "\n").encode()), "auth.log")
    chunks = list(position.marked(chunked(records(stream), size=200), stream))
    assert [len(c) for c in chunks] == [200, 100]
    assert position.bytes_at(0) == 0
    assert position.bytes_at(100) == pytest.approx(position.bytes[1] / 2)
    assert position.bytes_at(300) == stream.bytes
    assert position.bytes_at(400) == stream.bytes
