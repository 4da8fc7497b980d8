"""Expectation limits (issue 13 §2) for owners mapped by email and a security team that is a
Slack user group: who counts is what the directory says everywhere else (who may press an
event's buttons), through each way an expectation is made: the API, the CLI, the `/powertrip
expect` modal and "Approve, and expect the same from me here". The API and the worker on the
real dev server, Slack the fake one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, InjectedFailure, SlackMessage
from powertrip.sandbox.interactions import (
    signed_request,
    slash_command_fields,
    view_submission_payload,
)
from powertrip.settings import Settings
from tests.harness import (
    API_HEADERS,
    API_WRITE_HEADERS,
    CONFIG_YAML,
    POWERTRIP,
    buttons,
    eventually,
    posted_to,
    slack_click,
    slash_command,
)
from tests.servers import CLI_DECISION_KEY, SIGNING_SECRET, SLACK_TOKEN
from tests.test_expectations import (
    _any_listed,
    _approved,
    _listed,
    decided,
    login,
    open_home,
    stack,
)

GROUP = "S0SECTEAM"
GROUP_YAML = CONFIG_YAML + f"security_team_group: {GROUP}\n"
"""alice is mapped by Slack id, bob by email (bob@example.com is U0BOB in the fake Slack), the
security team is U0SEC1 listed and whoever is in the user group."""


def with_grace_in_the_team(fake: FakeSlack) -> None:
    """Grace is on the security team only through its Slack user group."""
    fake.users["U0GRACE"] = FakeUser(id="U0GRACE", name="grace", email="grace@example.com")
    fake.usergroups[GROUP] = ["U0GRACE"]


async def post_expectation(http: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    body = {"for": "1h", "reason": "planned work", **fields}
    return await http.post("/v1/expectations", json=body, headers=API_WRITE_HEADERS)


async def test_api_and_cli_an_email_mapped_owner_and_a_user_group_member_of_the_team(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    with_grace_in_the_team(fake_slack)
    async with stack(dev_env, slack_api_url, tmp_path, GROUP_YAML) as (http, _, settings):
        # Slack not answering who is in the group: not a guess either way, a 503 to retry.
        fake_slack.failures["usergroups.users.list"].append(
            InjectedFailure(method="usergroups.users.list", status=500)
        )
        unchecked = await post_expectation(http, actor="alice", created_by="U0GRACE")
        assert unchecked.status_code == 503, unchecked.text
        assert GROUP in unchecked.json()["detail"]

        # Bob is mapped by email: he may pre-approve his own account, and it approves his login.
        bobs = await post_expectation(http, actor="bob", created_by="U0BOB")
        assert bobs.status_code == 201, bobs.text
        await eventually(lambda: _listed(http, bobs.json()["id"]))
        event_id = await login(http, user="bob")
        record = await eventually(lambda: _approved(http, event_id), within=30)
        assert record["decision"]["expectation"] == bobs.json()["id"]
        assert record["decision"]["by"] == "U0BOB"
        # ... and only his own.
        not_his = await post_expectation(http, actor="alice", created_by="U0BOB")
        assert not_his.status_code == 403 and "only for their own" in not_his.json()["detail"]

        # Grace is on the team through the user group: for anyone, and the worker agrees.
        graces = await post_expectation(http, actor="alice", created_by="U0GRACE")
        assert graces.status_code == 201, graces.text
        await eventually(lambda: _listed(http, graces.json()["id"]))
        event_id = await login(http)
        record = await eventually(lambda: _approved(http, event_id), within=30)
        assert record["decision"]["expectation"] == graces.json()["id"]
        assert record["decision"]["by"] == "U0GRACE"
        # The team may revoke anyone's; someone else may not.
        mallory = await http.delete(
            f"/v1/expectations/{bobs.json()['id']}",
            params={"by": "U0MALLORY"},
            headers=API_WRITE_HEADERS,
        )
        assert mallory.status_code == 403
        revoked = await http.delete(
            f"/v1/expectations/{bobs.json()['id']}",
            params={"by": "U0GRACE"},
            headers=API_WRITE_HEADERS,
        )
        assert revoked.status_code == 200, revoked.text

        # Bob, the owner by email, may revoke what the team expects of his account.
        for_bob = await post_expectation(http, actor="bob", created_by="U0SEC1")
        assert for_bob.status_code == 201, for_bob.text
        by_bob = await http.delete(
            f"/v1/expectations/{for_bob.json()['id']}",
            params={"by": "U0BOB"},
            headers=API_WRITE_HEADERS,
        )
        assert by_bob.status_code == 200, by_bob.text

        # The CLI asks the same user group (with the bot token) for `--as`.
        config = tmp_path / "config.yaml"

        async def run(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(cli, settings, config, *args)

        created = await run(
            "expectations", "create", "--actor", "deploy", "--for", "1h",
            "--reason", "release 4.2", "--as", "U0GRACE", "--json",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["created_by"] == "U0GRACE"
        refused = await run(
            "expectations", "create", "--actor", "bob", "--for", "1h",
            "--reason", "x", "--as", "U0BOB",
        )  # fmt: skip
        assert refused.returncode == 1 and "only the security team" in refused.stderr


def cli(settings: Settings, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `powertrip` command against `settings`' Temporal namespace and Slack."""
    env = {
        **os.environ,
        "POWERTRIP_TEMPORAL_ADDRESS": settings.temporal_address,
        "POWERTRIP_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "POWERTRIP_TASK_QUEUE": settings.task_queue,
        "POWERTRIP_CLI_DECISION_KEY": CLI_DECISION_KEY,
        "POWERTRIP_CONFIG": str(config),
        "POWERTRIP_SLACK_API_URL": settings.slack_api_url,
        "POWERTRIP_SLACK_BOT_TOKEN": SLACK_TOKEN,
    }
    return subprocess.run(
        [str(POWERTRIP), *args], capture_output=True, text=True, env=env, timeout=120
    )


async def test_slack_an_email_mapped_owner_and_a_user_group_member_of_the_team(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    with_grace_in_the_team(fake_slack)
    async with stack(dev_env, slack_api_url, tmp_path, GROUP_YAML) as (http, _, _):
        # "Approve, and expect the same from me here" on bob's own DM.
        first = await login(http, user="bob")
        [dm] = await eventually(lambda: _dms(fake_slack, "D0BOB", first), within=30)
        assert buttons(dm) == ["approve", "approve_expect", "not_me"]
        reply_to = slack_api_url.replace("/api/", "/response/expect-bob")
        clicked = await slack_click(http, "U0BOB", "approve_expect", first, dm, reply_to)
        assert clicked.status_code == 200
        expected = await eventually(lambda: _any_listed(http), within=15)
        assert (expected["actor"], expected["created_by"]) == ("bob", "U0BOB")
        again = await login(http, user="bob")
        approved = await eventually(lambda: _approved(http, again), within=30)
        assert approved["decision"]["expectation"] == expected["id"]

        # The `/powertrip expect` modal: bob for himself, grace (the group) for alice.
        body, headers = signed_request(
            SIGNING_SECRET, {}, form=slash_command_fields("U0BOB", "expect bob")
        )
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        modal = fake_slack.views[-1]

        async def submit(user: str, **values: str) -> httpx.Response:
            payload = view_submission_payload(user, modal, values)
            body, headers = signed_request(SIGNING_SECRET, payload)
            return await http.post("/slack/interactions", content=body, headers=headers)

        mine = await submit(
            "U0BOB", actor="bob", hosts="db-1", rules="sshd-accepted, sudo-command",
            reason="reindex", **{"for": "1h"},
        )  # fmt: skip
        assert mine.status_code == 200 and not mine.content, mine.text
        reindex = await eventually(lambda: _with_reason(http, "reindex"), within=15)
        assert (reindex["hosts"], reindex["rules"]) == (["db-1"], ["sshd-accepted", "sudo-command"])
        for_alice = await submit("U0GRACE", actor="alice", reason="on-call", **{"for": "1h"})
        assert for_alice.status_code == 200 and not for_alice.content, for_alice.text
        refused = await submit("U0BOB", actor="alice", reason="help", **{"for": "1h"})
        assert "only for their own" in refused.json()["errors"]["actor"]

        # Grace sees what waits for the team, and everyone's expectations on her Home tab.
        shared = await login(http, user="ops")
        await decided(http, shared)

        async def pending_for(user: str) -> str | None:
            answer = await slash_command(http, user, "pending")
            return answer if shared in answer else None

        await eventually(lambda: pending_for("U0GRACE"), within=15)
        assert shared not in await slash_command(http, "U0BOB", "pending")
        await open_home(http, "U0GRACE")
        home = json.dumps(fake_slack.home["U0GRACE"])
        assert expected["id"] in home and shared in home


async def _with_reason(http: httpx.AsyncClient, reason: str) -> dict[str, Any] | None:
    listed = (await http.get("/v1/expectations", headers=API_HEADERS)).json()
    return next((e for e in listed if e["reason"] == reason), None)


def _dms(fake: FakeSlack, channel: str, event_id: str) -> list[SlackMessage]:
    return [m for m in posted_to(fake, channel) if event_id in str(m.blocks)]


async def test_an_owner_never_pre_approves_a_step_up_rule_however_they_are_mapped(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    with_grace_in_the_team(fake_slack)
    step_up_yaml = GROUP_YAML + "step_up_rules: [sshd-accepted]\n"
    async with stack(dev_env, slack_api_url, tmp_path, step_up_yaml) as (http, _, _):
        # Bob (mapped by email) for his own account: never for the step-up rule.
        refused = await post_expectation(
            http, actor="bob", rule="sshd-accepted", created_by="U0BOB"
        )
        assert refused.status_code == 403 and "needs a step-up" in refused.json()["detail"]
        # Without rules it is his, but it does not cover his step-up login: he is asked.
        bobs = await post_expectation(http, actor="bob", created_by="U0BOB")
        assert bobs.status_code == 201, bobs.text
        await eventually(lambda: _listed(http, bobs.json()["id"]))
        event_id = await login(http, user="bob")
        record = await decided(http, event_id)
        assert record["status"] == "pending" and "U0BOB" in record["asked"]

        # Nor from the modal, whose rules field names it.
        body, headers = signed_request(
            SIGNING_SECRET, {}, form=slash_command_fields("U0BOB", "expect bob")
        )
        assert (await http.post("/slack/interactions", content=body, headers=headers)).is_success
        payload = view_submission_payload(
            "U0BOB",
            fake_slack.views[-1],
            {"actor": "bob", "rules": "sshd-accepted", "reason": "patching", "for": "1h"},
        )
        body, headers = signed_request(SIGNING_SECRET, payload)
        modal = await http.post("/slack/interactions", content=body, headers=headers)
        assert "needs a step-up" in modal.json()["errors"]["actor"]

        # Alice's DM offers no "expect the same"; a forged click of it expects nothing.
        mine = await login(http)
        [dm] = await eventually(lambda: _dms(fake_slack, "D0ALICE", mine), within=30)
        assert buttons(dm) == ["approve", "not_me"]
        reply_to = slack_api_url.replace("/api/", "/response/forged-expect")
        clicked = await slack_click(http, "U0ALICE", "approve_expect", mine, dm, reply_to)
        assert clicked.status_code == 200
        await eventually(lambda: fake_slack.responses, within=15)
        listed = await http.get("/v1/expectations", headers=API_HEADERS)
        assert [e["actor"] for e in listed.json()] == ["bob"]

        # The security team may, through its user group too.
        graces = await post_expectation(
            http, actor="alice", rule="sshd-accepted", created_by="U0GRACE"
        )
        assert graces.status_code == 201, graces.text
