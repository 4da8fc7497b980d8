"""Escalation in the config file: the default policy, a rule's own, urgency defaults, business
hours, and errors that name the rule and the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from powertrip.config import ConfigError, PowertripConfig, config_from_mapping
from powertrip.escalation import EscalationPolicy, Severity, StepKind, Urgency
from powertrip.models import RawEvent, SecurityEvent
from tests.harness import ssh_line

SUDO_LINE = (
    "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"
)


def load(text: str) -> PowertripConfig:
    return config_from_mapping(yaml.safe_load(text) or {}, Path.cwd(), "config.yaml")


def recognise(config: PowertripConfig, program: str, message: str) -> SecurityEvent:
    raw = RawEvent(
        source="papertrail",
        provider_id=uuid.uuid4().hex[:12],
        received_at=datetime(2026, 12, 5, 3, 0, tzinfo=UTC),
        host="bastion",
        program=program,
        message=message,
    )
    event = config.rule_set().recognise(raw)
    assert event is not None
    return event


def steps(policy: EscalationPolicy | None) -> list[tuple[str, float, float | None, int | None]]:
    assert policy is not None
    return [
        (
            s.do.value,
            s.after.total_seconds(),
            s.every.total_seconds() if s.every else None,
            s.repeat,
        )
        for s in policy.steps
    ]


def test_renotify_after_alone_is_the_policy_every_event_carries() -> None:
    event = recognise(load("renotify_after: 10m"), "sshd", ssh_line("alice"))
    assert steps(event.escalation) == [("remind", 600, 600, None)]
    assert event.renotify_after_seconds == 600  # what today's workflow reads, unchanged
    assert event.business_hours is None


def test_page_after_adds_one_page_with_warning_severity() -> None:
    config = load("renotify_after: 15m\npagerduty: {page_after: 1h}")
    event = recognise(config, "sshd", ssh_line("alice"))
    assert steps(event.escalation) == [("remind", 900, 900, None), ("page", 3600, None, None)]
    assert event.escalation is not None
    [page] = event.escalation.steps_of(StepKind.PAGE)
    assert page.severity is Severity.WARNING and page.occurrences == 1


def test_a_full_policy_business_hours_and_per_rule_overrides() -> None:
    config = load(
        """
rule_packs: [sshd, sudo]
escalation:
  - {do: remind, after: 15m, every: 30m}
  - {do: page, after: 1h, every: 4h, repeat: 2}
business_hours: {timezone: Europe/Berlin, days: mon-fri, start: "09:00", end: "17:00"}
rules:
  - id: break-glass
    title: Break-glass
    match: {program: '^breakglass$', message: 'user=(?<user>\\S+)'}
    event: {actor: '{user}', action: break-glass}
    severity: critical
    pagerduty: {page_after: 5m}
  - id: vpn
    title: VPN
    kind: login
    match: {program: '^vpn$', message: 'user=(?<user>\\S+)'}
    event: {actor: '{user}', action: vpn login}
    renotify_after: 5m
  - id: deploy-key
    title: Deploy key
    match: {program: '^deploykey$', message: 'user=(?<user>\\S+)'}
    event: {actor: '{user}', action: deploy key used}
    escalation: [{do: remind, after: 1h}]
"""
    )
    login = recognise(config, "sshd", ssh_line("alice"))
    assert steps(login.escalation) == [("remind", 900, 1800, None), ("page", 3600, 14400, 2)]
    assert login.business_hours is not None and login.business_hours.timezone == "Europe/Berlin"
    # A rule's page_after replaces the pages by one; its severity is the page's.
    glass = recognise(config, "breakglass", "user=bob")
    assert steps(glass.escalation) == [("remind", 900, 1800, None), ("page", 300, None, None)]
    assert glass.escalation is not None
    assert glass.escalation.steps[-1].severity is Severity.CRITICAL
    # A rule's renotify_after replaces the reminders; the config's pages stay.
    vpn = recognise(config, "vpn", "user=carol")
    assert steps(vpn.escalation) == [("remind", 300, 300, None), ("page", 3600, 14400, 2)]
    # A rule's own policy is the whole policy: this one never pages.
    key = recognise(config, "deploykey", "user=dave")
    assert steps(key.escalation) == [("remind", 3600, None, None)]


def test_urgency_defaults_and_overrides() -> None:
    config = load(
        """
rule_packs: [sshd, sudo, su, cloudtrail, custom-example]
rules:
  - id: calm-login
    title: Calm login
    kind: login
    urgency: low
    match: {program: '^calm$', message: 'user=(?<user>\\S+)'}
    event: {actor: '{user}', action: login}
"""
    )
    assert recognise(config, "sshd", ssh_line("alice")).urgency is Urgency.HIGH
    assert recognise(config, "sshd", ssh_line("root")).urgency is Urgency.HIGH
    assert recognise(config, "sudo", SUDO_LINE).urgency is Urgency.LOW  # ordinary sudo
    su = recognise(
        config, "su", "pam_unix(su-l:session): session opened for user root by bob(uid=1000)"
    )
    assert su.kind.value == "privilege" and su.urgency is Urgency.LOW
    assert recognise(config, "calm", "user=alice").urgency is Urgency.LOW
    glass = recognise(config, "breakglass", 'BREAKGLASS user=alice reason="incident 42"')
    assert glass.urgency is Urgency.HIGH
    assert glass.escalation is not None
    assert glass.escalation.steps_of(StepKind.REMIND)[0].every == timedelta(minutes=5)


def test_root_is_always_high_urgency() -> None:
    config = load(
        """
rules:
  - id: priv
    title: Privilege
    kind: privilege
    match: {program: '^priv$', message: 'user=(?<user>\\S+)'}
    event: {actor: '{user}', action: privileged}
"""
    )
    assert recognise(config, "priv", "user=alice").urgency is Urgency.LOW
    assert recognise(config, "priv", "user=root").urgency is Urgency.HIGH


def test_the_policy_survives_the_json_round_trip_of_a_workflow_input() -> None:
    config = load(
        "escalation: [{do: remind, after: 90s, every: 1h30m}, {do: page, after: 0}]\n"
        "business_hours: {timezone: America/New_York, days: [mon, thu], start: 8:30, end: 17:45}"
    )
    event = recognise(config, "sshd", ssh_line("alice"))
    again = SecurityEvent.model_validate_json(event.model_dump_json())
    assert again == event and again.escalation_policy() == event.escalation
    assert again.business_hours is not None and again.business_hours.days == ["mon", "thu"]


def test_events_recorded_before_policies_get_their_renotify_after_as_policy() -> None:
    old: dict[str, Any] = {
        "event_id": "papertrail-1",
        "source": "papertrail",
        "provider_id": "1",
        "rule_id": "sshd-accepted",
        "rule_title": "SSH login",
        "action": "ssh login",
        "actor": "alice",
        "occurred_at": "2026-11-27T01:02:03Z",
        "renotify_after_seconds": 600,
    }
    event = SecurityEvent.model_validate(old)
    assert event.escalation is None and event.urgency is Urgency.HIGH
    assert steps(event.escalation_policy()) == [("remind", 600, 600, None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - {id: my-rule, title: t, match: {message: x}, event: {actor: a, action: b},"
            " escalation: [{do: page, after: 1h, every: 2h}]}",
            "rule 'my-rule': escalation.0: Value error, repeat: a page that repeats must say",
        ),
        (
            "rules:\n  - {id: my-rule, title: t, match: {message: x}, event: {actor: a, action: b},"
            " urgency: urgent}",
            "rule 'my-rule': urgency: Input should be 'high' or 'low'",
        ),
        (
            "rules:\n  - {id: my-rule, title: t, match: {message: x}, event: {actor: a, action: b},"
            " escalation: [{do: remind, after: 1h}], renotify_after: 5m}",
            "rule 'my-rule': escalation: gives the whole policy; drop renotify_after",
        ),
        (
            "rules:\n  - {id: my-rule, title: t, match: {message: x}, event: {actor: a, action: b},"
            " pagerduty: {page_after: soon}}",
            "rule 'my-rule': pagerduty.page_after: Value error, not a duration: 'soon'",
        ),
        (
            "escalation: [{do: remind, after: 1h, severity: critical}]",
            "escalation.0: Value error, severity: only a `page` step has a severity",
        ),
        (
            "escalation: [{do: page, after: 1h}]\npagerduty: {page_after: 2h}",
            "pagerduty.page_after: the `escalation` policy already has a page step",
        ),
        (
            "escalation: [{do: remind, after: 1h}]\nrenotify_after: 5m",
            "renotify_after: `escalation` gives the whole policy",
        ),
        (
            "business_hours: {timezone: Mars/Olympus}",
            "business_hours.timezone: Value error, unknown",
        ),
        ("business_hours: {timezone: ../../etc/passwd}", "not a time zone name"),
        ("business_hours: {timezone: UTC, start: '18:00', end: '09:00'}", "overnight periods"),
        ("business_hours: {timezone: UTC, days: [mon, funday]}", "not a day: 'funday'"),
        ("business_hours: {timezone: UTC, start: 9}", 'write it in quotes as "HH:MM"'),
    ],
)
def test_errors_name_the_rule_and_the_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(text)
    assert expected in str(error.value)
