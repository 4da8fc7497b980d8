"""Issue 10 section 3 through the JSON shippers (red team F4, F5, F9), on the real webhook and
dev server: journald's trusted fields win over the identifier a sender chose; syslog framing in
an application's or container's output names no program or host; a shipper's time without a zone
is one event with another route's zoned copy of the same login."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.aws import Served, bearer, serving, unique
from tests.harness import CONFIG_YAML


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[Served]:
    async with serving(
        dev_env, slack_api_url, tmp_path, CONFIG_YAML + "rule_packs: [sshd, sudo]\n"
    ) as served:
        yield served


async def post(api: Served, body: Any) -> list[dict[str, Any]]:
    """`body` (JSON text, or a value to encode) to `/webhooks/json`: the answer's results."""
    text = body if isinstance(body, str) else json.dumps(body)
    headers = {**bearer(), "Content-Type": "application/json"}
    response = await api.http.post("/webhooks/json", content=text, headers=headers)
    assert response.status_code == 202, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def login(port: int, user: str = "alice") -> str:
    return f"Accepted publickey for {user} from 198.51.100.9 port {port} ssh2"


def free_login_port() -> int:
    """A source port no other test's login uses: natural identity would make them one event."""
    return 20000 + uuid.uuid4().int % 40000


async def test_journald_trusted_fields_win_over_the_identifier_a_sender_chose(
    api: Served, dev_env: WorkflowEnvironment
) -> None:
    # Red team F4: `logger -t sshd '...'` by uid 1001 on bastion, as `journalctl -o json` ships
    # it. The identifier is the sender's choice; journald's `_EXE`/`_COMM` are not.
    port = free_login_port()
    forged = {
        "__CURSOR": f"s=0b1c;i={unique()};b=9f;m=1;t=1;x=2",
        "__REALTIME_TIMESTAMP": "1764478800000000",
        "_HOSTNAME": "bastion",
        "_TRANSPORT": "syslog",
        "_UID": "1001",
        "_PID": "4242",
        "_COMM": "logger",
        "_EXE": "/usr/bin/logger",
        "_SYSTEMD_UNIT": "session-5.scope",
        "SYSLOG_IDENTIFIER": "sshd",
        "MESSAGE": login(port),
    }
    [result] = await post(api, forged)
    assert (result["status"], result["event_id"]) == ("unmatched", None)
    # sshd's own record of the same shape is a login.
    genuine = {
        **forged,
        "__CURSOR": f"s=0b1c;i={unique()};b=9f;m=1;t=1;x=2",
        "_UID": "0",
        "_COMM": "sshd",
        "_EXE": "/usr/sbin/sshd",
        "_SYSTEMD_UNIT": "ssh.service",
    }
    [result] = await post(api, genuine)
    assert (result["status"], result["rule_id"]) == ("started", "sshd-accepted")


FRAME = "Nov 30 05:00:00 bastion sshd[999]: "


@pytest.mark.parametrize(
    "record",
    [
        # issue 10 §3's np1 example, with a syslog frame in the message
        {"host": "bastion", "message": "FRAME"},
        # a Powertrip-shaped record whose sender left the program empty
        {"host": "web-1", "program": "", "message": "FRAME"},
        # Filebeat's container input: the web container's stdout on node-3
        {
            "@timestamp": "2026-11-30T05:00:00Z",
            "ecs": {"version": "8.11.0"},
            "host": {"name": "node-3"},
            "container": {"name": "web", "id": "4c2f"},
            "stream": "stdout",
            "message": "FRAME",
        },
        # Fluent Bit tail + kubernetes filter: the web container's stdout on node-3
        {
            "time": "2026-11-30T05:00:00Z",
            "stream": "stdout",
            "log": "FRAME\n",
            "kubernetes": {"pod_name": "web-7f9c", "container_name": "web", "host": "node-3"},
        },
        # Docker's json-file log without any metadata but its stream
        {"time": "2026-11-30T05:00:00Z", "stream": "stderr", "log": "FRAME\n"},
        # Vector's docker_logs source
        {"container_name": "web", "host": "node-3", "message": "FRAME", "stream": "stdout"},
    ],
    ids=["host", "empty-program", "filebeat-container", "fluent-bit-k8s", "docker", "vector"],
)
async def test_framing_in_an_application_or_container_output_names_no_program(
    api: Served, record: dict[str, Any]
) -> None:
    # Red team F5: only a bare line, or a line a syslog daemon wrote, is read for its framing.
    text = json.dumps({"id": f"np-{unique()}", **record})
    text = text.replace("FRAME", FRAME + login(free_login_port()))
    [result] = await post(api, text)
    assert (result["status"], result["event_id"]) == ("unmatched", None)


async def test_a_zoneless_shipper_time_is_one_event_with_its_zoned_copy(
    api: Served, dev_env: WorkflowEnvironment
) -> None:
    # Red team F9: NXLog on a host on UTC+2 writes its local time without a zone; Papertrail
    # has the same login at 05:00:01Z. One login, one event, at Papertrail's time.
    port = free_login_port()
    nxlog = {
        "EventReceivedTime": "2026-11-30 07:00:01",
        "Hostname": "bastion",
        "EventTime": "2026-11-30 07:00:00",
        "SourceName": "sshd",
        "ProcessID": "999",
        "Message": login(port),
    }
    [first] = await post(api, nxlog)
    assert first["status"] == "started", first
    papertrail = {
        "events": [
            {
                "id": 890000 + port,
                "hostname": "bastion",
                "program": "sshd",
                "received_at": "2026-11-30T05:00:01Z",
                "message": login(port),
            }
        ]
    }
    response = await api.http.post("/webhooks/papertrail", json=papertrail, headers=bearer())
    [second] = response.json()["results"]
    assert (second["status"], second["event_id"]) == ("duplicate", first["event_id"])
    description = await dev_env.client.get_workflow_handle(first["event_id"]).describe()
    memo = await description.memo_value("record")
    assert memo["event"]["time_without_zone"] is True
