"""One event per action, whichever route delivered it; a conflicting id is never a duplicate.

The issue's example (17, and 10 §2): a raw auth.log backfill over a period the Papertrail webhook
already covered. The raw lines carry sshd's pid and no provider id, the webhook event has a
Papertrail id and no pid, and the file holds the line in two timestamp forms (RFC 3164 in the
host's local time, without a zone, and RFC 3339 with one). The backfill must start nothing, DM
nobody, and leave the HIDS answer at `approved`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.identity import Occurrence, identity_of, legacy_identity_of, same_action
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.sandbox.interactions import block_action_payload, signed_request
from powertrip.services import recognise, starts
from powertrip.services.hids import MatchQuestion
from powertrip.settings import Settings
from tests.harness import (
    API_HEADERS,
    CONFIG_YAML,
    WEBHOOK_HEADERS,
    alert,
    api_client,
    cli,
    eventually,
    make_event,
    message_for,
    running_worker,
    summary,
)
from tests.servers import SECURITY_CHANNEL, SIGNING_SECRET, free_port

# The webhook's time for the login: Papertrail's zoned receive time (09:02:03 UTC).
RECEIVED_AT = "2026-11-27T01:02:03-08:00"


def login_line(user: str, address: str, port: int) -> str:
    return f"Accepted publickey for {user} from {address} port {port} ssh2: ED25519 SHA256:abc"


def papertrail_event(provider_id: int, host: str, time: str, message: str) -> dict[str, Any]:
    """A Papertrail event of `host` received at `time` (`HH:MM:SSZ` on 30 November, or ISO)."""
    return {
        "id": provider_id,
        "received_at": time if "T" in time else f"2026-11-30T{time}",
        "hostname": host,
        "source_name": host,
        "program": "sshd",
        "message": message,
    }


def webhook_event(
    provider_id: int, host: str, user: str, port: int, address: str = "203.0.113.7"
) -> dict[str, Any]:
    return {
        "id": provider_id,
        "received_at": RECEIVED_AT,
        "hostname": host,
        "source_name": host,
        "program": "sshd",
        "message": login_line(user, address, port),
    }


def backfill(
    settings: Settings, config: Path, *args: str, address: str | None = None
) -> subprocess.CompletedProcess[str]:
    extra = {"POWERTRIP_TEMPORAL_ADDRESS": address} if address else None
    return cli(settings, config, *args, extra_env=extra)


async def run_backfill(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(backfill, *args, **kwargs)


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr + result.stdout
    return summary(result)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "powertrip.yaml"
    path.write_text(CONFIG_YAML)
    return path


async def approve_as_owner(http: httpx.AsyncClient, fake: FakeSlack, event_id: str) -> None:
    dm = await eventually(lambda: message_for(fake, event_id, "D0ALICE"))
    body, headers = signed_request(
        SIGNING_SECRET,
        block_action_payload("U0ALICE", "approve", event_id, channel=dm.channel, message_ts=dm.ts),
    )
    assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success

    async def approved() -> bool:
        view = (await http.get(f"/v1/events/{event_id}", headers=API_HEADERS)).json()
        return bool(view["status"] == EventStatus.APPROVED)

    await eventually(approved, within=15)


async def match(http: httpx.AsyncClient, host: str, user: str, **extra: Any) -> dict[str, Any]:
    params = {"host": host, "user": user, "at": "2026-11-27T09:02:03Z", **extra}
    response = await http.get("/v1/approvals/match", params=params, headers=API_HEADERS)
    assert response.status_code == 200, response.text
    return dict(response.json())


def dms_to_alice(fake: FakeSlack) -> int:
    return sum(1 for m in fake.messages.values() if m.channel == "D0ALICE")


async def test_auth_log_backfill_over_a_webhook_period_starts_nothing_and_keeps_approved(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
    config_file: Path,
    tmp_path: Path,
) -> None:
    http, settings = served
    host = f"bastion-{uuid.uuid4().hex[:6]}"
    port = 52100
    async with running_worker(dev_env.client, settings):
        response = await http.post(
            "/webhooks/papertrail",
            json=alert(webhook_event(uuid.uuid4().int % 10**12, host, "alice", port)),
            headers=WEBHOOK_HEADERS,
        )
        [result] = response.json()["results"]
        assert result["status"] == "started", result
        await approve_as_owner(http, fake_slack, result["event_id"])
        before = await eventually(lambda: match_approved(http, host))
        assert before["events"][0]["event_id"] == result["event_id"]
        dms = dms_to_alice(fake_slack)

        # The host logs local time (UTC-8): its RFC 3164 line says 01:02:03 without a zone;
        # rsyslog's high-precision form of the same line carries the zone.
        log = tmp_path / "auth.log"
        line = login_line("alice", "203.0.113.7", port)
        log.write_text(
            f"Nov 27 01:02:03 {host} sshd[4242]: {line}\n"
            f"2026-11-27T01:02:03.518231-08:00 {host} sshd[4242]: {line}\n"
            f"Nov 27 01:02:04 {host} sshd[4242]: pam_unix(sshd:session): session opened\n"
        )
        dry = report_of(
            await run_backfill(
                settings, config_file, str(log), "--source", "papertrail", "--dry-run", "--json"
            )
        )
        assert (dry["matched"], dry["started"], dry["already_known"]) == (2, 0, 2), dry
        assert dry["would_start"] == [] and dry["unchecked_reason"] is None

        real = report_of(
            await run_backfill(settings, config_file, str(log), "--source", "papertrail", "--json")
        )
        assert (real["matched"], real["started"], real["already_known"]) == (2, 0, 2), real
        await asyncio.sleep(1.0)  # anything started would have DM'd by now
        assert dms_to_alice(fake_slack) == dms
    after = await match(http, host, "alice", address="203.0.113.7", port=str(port))
    assert (after["approved"], after["answer"]) == (True, "approved")
    assert [e["event_id"] for e in after["events"]] == [result["event_id"]]


async def match_approved(http: httpx.AsyncClient, host: str) -> dict[str, Any] | None:
    answer = await match(http, host, "alice")
    return answer if answer["approved"] else None


async def test_a_backfill_first_makes_the_later_webhook_copy_a_duplicate(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    config_file: Path,
    tmp_path: Path,
) -> None:
    """The other order: the raw line first (a poll or backfill), the provider's copy later."""
    http, settings = served
    host = f"web-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "auth.log"
    log.write_text(
        f"2026-11-27T09:02:04Z {host} sshd[77]: {login_line('bob', '198.51.100.4', 40001)}\n"
    )
    first = report_of(await run_backfill(settings, config_file, str(log), "--json"))
    assert first["started"] == 1
    response = await http.post(
        "/webhooks/papertrail",
        json=alert(webhook_event(uuid.uuid4().int % 10**12, host, "bob", 40001, "198.51.100.4")),
        headers=WEBHOOK_HEADERS,
    )
    [result] = response.json()["results"]
    assert result["status"] == "duplicate", result
    assert "another route" in result["reason"] and result["event_id"].startswith("syslog-")


async def test_copies_of_one_login_arriving_together_start_once(
    served: tuple[httpx.AsyncClient, Settings], dev_env: WorkflowEnvironment
) -> None:
    """Concurrent requests by two routes, and two members of one batch: visibility does not
    show a start yet, so the API's own guard must."""
    http, _ = served
    host = f"db-{uuid.uuid4().hex[:6]}"
    line = login_line("carol", "192.0.2.44", 51515)
    raw = f"2026-11-27T09:02:03Z {host} sshd[9]: {line}"
    json_batch = [
        {"id": uuid.uuid4().hex, "message": raw},
        {"id": uuid.uuid4().hex, "message": raw.replace("sshd[9]", "sshd")},
    ]
    papertrail = alert(webhook_event(uuid.uuid4().int % 10**12, host, "carol", 51515, "192.0.2.44"))
    responses = await asyncio.gather(
        http.post("/webhooks/json", json=json_batch, headers=WEBHOOK_HEADERS),
        http.post("/webhooks/papertrail", json=papertrail, headers=WEBHOOK_HEADERS),
    )
    statuses = sorted(r["status"] for resp in responses for r in resp.json()["results"])
    assert statuses == ["duplicate", "duplicate", "started"]


async def test_a_repeated_action_is_a_new_event(
    served: tuple[httpx.AsyncClient, Settings], tmp_path: Path
) -> None:
    """Never lost: another login (another source port), or the same sudo command a minute
    later, is a new event, whatever the route."""
    config = tmp_path / "sudo.yaml"
    config.write_text(CONFIG_YAML + "rule_packs: [sshd, sudo]\n")
    settings = served[1].model_copy(update={"config": config})
    async with api_client(settings) as http:
        await post_repeats(http)


async def post_repeats(http: httpx.AsyncClient) -> None:
    host = f"ops-{uuid.uuid4().hex[:6]}"
    sudo = "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id"
    records = [
        {
            "id": uuid.uuid4().hex,
            "message": f"2026-11-27T09:02:03Z {host} sshd[1]: "
            + login_line("alice", "203.0.113.7", 40000),
        },
        {
            "id": uuid.uuid4().hex,
            "message": f"2026-11-27T09:02:03Z {host} sshd[2]: "
            + login_line("alice", "203.0.113.7", 40001),
        },
        {"id": uuid.uuid4().hex, "message": f"2026-11-27T09:02:03Z {host} sudo: {sudo}"},
        {"id": uuid.uuid4().hex, "message": f"2026-11-27T09:03:03Z {host} sudo: {sudo}"},
        # Local time without a zone, 8 hours off: for a port-less action this is no copy.
        {"id": uuid.uuid4().hex, "message": f"Nov 27 01:02:03 {host} sudo: {sudo}"},
    ]
    response = await http.post("/webhooks/json", json=records, headers=WEBHOOK_HEADERS)
    assert response.status_code == 202, response.text
    assert [r["status"] for r in response.json()["results"]] == ["started"] * 5


async def test_zoneless_logins_of_one_host_an_hour_apart_are_two_events(
    served: tuple[httpx.AsyncClient, Settings],
) -> None:
    """Red team F8: two zone-less lines of one host share its zone, so no UTC offset lies between
    them, whatever route each took; a zoned copy a real zone's offset away is still a copy."""
    http, _ = served
    host = f"tz-{uuid.uuid4().hex[:6]}"
    line = login_line("alice", "198.51.100.9", 40000)
    body = f"Nov 30 05:00:00 {host} sshd[999]: {line}\nNov 30 06:00:30 {host} sshd[1001]: {line}\n"
    first = await http.post(
        "/webhooks/json",
        content=body,
        headers={**WEBHOOK_HEADERS, "Content-Type": "text/plain"},
    )
    assert [r["status"] for r in first.json()["results"]] == ["started", "started"], first.text
    # The same host's zone-less line by another route (a JSON shipper), 5:30 after the first.
    shipped = {"id": uuid.uuid4().hex, "message": f"Nov 30 10:30:00 {host} sshd[1002]: {line}"}
    second = await http.post("/webhooks/json", json=shipped, headers=WEBHOOK_HEADERS)
    assert second.json()["results"][0]["status"] == "started", second.text
    # A zoned copy (Papertrail) of the 10:30:00 line from a host on UTC+5:45: one login (no
    # zone is 0:15 or 1:15:30 off, so it is no copy of the others).
    copy = papertrail_event(uuid.uuid4().int % 10**12, host, "04:45:01Z", line)
    third = await http.post("/webhooks/papertrail", json=alert(copy), headers=WEBHOOK_HEADERS)
    [result] = third.json()["results"]
    assert result["status"] == "duplicate", result
    assert result["event_id"] == second.json()["results"][0]["event_id"]


@pytest.mark.parametrize("found_by", ["this process", "visibility"])
async def test_a_zoneless_line_received_live_is_no_copy_of_a_login_hours_later(
    served: tuple[httpx.AsyncClient, Settings],
    monkeypatch: pytest.MonkeyPatch,
    found_by: str,
) -> None:
    """Red team F8: a zone-less `05:00` line and a Papertrail login at 08:00Z collapsed (UTC-3 is
    a real offset). Received at 05:00Z, the line was written by then: another login. (The test
    cannot wait three hours: the later login is posted at once, stamped three hours ahead.)
    Whether this process remembers the line's start or only visibility shows it."""
    http, _ = served
    now = datetime.now(UTC).replace(microsecond=0)
    for wall_clock, papertrail_at, same in [
        (now - timedelta(seconds=5), now + timedelta(hours=3), False),  # the host is on UTC
        (now - timedelta(hours=3, seconds=5), now, True),  # UTC-3: the line is the login at now
    ]:
        host = f"lv-{uuid.uuid4().hex[:6]}"
        line = login_line("alice", "198.51.100.9", 47000)
        first = await http.post(
            "/webhooks/json",
            content=f"{wall_clock:%b %d %H:%M:%S} {host} sshd[999]: {line}\n",
            headers={**WEBHOOK_HEADERS, "Content-Type": "text/plain"},
        )
        [started] = first.json()["results"]
        assert started["status"] == "started", started
        if found_by == "visibility":
            await eventually(partial(listed, http, host), within=15)
            monkeypatch.setattr(recognise, "_RECENT_STARTS", {})
        stamp = papertrail_at.isoformat().replace("+00:00", "Z")
        copy = papertrail_event(uuid.uuid4().int % 10**12, host, stamp, line)
        second = await http.post("/webhooks/papertrail", json=alert(copy), headers=WEBHOOK_HEADERS)
        [result] = second.json()["results"]
        assert (result["status"] == "duplicate") is same, result
        if same:
            assert result["event_id"] == started["event_id"]


async def listed(http: httpx.AsyncClient, host: str) -> bool:
    """Whether the event list (visibility) shows an event of `host` yet."""
    response = await http.get("/v1/events", params={"host": host}, headers=API_HEADERS)
    return bool(response.json()["events"])


@pytest.mark.parametrize(
    "alerted, recorded",
    [
        ("2026-11-30T07:00:00.512+0200", "2026-11-30T05:00:00Z"),  # manager on the agent's zone
        ("2026-11-30T05:00:00.512+0000", "2026-11-30T05:00:00Z"),  # manager on UTC
        # The agent's backlog: the alert 3:40 after the line tells no zone; the line keeps none.
        ("2026-11-30T10:40:00.512+0200", "2026-11-30T07:00:00Z"),
    ],
)
async def test_a_wazuh_alert_on_a_local_time_line_and_its_papertrail_copy_are_one_event(
    served: tuple[httpx.AsyncClient, Settings], alerted: str, recorded: str
) -> None:
    """Red team F9/W1: an agent on UTC+2 writes `07:00:00` for a login at 05:00Z; the alert's
    zoned time gives the line its zone, so the Papertrail copy is the same event (one DM)."""
    http, _ = served
    host = f"wz-{uuid.uuid4().hex[:6]}"
    line = login_line("alice", "198.51.100.9", 45000 + uuid.uuid4().int % 1000)
    wazuh = {
        "timestamp": alerted,
        "id": f"1764478800.{uuid.uuid4().int % 10**6}",
        "rule": {"level": 3, "id": "5715", "groups": ["syslog", "sshd", "authentication_success"]},
        "agent": {"id": "003", "name": host},
        "full_log": f"Nov 30 07:00:00 {host} sshd[999]: {line}",
        "predecoder": {"program_name": "sshd", "timestamp": "Nov 30 07:00:00", "hostname": host},
        "decoder": {"name": "sshd"},
    }
    first = await http.post("/webhooks/wazuh", json=wazuh, headers=WEBHOOK_HEADERS)
    [started] = first.json()["results"]
    assert started["status"] == "started", started
    view = (await http.get(f"/v1/events/{started['event_id']}", headers=API_HEADERS)).json()
    assert view["occurred_at"].replace("+00:00", "Z") == recorded
    copy = papertrail_event(uuid.uuid4().int % 10**12, host, "05:00:01Z", line)
    second = await http.post("/webhooks/papertrail", json=alert(copy), headers=WEBHOOK_HEADERS)
    [result] = second.json()["results"]
    assert (result["status"], result["event_id"]) == ("duplicate", started["event_id"]), result


@pytest.mark.parametrize(
    "stamp, copy_at, same",
    [
        ("Mon 2026-11-30 10:30:00 IST", "05:00:01Z", True),  # India's IST: read as no zone
        ("Mon 2026-11-30 05:00:00 IST", "04:00:01Z", True),  # or Ireland's
        ("Mon 2026-11-30 06:00:00 CET", "05:00:01Z", True),  # one offset: zoned
        ("Mon 2026-11-30 06:00:00 CET", "03:00:01Z", False),  # zoned: no allowance
        ("Mon 2026-11-30 02:00:00 -03", "05:00:01Z", True),  # tzdata's numeric abbreviation
    ],
)
async def test_journalctl_short_full_zone_names_that_name_several_offsets_count_as_none(
    served: tuple[httpx.AsyncClient, Settings], stamp: str, copy_at: str, same: bool
) -> None:
    """Red team A3: `IST` is India's, Ireland's or Israel's; read as UTC but marked zoned, the
    Papertrail copy of the login became a second event. `-03` made the line unreadable."""
    http, _ = served
    host = f"jf-{uuid.uuid4().hex[:6]}"
    line = login_line("alice", "198.51.100.9", 46000 + uuid.uuid4().int % 1000)
    first = await http.post(
        "/webhooks/json",
        content=f"{stamp} {host} sshd[999]: {line}\n",
        headers={**WEBHOOK_HEADERS, "Content-Type": "text/plain"},
    )
    [started] = first.json()["results"]
    assert started["status"] == "started", started
    copy = papertrail_event(uuid.uuid4().int % 10**12, host, copy_at, line)
    second = await http.post("/webhooks/papertrail", json=alert(copy), headers=WEBHOOK_HEADERS)
    [result] = second.json()["results"]
    assert (result["status"] == "duplicate") is same, result


async def test_the_lines_one_su_writes_are_one_event_by_every_route(
    served: tuple[httpx.AsyncClient, Settings], tmp_path: Path
) -> None:
    """util-linux's `(to root)` line and the PAM session line of one su (same pid, same second),
    and shadow's pair through Wazuh, are one event each; another su is another event."""
    config = tmp_path / "su.yaml"
    config.write_text(CONFIG_YAML + "rule_packs: [sshd, su]\n")
    settings = served[1].model_copy(update={"config": config})
    host = f"su-{uuid.uuid4().hex[:6]}"
    pair = (
        f"Nov 27 01:02:03 {host} su[4242]: (to root) alice on pts/0\n"
        f"Nov 27 01:02:03 {host} su[4242]: pam_unix(su-l:session): session opened for user "
        "root(uid=0) by alice(uid=1000)\n"
        # Later, another su: a new action.
        f"Nov 27 01:02:13 {host} su[4250]: (to root) alice on pts/0\n"
    )
    shadow = [
        f"Nov 27 01:03:03 {host} su[4243]: Successful su for root by bob",
        f"Nov 27 01:03:03 {host} su[4243]: + /dev/pts/0 bob:root",
    ]
    alerts = [
        {
            "id": f"{uuid.uuid4().int % 10**10}.{index}",
            "timestamp": "2026-11-27T01:03:04.000+0000",
            "rule": {"id": "5303", "description": "User successfully changed UID to root."},
            "agent": {"id": "008", "name": host},
            "full_log": line,
        }
        for index, line in enumerate(shadow)
    ]
    async with api_client(settings) as http:
        text = {**WEBHOOK_HEADERS, "Content-Type": "text/plain"}
        response = await http.post("/webhooks/json", content=pair, headers=text)
        assert response.status_code == 202, response.text
        first, second, later = response.json()["results"]
        assert (first["status"], second["status"], later["status"]) == (
            "started",
            "duplicate",
            "started",
        )
        assert second["event_id"] == first["event_id"]
        statuses = []
        for member in alerts:
            answer = await http.post("/webhooks/wazuh", json=member, headers=WEBHOOK_HEADERS)
            assert answer.status_code == 202, answer.text
            statuses += [r["status"] for r in answer.json()["results"]]
        assert statuses == ["started", "duplicate"]


async def test_an_id_seen_before_with_other_content_is_a_conflict_told_to_the_channel(
    served: tuple[httpx.AsyncClient, Settings], dev_env: WorkflowEnvironment, fake_slack: FakeSlack
) -> None:
    """An attacker posts a harmless record under the id the provider will use next: the real
    record must not be swallowed as a "duplicate"."""
    http, settings = served
    host = f"pt-{uuid.uuid4().hex[:6]}"
    provider_id = uuid.uuid4().int % 10**12
    planted = webhook_event(provider_id, host, "bob", 40100)
    real = webhook_event(provider_id, host, "alice", 40200)
    async with running_worker(dev_env.client, settings):
        first = await http.post(
            "/webhooks/papertrail", json=alert(planted), headers=WEBHOOK_HEADERS
        )
        assert first.json()["results"][0]["status"] == "started"
        retry = await http.post(
            "/webhooks/papertrail", json=alert(planted), headers=WEBHOOK_HEADERS
        )
        assert retry.json()["results"][0]["status"] == "duplicate"
        for _ in range(2):  # reported once, however often it is re-delivered
            response = await http.post(
                "/webhooks/papertrail", json=alert(real), headers=WEBHOOK_HEADERS
            )
            [result] = response.json()["results"]
            assert result["status"] == "conflict", result
            assert "different content" in result["reason"]

        def reports() -> list[Any]:
            return [
                m
                for m in fake_slack.messages.values()
                if m.channel == SECURITY_CHANNEL and "different content" in m.text
            ]

        [report] = await eventually(reports)
        assert f"papertrail-{provider_id}" in report.text
        await asyncio.sleep(0.5)
        assert len(reports()) == 1
    body = json.dumps([b for b in report.blocks])
    assert "alice" in body and "bob" in body


async def test_dry_run_without_temporal_says_what_it_could_not_check(
    served: tuple[httpx.AsyncClient, Settings], config_file: Path, tmp_path: Path
) -> None:
    _, settings = served
    log = tmp_path / "auth.log"
    log.write_text(
        f"Nov 27 01:02:03 h1 sshd[1]: {login_line('alice', '203.0.113.7', 40000)}\n"
        f"2026-11-27T01:02:03-08:00 h1 sshd[1]: {login_line('alice', '203.0.113.7', 40000)}\n"
        "Nov 27 01:02:09 h1 sshd[2]: Connection closed by 198.51.100.1 port 2 [preauth]\n"
    )
    nowhere = f"127.0.0.1:{free_port()}"
    result = await run_backfill(
        settings, config_file, str(log), "--dry-run", "--json", address=nowhere
    )
    report = report_of(result)
    assert "Traceback" not in result.stderr
    assert nowhere in report["unchecked_reason"] and "not checked" in report["unchecked_reason"]
    # Both forms of the line are one login, even with nothing to ask.
    assert (report["matched"], report["started"], report["unchecked"]) == (2, 1, 1)
    table = await run_backfill(settings, config_file, str(log), "--dry-run", address=nowhere)
    assert table.returncode == 0, table.stderr
    assert "Not checked" in table.stdout and nowhere in table.stdout


def test_an_ipv4_address_written_as_ipv6_mapped_is_the_same_address() -> None:
    """`::ffff:203.0.113.7` is how a dual-stack socket (a HIDS's view of the session, a relay
    that logs the peer of an IPv6 socket) writes the IPv4 address 203.0.113.7: the same source
    for the natural identity and for the HIDS question, as `2001:DB8:0::7` is `2001:db8::7`."""
    at = datetime(2026, 11, 27, 9, 2, 3, tzinfo=UTC)
    login = make_event("alice", occurred_at=at).model_copy(
        update={"address": "203.0.113.7", "port": 40000}
    )
    for spelling in ("::ffff:203.0.113.7", "::FFFF:cb00:7107", "[::ffff:203.0.113.7]"):
        mapped = login.model_copy(update={"event_id": f"other-{uuid.uuid4().hex}"})
        assert same_action(login, mapped.model_copy(update={"address": spelling})), spelling
        question = MatchQuestion(host="bastion", user="alice", at=at, address=spelling, port=40000)
        assert question.is_this_login(login), spelling
    # Another IPv4 address in the mapped spelling is still another address.
    assert not same_action(login, login.model_copy(update={"address": "::ffff:203.0.113.8"}))
    # And the IPv6 address that merely ends like it (not in ::ffff:0:0/96) is another one.
    assert not same_action(login, login.model_copy(update={"address": "::203.0.113.7"}))


def test_the_documented_identity_rule() -> None:
    """The README's rule, member by member: address spellings, ports, tolerances, zones."""
    at = datetime(2026, 11, 27, 9, 2, 3, tzinfo=UTC)
    login = make_event("alice", host="Bastion.example.com.", occurred_at=at).model_copy(
        update={"address": "2001:db8::7", "port": 40000}
    )

    def copy(**changes: Any) -> Any:
        return login.model_copy(update={"event_id": f"other-{uuid.uuid4().hex}", **changes})

    assert same_action(login, copy(address="[2001:DB8:0::7]", host="bastion.example.com"))
    assert same_action(login, copy(occurred_at=at + timedelta(seconds=119)))
    assert not same_action(login, copy(occurred_at=at + timedelta(seconds=121)))
    assert not same_action(login, copy(port=40001))
    assert not same_action(login, copy(actor="ALICE"))
    assert not same_action(login, copy(host="bastion"))  # another name is another host
    local = copy(occurred_at=at - timedelta(hours=8, seconds=30), time_without_zone=True)
    assert same_action(login, local)  # a zone-less line in UTC-8
    assert same_action(local, login)
    assert not same_action(login, copy(occurred_at=at - timedelta(hours=8)))  # both zoned
    assert not same_action(
        login, copy(occurred_at=at - timedelta(hours=8, minutes=7), time_without_zone=True)
    )
    # Only offsets zones use, with their sign: India (+5:30), Nepal (+5:45), Newfoundland
    # (-3:30) and UTC+14 are; +5:15, UTC-13 and UTC+15 are not.
    for hours, minutes, real in [
        (5, 30, True),
        (5, 45, True),
        (-3, -30, True),
        (14, 0, True),
        (-12, 0, True),
        (5, 15, False),
        (-13, 0, False),
        (15, 0, False),
    ]:
        wall = copy(
            occurred_at=at + timedelta(hours=hours, minutes=minutes), time_without_zone=True
        )
        assert same_action(login, wall) is real, (hours, minutes)
    # Two zone-less copies: one host, one zone; an hour (or 5:30) apart is another login.
    for apart in (timedelta(hours=1), timedelta(hours=5, minutes=30), timedelta(minutes=15)):
        other = local.model_copy(update={"occurred_at": local.occurred_at + apart})
        assert not same_action(local, other) and not same_action(other, local), apart
    later = local.model_copy(update={"occurred_at": local.occurred_at + timedelta(seconds=90)})
    assert same_action(local, later)  # within the tolerance: a copy, zones aside
    # No line arrives before it is written: the zone-less copy received at `at` (UTC) is no copy
    # of a zoned login 3 hours after; received 3 hours later it may be (a host on UTC-3).
    wall = Occurrence.of(copy(occurred_at=at, time_without_zone=True), arrived=at)
    zoned = Occurrence.of(copy(occurred_at=at + timedelta(hours=3)), arrived=at)
    assert wall is not None and zoned is not None
    assert not wall.same_action(zoned) and not zoned.same_action(wall)
    late = replace(wall, arrived=at + timedelta(hours=3, seconds=5))
    assert late.same_action(zoned) and zoned.same_action(late)
    assert replace(wall, arrived=None).same_action(zoned)  # arrival unknown: the offset decides
    sudo = login.model_copy(update={"port": None, "address": None, "message": "COMMAND=/bin/id"})
    assert same_action(sudo, sudo.model_copy(update={"occurred_at": at + timedelta(seconds=4)}))
    assert not same_action(sudo, sudo.model_copy(update={"occurred_at": at + timedelta(seconds=6)}))
    assert not same_action(
        sudo,
        sudo.model_copy(update={"occurred_at": at - timedelta(hours=8), "time_without_zone": True}),
    )
    assert not same_action(sudo, sudo.model_copy(update={"message": "COMMAND=/bin/sh"}))
    # A rule's `identity` stands in for the message: the su pack's, so one su's two lines (other
    # texts) are one action; another actor's su is not.
    su = sudo.model_copy(
        update={"message": "(to root) alice on pts/0", "identity_text": "su to root"}
    )
    pam = "pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)"
    assert same_action(su, su.model_copy(update={"event_id": "pam", "message": pam}))
    assert not same_action(su, su.model_copy(update={"event_id": "bob", "actor": "bob"}))
    assert not same_action(su, su.model_copy(update={"occurred_at": at + timedelta(seconds=6)}))


async def test_a_retried_record_without_a_time_of_its_own_is_a_duplicate_not_a_conflict(
    served: tuple[httpx.AsyncClient, Settings],
) -> None:
    """Such a record's event time is when it arrived, so a retry's differs: what it says (and
    so its content digest) does not."""
    http, _ = served
    host = f"bg-{uuid.uuid4().hex[:6]}"
    body = {"host": host, "program": "sshd", "message": login_line("dave", "192.0.2.8", 40404)}
    first = await http.post("/webhooks/json", json=body, headers=WEBHOOK_HEADERS)
    assert first.json()["results"][0]["status"] == "started"
    await asyncio.sleep(1.1)
    retry = await http.post("/webhooks/json", json=body, headers=WEBHOOK_HEADERS)
    [result] = retry.json()["results"]
    assert result["status"] == "duplicate", result


def password_line(user: str, address: str, port: int) -> str:
    return f"Accepted password for {user} from {address} port {port} ssh2"


async def test_two_auth_methods_from_one_port_are_two_logins_and_the_second_is_asked(
    served: tuple[httpx.AsyncClient, Settings], dev_env: WorkflowEnvironment, fake_slack: FakeSlack
) -> None:
    """Tester's case (a): Papertrail's `Accepted publickey` (approved) and, 100 s later, its
    `Accepted password` for the same user, host, address and port were taken for one login:
    nobody was asked about the second, and the HIDS answered `approved` for it. sshd writes one
    `Accepted` line per connection: two methods are two connections."""
    http, settings = served
    host = f"jump-{uuid.uuid4().hex[:6]}"
    first = papertrail_event(
        uuid.uuid4().int % 10**12,
        host,
        "2026-11-27T09:00:23Z",
        login_line("alice", "10.0.0.5", 40000),
    )
    second = papertrail_event(
        uuid.uuid4().int % 10**12,
        host,
        "2026-11-27T09:02:03Z",
        password_line("alice", "10.0.0.5", 40000),
    )
    async with running_worker(dev_env.client, settings):
        response = await http.post(
            "/webhooks/papertrail", json=alert(first), headers=WEBHOOK_HEADERS
        )
        [approved] = response.json()["results"]
        assert approved["status"] == "started", approved
        await approve_as_owner(http, fake_slack, approved["event_id"])
        response = await http.post(
            "/webhooks/papertrail", json=alert(second), headers=WEBHOOK_HEADERS
        )
        [asked] = response.json()["results"]
        assert asked["status"] == "started", asked
        assert await eventually(lambda: message_for(fake_slack, asked["event_id"], "D0ALICE"))
    answer = await match(http, host, "alice", address="10.0.0.5", port="40000")
    assert (answer["approved"], answer["answer"]) != (True, "approved"), answer
    assert {e["event_id"] for e in answer["events"]} == {approved["event_id"], asked["event_id"]}


async def test_a_copy_under_another_id_of_the_same_route_says_so(
    served: tuple[httpx.AsyncClient, Settings],
) -> None:
    """A host forwarding one line to Papertrail twice gives it two ids: one login, and the
    answer says it came again by Papertrail, not "by another route"."""
    http, _ = served
    host = f"fw-{uuid.uuid4().hex[:6]}"
    line = password_line("alice", "10.0.0.5", 40000)
    answers = []
    for received in ("2026-11-27T09:02:03Z", "2026-11-27T09:02:04Z"):
        record = papertrail_event(uuid.uuid4().int % 10**12, host, received, line)
        response = await http.post(
            "/webhooks/papertrail", json=alert(record), headers=WEBHOOK_HEADERS
        )
        answers += response.json()["results"]
    started, again = answers
    assert (started["status"], again["status"]) == ("started", "duplicate"), answers
    assert again["event_id"] == started["event_id"]
    assert "delivered again by papertrail under another id" in again["reason"], again
    assert "another route" not in again["reason"]


@pytest.mark.parametrize(
    "zoneless_wall, zoned_at, zoned_first, same",
    [
        # Tester's case (b): the zone-less time is when it arrived, so it was written in UTC
        # (on a UTC+2 host it would have been delivered exactly 2 hours late): another login.
        (timedelta(0), -timedelta(hours=2), True, False),
        (timedelta(0), -timedelta(hours=2), False, False),
        # A relay dropping the zone of a UTC+2 host's line, delivered at once: one login.
        (timedelta(hours=2), timedelta(0), True, True),
        (timedelta(hours=2), timedelta(0), False, True),
    ],
)
async def test_a_zoneless_time_that_is_its_arrival_is_no_copy_of_a_login_an_offset_away(
    served: tuple[httpx.AsyncClient, Settings],
    zoneless_wall: timedelta,
    zoned_at: timedelta,
    zoned_first: bool,
    same: bool,
) -> None:
    """A zoned Papertrail login 2 hours ago swallowed a JSON login stamped now without a zone:
    that login had no record and the HIDS found nothing for it."""
    http, _ = served
    now = datetime.now(UTC).replace(microsecond=0)
    host = f"zl-{uuid.uuid4().hex[:6]}"
    line = login_line("alice", "10.0.0.6", 40100)
    stamp = (now + zoned_at).isoformat().replace("+00:00", "Z")
    zoned = (
        "/webhooks/papertrail",
        alert(papertrail_event(uuid.uuid4().int % 10**12, host, stamp, line)),
    )
    wall = (now + zoneless_wall).replace(tzinfo=None).isoformat()
    record = {
        "id": uuid.uuid4().hex,
        "host": host,
        "program": "sshd",
        "time": wall,
        "message": line,
    }
    zoneless = ("/webhooks/json", record)
    results = []
    for path, body in (zoned, zoneless) if zoned_first else (zoneless, zoned):
        response = await http.post(path, json=body, headers=WEBHOOK_HEADERS)
        results += response.json()["results"]
    assert results[0]["status"] == "started", results
    assert results[1]["status"] == ("duplicate" if same else "started"), results


async def test_a_login_recorded_before_its_key_named_the_method_is_still_found(
    served: tuple[httpx.AsyncClient, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events recorded before carry the identity without the method: another route's copy of
    such a login is still a duplicate (found by visibility alone), and another method's login
    from that port is still a new one."""
    http, _ = served
    host = f"old-{uuid.uuid4().hex[:6]}"
    line = login_line("alice", "198.51.100.9", 48000)
    monkeypatch.setattr(starts, "identity_of", legacy_identity_of)
    record = papertrail_event(uuid.uuid4().int % 10**12, host, "2026-11-27T09:02:03Z", line)
    response = await http.post("/webhooks/papertrail", json=alert(record), headers=WEBHOOK_HEADERS)
    [recorded] = response.json()["results"]
    assert recorded["status"] == "started", recorded
    monkeypatch.setattr(starts, "identity_of", identity_of)
    await eventually(partial(listed, http, host), within=15)
    monkeypatch.setattr(recognise, "_RECENT_STARTS", {})
    text = {**WEBHOOK_HEADERS, "Content-Type": "text/plain"}
    body = (
        f"2026-11-27T09:02:04Z {host} sshd[4242]: {line}\n"
        f"2026-11-27T09:02:05Z {host} sshd[4243]: {password_line('alice', '198.51.100.9', 48000)}\n"
    )
    response = await http.post("/webhooks/json", content=body, headers=text)
    copy, other = response.json()["results"]
    assert (copy["status"], copy["event_id"]) == ("duplicate", recorded["event_id"]), copy
    assert other["status"] == "started", other


def test_a_login_is_named_by_its_method_not_by_its_line() -> None:
    """Two methods from one address and port are two actions; one method's line framed or
    trimmed otherwise by another route is one. The identity events with a port were recorded
    under before stays what it was (pinned: stored search attributes carry it)."""
    at = datetime(2026, 11, 27, 9, 2, 3, tzinfo=UTC)
    login = make_event("alice", occurred_at=at).model_copy(
        update={"address": "203.0.113.7", "port": 40000}
    )

    def copy(**changes: Any) -> Any:
        return login.model_copy(update={"event_id": f"other-{uuid.uuid4().hex}", **changes})

    password = copy(
        action="ssh login (password)", message=password_line("alice", "203.0.113.7", 40000)
    )
    assert not same_action(login, password)
    assert not same_action(login, copy(action="ssh login (keyboard-interactive/pam)"))
    trimmed = "Accepted publickey for alice from 203.0.113.7 port 40000 ssh2"
    assert same_action(login, copy(message=trimmed, details={"method": "publickey"}))
    assert legacy_identity_of(login) == "n58eb397a5a2c47cb8f15a274af08eaf0"
    assert legacy_identity_of(password) == legacy_identity_of(login) != identity_of(login)
    sudo = login.model_copy(update={"port": None, "address": None, "message": "COMMAND=/bin/id"})
    assert legacy_identity_of(sudo) is None
    assert identity_of(sudo) == "n47190384cabd037a077a54e999e10217"  # unchanged
    # Received live, a zone-less stamp that reads as its arrival was written in UTC: no zoned
    # login an offset away is its copy; stamped two hours ahead of its arrival (UTC+2), it is.
    zoned = Occurrence.of(copy(occurred_at=at - timedelta(hours=2)), arrived=at)
    live = Occurrence.of(copy(occurred_at=at, time_without_zone=True), arrived=at)
    ahead = Occurrence.of(
        copy(occurred_at=at, time_without_zone=True), arrived=at - timedelta(hours=2)
    )
    assert zoned is not None and live is not None and ahead is not None
    assert not live.same_action(zoned) and not zoned.same_action(live)
    assert ahead.same_action(zoned) and zoned.same_action(ahead)
