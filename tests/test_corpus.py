"""Proof over real logs (../shared/corpus): every Accepted and sudo command line becomes the right
event; no failure or noise line ever becomes an approvable one; Filebeat's expected parse of
timestamp.log agrees with ours."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from powertrip.config import config_from_mapping
from powertrip.models import SecurityEvent
from powertrip.rules import RuleSet
from powertrip.syslog import parse_syslog, parse_syslog_line
from tests.conftest import CORPUS

ALL_PACKS = ["sshd", "sudo", "su", "cloudtrail", "custom-example"]
LOGS = [CORPUS / "beats" / "test.log", CORPUS / "beats" / "secure-rhel7.log"]
FAIL2BAN = CORPUS / "fail2ban" / "sshd.log"
SYSLOG_ACCEPTED = re.compile(
    r"^\w{3} +\d+ [\d:]+ (?P<host>\S+) sshd\[\d+\]: Accepted (?P<method>\S+) for (?P<user>\S+) "
    r"from (?P<address>\S+) port \d+"
)
SYSLOG_SUDO = re.compile(
    r"^\w{3} +\d+ [\d:]+ (?P<host>\S+) sudo: +(?P<user>\S+) : TTY=\S+ ; PWD=\S+ ; "
    r"USER=(?P<target>\S+) ; COMMAND=(?P<command>.+)$"
)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return config_from_mapping({"rule_packs": ALL_PACKS}, Path.cwd(), "all packs").rule_set()


def recognise(rules: RuleSet, line: str, number: int) -> SecurityEvent | None:
    raw = parse_syslog_line(line, "corpus", f"line-{number}", year=2005)
    assert raw is not None, f"no syslog framing: {line!r}"
    return rules.recognise(raw)


def corpus_lines() -> list[tuple[Path, int, str]]:
    lines = []
    for path in [*LOGS, FAIL2BAN]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() and not line.startswith("#"):
                lines.append((path, number, line))
    return lines


def fail2ban_annotated() -> list[tuple[dict[str, object], int, str]]:
    """(annotation, line number, line) for every line fail2ban annotates with `# failJSON:`."""
    lines = FAIL2BAN.read_text().splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.startswith("# failJSON:") and index + 1 < len(lines):
            found.append(
                (json.loads(line.removeprefix("# failJSON:")), index + 2, lines[index + 1])
            )
    return found


def test_every_accepted_and_sudo_line_is_the_right_event(rules: RuleSet) -> None:
    checked = {"accepted": 0, "sudo": 0}
    for path, number, line in corpus_lines():
        where = f"{path.name}:{number}"
        if found := SYSLOG_ACCEPTED.match(line):
            event = recognise(rules, line, number)
            assert event is not None, f"{where} not recognised: {line}"
            assert event.rule_id == "sshd-accepted", where
            assert event.actor == found["user"], where
            assert event.address == found["address"], where
            assert event.host == found["host"], where
            assert event.details["method"] == found["method"], where
            assert event.action == f"ssh login ({found['method']})", where
            checked["accepted"] += 1
        elif found := SYSLOG_SUDO.match(line):
            event = recognise(rules, line, number)
            assert event is not None, f"{where} not recognised: {line}"
            assert (event.rule_id, event.actor, event.host) == (
                "sudo-command",
                found["user"],
                found["host"],
            )
            assert event.details["command"] == found["command"], where
            assert event.action == f"sudo as {found['target']}", where
            checked["sudo"] += 1
    # The corpus README's counts: 2 + 3 + 4 Accepted, 2 + 2 sudo commands (one refusal aside).
    assert checked == {"accepted": 9, "sudo": 4}


def test_no_failure_or_noise_line_becomes_an_approvable_event(rules: RuleSet) -> None:
    approvable = {
        (path.name, number): line
        for path, number, line in corpus_lines()
        if recognise(rules, line, number) is not None
    }
    # Exactly the Accepted and allowed sudo lines; never `Failed`, `Invalid user`, `NOT in
    # sudoers`, sessions, disconnects, PAM noise...
    for (name, number), line in approvable.items():
        assert SYSLOG_ACCEPTED.match(line) or SYSLOG_SUDO.match(line), f"{name}:{number}: {line}"
    assert len(approvable) == 13
    refusal = "sudo:      tsg : user NOT in sudoers"
    assert any(refusal in line for _, _, line in corpus_lines())
    assert not any(refusal in line for line in approvable.values())


def test_fail2ban_failures_never_become_approvable_events(rules: RuleSet) -> None:
    annotated = fail2ban_annotated()
    failures = [(note, number, line) for note, number, line in annotated if note.get("match")]
    assert len(failures) > 100
    # fail2ban's multi-line mode also flags two *successful* logins, as the last step of an
    # intruder's run across several user names (`"users": [...]`). A successful login is exactly
    # what Powertrip must ask about, so those two are events; every other failure is not.
    successful = [(n, line) for note, n, line in failures if " Accepted " in line]
    assert [n for n, _ in successful] == [252, 262]
    for note, number, line in failures:
        event = recognise(rules, line, number)
        if " Accepted " in line:
            assert note.get("users") and event is not None
            continue
        assert event is None, f"fail2ban failure at line {number} became {event}: {line}"


def test_fail2ban_accepted_lines_become_events(rules: RuleSet) -> None:
    accepted = [(n, line) for _, n, line in fail2ban_annotated() if " Accepted " in line]
    assert len(accepted) == 4
    for number, line in accepted:
        event = recognise(rules, line, number)
        assert event is not None and event.rule_id == "sshd-accepted", line


def test_filebeat_expected_parse_of_timestamp_log_agrees() -> None:
    expected = json.loads((CORPUS / "beats" / "timestamp.log-expected.json").read_text())
    lines = (CORPUS / "beats" / "timestamp.log").read_text().splitlines()
    assert len(expected) == len(lines) == 2
    rules = config_from_mapping({"rule_packs": ALL_PACKS}, Path.cwd(), "x").rule_set()
    for want, line in zip(expected, lines, strict=True):
        record = parse_syslog(line)
        assert record is not None
        assert record.host == want["host.hostname"]
        assert record.time is not None
        # Filebeat keeps milliseconds (Elasticsearch's `date` precision); we keep microseconds.
        milliseconds = record.time.replace(microsecond=record.time.microsecond // 1000 * 1000)
        assert milliseconds == datetime.fromisoformat(want["@timestamp"].replace("Z", "+00:00"))
        assert record.program == want["process.name"]
        assert record.message == want["message"]
        # Filebeat names no user for either line (a `sudo -i` session helper line and a pam
        # logout): neither is an approvable action on its own, and Powertrip agrees.
        assert "user.name" not in want
        raw = parse_syslog_line(line, "beats", "x")
        assert raw is not None and rules.recognise(raw) is None
