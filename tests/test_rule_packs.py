"""Rules as data: every built-in pack rule, PCRE group spelling, config errors naming the rule,
and syslog framing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from powertrip.config import (
    ConfigError,
    available_rule_packs,
    config_from_mapping,
    load_config,
    rule_pack,
)
from powertrip.models import EventKind, RawEvent, Routing, SecurityEvent
from powertrip.rules import RuleSet
from powertrip.sources.eventbridge import parse_eventbridge
from powertrip.sources.syslog import parse_syslog, parse_syslog_line

PACKS = ["sshd", "sudo", "su", "cloudtrail", "custom-example", "noise"]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return config_from_mapping({"rule_packs": PACKS}, Path.cwd(), "packs").rule_set()


def line(program: str, message: str, host: str = "bastion") -> RawEvent:
    return RawEvent(source="t", provider_id="1", host=host, program=program, message=message)


def test_all_packs_are_tested_here() -> None:
    assert available_rule_packs() == sorted(PACKS)


@pytest.mark.parametrize(
    ("program", "message", "actor", "address", "details"),
    [
        (
            "sshd",
            "Accepted publickey for alice from 203.0.113.7 port 52100 ssh2: ED25519 SHA256:abc",
            "alice",
            "203.0.113.7",
            {"method": "publickey", "key type": "ED25519", "fingerprint": "SHA256:abc"},
        ),
        (
            "sshd-session",  # OpenSSH 9.8+
            "Accepted publickey for alice from 2001:db8::7 port 2222 ssh2: ED25519-CERT "
            "SHA256:Zm9v ID alice@corp (serial 4242) CA ED25519 SHA256:Y2E=",
            "alice",
            "2001:db8::7",
            {
                "certificate id": "alice@corp",
                "certificate serial": "4242",
                "certificate authority": "ED25519 SHA256:Y2E=",
                "key type": "ED25519-CERT",
            },
        ),
        (
            "sshd",
            "Accepted password for bob from 198.51.100.2 port 40000 ssh2",
            "bob",
            "198.51.100.2",
            {"method": "password"},
        ),
        (
            "sshd",
            "Accepted keyboard-interactive/pam for carol from ::ffff:10.1.2.3 port 5 ssh2",
            "carol",
            "::ffff:10.1.2.3",
            {"method": "keyboard-interactive/pam"},
        ),
        (
            "sshd",
            "Accepted gssapi-with-mic for dave@EXAMPLE.ORG from 10.0.0.9 port 6 ssh2",
            "dave@EXAMPLE.ORG",
            "10.0.0.9",
            {"method": "gssapi-with-mic"},
        ),
        (
            # A user name crafted to carry a fake address: the real one is the last sshd wrote.
            "sshd",
            "Accepted password for evil from 10.9.9.9 port 22 from 203.0.113.50 port 4242 ssh2",
            "evil from 10.9.9.9 port 22",
            "203.0.113.50",
            {},
        ),
    ],
)
def test_sshd_accepted_every_method(
    rules: RuleSet,
    program: str,
    message: str,
    actor: str,
    address: str,
    details: dict[str, str],
) -> None:
    event = rules.recognise(line(program, message))
    assert event is not None
    assert (event.rule_id, event.kind, event.actor, event.address, event.host) == (
        "sshd-accepted",
        EventKind.LOGIN,
        actor,
        address,
        "bastion",
    )
    assert event.port == int(message.split(" port ")[-1].split()[0])
    assert details.items() <= event.details.items()


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("sshd", "Failed password for alice from 203.0.113.7 port 52100 ssh2"),
        ("sshd", "Postponed publickey for git from 192.0.2.1 port 57904 ssh2 [preauth]"),
        ("sshd", "Invalid user admin from 192.0.2.117 port 44004"),
        ("cron", "Accepted password for alice from 203.0.113.7 port 1 ssh2"),  # not sshd
        (
            "sudo",
            "alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",  # noqa: E501
        ),
        ("sudo", "alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh"),
        ("sudo", "pam_unix(sudo:session): session opened for user root by alice(uid=1000)"),
        ("su", "FAILED SU (to root) alice on pts/0"),
        (
            "su",
            "pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/0 ruser=alice rhost=  user=root",  # noqa: E501
        ),
        ("su", "pam_unix(su:session): session opened for user postgres by alice(uid=1000)"),
        ("breakglass", "BREAKGLASS attempted"),
    ],
)
def test_failures_and_noise_are_not_events(rules: RuleSet, program: str, message: str) -> None:
    assert rules.recognise(line(program, message)) is None


def test_sudo_command(rules: RuleSet) -> None:
    event = rules.recognise(
        line(
            "sudo",
            "  alice : TTY=pts/3 ; PWD=/srv/app ; USER=postgres ; GROUP=dba ; "
            "COMMAND=/usr/bin/psql -c 'select 1'",
        )
    )
    assert event is not None
    assert (event.rule_id, event.actor, event.action) == (
        "sudo-command",
        "alice",
        "sudo as postgres",
    )
    assert event.details == {
        "command": "/usr/bin/psql -c 'select 1'",
        "working directory": "/srv/app",
        "terminal": "pts/3",
        "group": "dba",
    }
    no_tty = rules.recognise(line("sudo", "bob : PWD=/ ; USER=root ; COMMAND=/usr/bin/id"))
    assert no_tty is not None and no_tty.actor == "bob" and "terminal" not in no_tty.details


@pytest.mark.parametrize(
    ("message", "rule_id"),
    [
        (
            "pam_unix(su:session): session opened for user root by alice(uid=1000)",
            "su-root-session",
        ),
        (
            "pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)",
            "su-root-session",
        ),
        ("(to root) alice on pts/1", "su-root-classic"),
        ("Successful su for root by alice", "su-root-classic"),
    ],
)
def test_su_to_root(rules: RuleSet, message: str, rule_id: str) -> None:
    event = rules.recognise(line("su", message))
    assert event is not None
    assert (event.rule_id, event.actor, event.action) == (rule_id, "alice", "su to root")


def cloudtrail(detail_type: str = "AWS API Call via CloudTrail", **detail: Any) -> dict[str, Any]:
    base = {
        "eventVersion": "1.08",
        "eventTime": "2026-11-27T01:02:03Z",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.20",
        "userAgent": "aws-cli/2.15",
        "eventID": "3f7a2c1e-0000-4000-8000-000000000001",
        "recipientAccountId": "123456789012",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::123456789012:user/ops/alice",
            "accountId": "123456789012",
            "userName": "alice",
        },
    }
    base.update(detail)
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": "aws.iam",
        "account": "123456789012",
        "time": "2026-11-27T01:02:04Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": base,
    }


def recognise_eventbridge(rules: RuleSet, event: dict[str, Any]) -> SecurityEvent | None:
    [item] = parse_eventbridge(event)
    assert item.raw is not None, item.error
    return rules.recognise(item.raw)


def test_cloudtrail_console_login_by_assumed_role_session(rules: RuleSet) -> None:
    event = recognise_eventbridge(
        rules,
        cloudtrail(
            "AWS Console Sign In via CloudTrail",
            eventSource="signin.amazonaws.com",
            eventName="ConsoleLogin",
            eventType="AwsConsoleSignIn",
            userIdentity={
                "type": "AssumedRole",
                "arn": "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_abc/alice@corp.example",  # noqa: E501
                "accountId": "123456789012",
            },
            responseElements={"ConsoleLogin": "Success"},
            additionalEventData={"MFAUsed": "Yes"},
        ),
    )
    assert event is not None
    assert (event.rule_id, event.actor, event.host, event.address) == (
        "cloudtrail-console-login",
        "alice@corp.example",
        "aws:123456789012",
        "198.51.100.20",
    )
    assert event.event_id == "cloudtrail-3f7a2c1e-0000-4000-8000-000000000001"
    assert event.occurred_at == datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    assert event.details["role"] == "AWSReservedSSO_Admin_abc"
    assert event.details["MFA used"] == "Yes"


def test_cloudtrail_failed_console_login_is_not_an_event(rules: RuleSet) -> None:
    failed = cloudtrail(
        eventSource="signin.amazonaws.com",
        eventName="ConsoleLogin",
        responseElements={"ConsoleLogin": "Failure"},
        errorMessage="Failed authentication",
    )
    assert recognise_eventbridge(rules, failed) is None


def test_cloudtrail_root_use_goes_to_the_security_team(rules: RuleSet) -> None:
    root = {"type": "Root", "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012"}
    event = recognise_eventbridge(
        rules,
        cloudtrail(
            eventSource="signin.amazonaws.com",
            eventName="ConsoleLogin",
            userIdentity=root,
            responseElements={"ConsoleLogin": "Success"},
        ),
    )
    assert event is not None and event.rule_id == "cloudtrail-root-activity"
    assert (event.actor, event.routing, event.actor_may_approve) == ("root", Routing.CHANNEL, False)
    denied = cloudtrail(
        eventSource="s3.amazonaws.com",
        eventName="DeleteBucket",
        userIdentity=root,
        errorCode="AccessDenied",
    )
    assert recognise_eventbridge(rules, denied) is None


def test_cloudtrail_iam_key_change(rules: RuleSet) -> None:
    event = recognise_eventbridge(
        rules,
        cloudtrail(
            eventSource="iam.amazonaws.com",
            eventName="CreateAccessKey",
            requestParameters={"userName": "deploy"},
            responseElements={"accessKey": {"accessKeyId": "AKIAEXAMPLE", "status": "Active"}},
        ),
    )
    assert event is not None
    assert (event.rule_id, event.actor, event.action) == (
        "cloudtrail-iam-change",
        "alice",
        "AWS IAM CreateAccessKey",
    )
    assert event.details["target user"] == "deploy"
    assert event.details["access key"] == "AKIAEXAMPLE"
    read_only = cloudtrail(eventSource="iam.amazonaws.com", eventName="ListUsers")
    assert recognise_eventbridge(rules, read_only) is None


def test_cloudtrail_assume_admin_role_only(rules: RuleSet) -> None:
    def assume(role: str) -> dict[str, Any]:
        return cloudtrail(
            eventSource="sts.amazonaws.com",
            eventName="AssumeRole",
            requestParameters={
                "roleArn": f"arn:aws:iam::123456789012:role/{role}",
                "roleSessionName": "alice",
            },
        )

    event = recognise_eventbridge(rules, assume("OrgAdministrator"))
    assert event is not None
    assert (event.rule_id, event.actor, event.action) == (
        "cloudtrail-assume-admin-role",
        "alice",
        "AWS assume role OrgAdministrator",
    )
    assert recognise_eventbridge(rules, assume("ReadOnly")) is None


def test_custom_examples(rules: RuleSet) -> None:
    glass = rules.recognise(
        line("breakglass", 'BREAKGLASS user=alice reason="incident 42"', "db-1")
    )
    assert glass is not None
    assert (glass.rule_id, glass.actor, glass.host, glass.routing) == (
        "custom-break-glass",
        "alice",
        "db-1",
        Routing.CHANNEL,
    )
    assert glass.details == {"reason": "incident 42"} and glass.renotify_after_seconds == 300
    vpn = RawEvent(
        source="json",
        provider_id="vpn-1",
        fields={"event": "vpn.login", "user": "bob", "ip": "198.51.100.4", "gateway": "vpn-eu"},
    )
    event = rules.recognise(vpn)
    assert event is not None
    assert (event.rule_id, event.actor, event.host, event.address) == (
        "custom-vpn-login",
        "bob",
        "vpn-eu",
        "198.51.100.4",
    )


def test_seed_rule_with_pcre_groups_works_as_written() -> None:
    config = config_from_mapping(
        {
            "rule_packs": [],
            "rules": [
                {
                    "id": "seed",
                    "title": "SSH login",
                    "match": {
                        "message": "Accepted publickey for (?<username>.+) from (?<address>.+) "
                        "port (?<port>.+) ssh2"
                    },
                    "event": {"actor": "{username}", "action": "ssh", "address": "{address}"},
                }
            ],
        },
        Path.cwd(),
        "seed",
    )
    event = config.rule_set().recognise(
        line("sshd", "Accepted publickey for alice from 10.0.0.1 port 22 ssh2")
    )
    assert event is not None and (event.actor, event.address) == ("alice", "10.0.0.1")


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"match": {"message": "Accepted (?<user>"}}, "message regex does not compile"),
        (
            {
                "match": {"message": "for (?<user>\\S+)"},
                "event": {"actor": "{username}", "action": "x"},
            },
            "no group named 'username'",
        ),
        (
            {
                "match": {"message": "for (?<user>\\S+)"},
                "event": {"actor": "{user}", "action": "x", "address": "{addr|ip}"},
            },
            "no group named 'addr'",
        ),
        (
            {"match": {"program": "ssh(", "message": "x"}, "event": {"actor": "x", "action": "x"}},
            "program regex does not compile",
        ),
        (
            {"match": {"fields": {"a": 1}, "extract": {"arn": "(?<x"}}},
            "extract:arn regex does not compile",
        ),
    ],
)
def test_broken_rules_fail_config_loading_naming_the_rule(
    tmp_path: Path, rule: dict[str, Any], reason: str
) -> None:
    data = {"id": "my-broken-rule", "title": "t", "event": {"actor": "{user}", "action": "a"}}
    data.update(rule)
    included = tmp_path / "more-rules.yaml"
    import yaml

    included.write_text(yaml.safe_dump({"rules": [data]}))
    config = tmp_path / "config.yaml"
    config.write_text("include: [more-rules.yaml]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "my-broken-rule" in str(caught.value)
    assert reason in str(caught.value)
    assert str(config) in str(caught.value)


def test_rules_split_across_files_are_all_loaded(tmp_path: Path) -> None:
    (tmp_path / "extra.yaml").write_text(
        "rules:\n  - id: deploy\n    title: Deploy\n    match: {program: '^deploy$', message: 'by (?<u>\\w+)'}\n"  # noqa: E501
        "    event: {actor: '{u}', action: deploy}\n"
    )
    (tmp_path / "config.yaml").write_text("rule_packs: [sudo]\ninclude: [extra.yaml]\n")
    ids = [rule.id for rule in load_config(tmp_path / "config.yaml").rules]
    assert ids[:2] == ["deploy", "sudo-command"]
    assert set(ids) == {"deploy"} | {rule["id"] for rule in rule_pack("sudo")["rules"]}


@pytest.mark.parametrize(
    ("text", "host", "program", "pid", "message", "when"),
    [
        (
            "Nov 27 01:02:03 bastion sshd[123]: Accepted password for a from 1.2.3.4 port 5 ssh2",
            "bastion",
            "sshd",
            "123",
            "Accepted password for a from 1.2.3.4 port 5 ssh2",
            datetime(2025, 11, 27, 1, 2, 3, tzinfo=UTC),
        ),
        (
            "<86>Feb  7 16:01:07 linux-m899 sudo: alice : PWD=/ ; USER=root ; COMMAND=/bin/id",
            "linux-m899",
            "sudo",
            None,
            "alice : PWD=/ ; USER=root ; COMMAND=/bin/id",
            datetime(2025, 2, 7, 16, 1, 7, tzinfo=UTC),
        ),
        (
            "2015-04-16T18:02:50.321974+00:00 host sshd-session[2716]: Accepted x for y from z port 1",  # noqa: E501
            "host",
            "sshd-session",
            "2716",
            "Accepted x for y from z port 1",
            datetime(2015, 4, 16, 18, 2, 50, 321974, tzinfo=UTC),
        ),
        (
            '<38>1 2019-07-08T17:40:17.954167-04:00 h.example.com sshd 55555 - [timeQuality tzKnown="1"][x@1 t="[b]"] Accepted',  # noqa: E501
            "h.example.com",
            "sshd",
            "55555",
            "Accepted",
            datetime(2019, 7, 8, 21, 40, 17, 954167, tzinfo=UTC),
        ),
        (
            "<13>1 2026-11-27T01:02:03Z - app - ID47 - \ufeffhello",
            None,
            "app",
            None,
            "hello",
            datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC),
        ),
        (
            "Mar 29 05:59:23 dusky sshd[20878]: [ID 800047 auth.info] Accepted password for j from 1.2.3.4 port 1 ssh2",  # noqa: E501
            "dusky",
            "sshd",
            "20878",
            "Accepted password for j from 1.2.3.4 port 1 ssh2",
            datetime(2025, 3, 29, 5, 59, 23, tzinfo=UTC),
        ),
        (
            "Nov 23 21:50:19 sshd[8148]: Disconnecting [preauth]",
            None,
            "sshd",
            "8148",
            "Disconnecting [preauth]",
            datetime(2025, 11, 23, 21, 50, 19, tzinfo=UTC),
        ),
    ],
)
def test_syslog_framing(
    text: str, host: str | None, program: str, pid: str | None, message: str, when: datetime
) -> None:
    record = parse_syslog(text, now=datetime(2026, 1, 10, tzinfo=UTC))
    assert record is not None
    assert (record.host, record.program, record.pid, record.message) == (
        host,
        program,
        pid,
        message,
    )
    assert record.time == when


def test_syslog_year_and_non_syslog() -> None:
    # A December line read in January is last year's.
    record = parse_syslog(
        "Dec 31 23:59:59 h cron[1]: x", now=datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    )
    assert record is not None and record.time == datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_syslog("Accepted password for a from b port 1 ssh2") is None
    assert parse_syslog_line("just text", "t") is None
    raw = parse_syslog_line("Nov 27 01:02:03 h sshd[1]: x", "t", year=2024)
    again = parse_syslog_line("Nov 27 01:02:03 h sshd[1]: x", "t", year=2024)
    assert raw is not None and again is not None and raw.provider_id == again.provider_id


def test_every_built_in_rule_says_what_kind_of_action_it_recognises() -> None:
    config = config_from_mapping({"rule_packs": available_rule_packs()}, Path.cwd(), "test")
    # A known non-event starts nothing the HIDS could ask about: only event rules need a kind.
    kinds = {rule.id: rule.kind for rule in config.rules if not rule.non_event}
    assert EventKind.OTHER not in kinds.values(), kinds
    assert kinds["sshd-accepted"] is EventKind.LOGIN
    assert kinds["sudo-command"] is EventKind.PRIVILEGE


def test_an_event_recorded_before_rules_had_a_kind_takes_its_built_in_rules_kind() -> None:
    """Memo records written by older code carry no `kind`: the HIDS must still find logins."""
    older = {
        "event_id": "papertrail-1",
        "source": "papertrail",
        "provider_id": "1",
        "rule_id": "sshd-accepted",
        "rule_title": "SSH login",
        "action": "ssh login (publickey)",
        "actor": "alice",
        "occurred_at": "2026-11-27T01:02:03Z",
    }
    assert SecurityEvent.model_validate(older).kind is EventKind.LOGIN
    custom = {**older, "rule_id": "my-own-rule"}
    assert SecurityEvent.model_validate(custom).kind is EventKind.OTHER
