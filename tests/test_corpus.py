"""Proof over real logs (tests/corpus): every Accepted and sudo command line becomes the right
event; no failure or noise line ever becomes an approvable one, and the well-known ones are known
non-events (counted, never sent for review); Filebeat's expected parse of timestamp.log agrees
with ours."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from powertrip.config import available_rule_packs, config_from_mapping
from powertrip.models import RawEvent, SecurityEvent
from powertrip.rules import RuleSet
from powertrip.sources.syslog import parse_syslog, parse_syslog_line
from tests.servers import CORPUS

ALL_PACKS = available_rule_packs()
LOGS = [CORPUS / "beats" / "test.log", CORPUS / "beats" / "secure-rhel7.log"]
SSHD_CASES = CORPUS / "sshd-cases.log"
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


def raw_of(line: str, number: int) -> RawEvent:
    raw = parse_syslog_line(line, "corpus", f"line-{number}", year=2005)
    assert raw is not None, f"no syslog framing: {line!r}"
    return raw


def recognise(rules: RuleSet, line: str, number: int) -> SecurityEvent | None:
    return rules.recognise(raw_of(line, number))


def corpus_lines() -> list[tuple[Path, int, str]]:
    lines = []
    for path in [*LOGS, SSHD_CASES]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() and not line.startswith("#"):
                lines.append((path, number, line))
    return lines


def annotated_cases() -> list[tuple[str, dict[str, str], int, str]]:
    """(expectation, its key=value details, line number, line) for every line of
    sshd-cases.log, from the `# expect: ...` comment before it."""
    lines = SSHD_CASES.read_text().splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.startswith("# expect: "):
            kind, *details = line.removeprefix("# expect: ").split()
            pairs = dict(detail.split("=", 1) for detail in details)
            found.append((kind, pairs, index + 2, lines[index + 1]))
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
    # tests/corpus/README.md's counts: 2 + 3 Accepted in the beats logs, 2 + 2 sudo commands
    # (one refusal aside), and the sshd cases' three `sshd[pid]:` logins.
    assert checked == {"accepted": 8, "sudo": 4}


def test_no_failure_or_noise_line_becomes_an_approvable_event(rules: RuleSet) -> None:
    approvable = {
        (path.name, number): line
        for path, number, line in corpus_lines()
        if recognise(rules, line, number) is not None
    }
    # Exactly the Accepted and allowed sudo lines; never `Failed`, `Invalid user`, `NOT in
    # sudoers`, sessions, disconnects, PAM noise...
    for (name, number), line in approvable.items():
        assert " Accepted " in line or SYSLOG_SUDO.match(line), f"{name}:{number}: {line}"
    assert len(approvable) == 14
    refusal = "sudo:      tsg : user NOT in sudoers"
    assert any(refusal in line for _, _, line in corpus_lines())
    assert not any(refusal in line for line in approvable.values())


def test_every_sshd_case_is_what_its_annotation_says(rules: RuleSet) -> None:
    cases = annotated_cases()
    assert Counter(kind for kind, *_ in cases) == {"failure": 90, "noise": 27, "login": 5}
    for kind, details, number, line in cases:
        raw = raw_of(line, number)
        event = rules.recognise(raw)
        where = f"sshd-cases.log:{number}: {line}"
        if kind == "login":
            assert event is not None and event.rule_id == "sshd-accepted", where
            assert (event.actor, event.address) == (details["user"], details["address"]), where
            continue
        # A failed attempt is never approvable, and a brute-force run does not flood the
        # channel: sshd's well-known lines are known non-events, counted but never reviewed.
        assert event is None, where
        known = rules.non_event(raw)
        assert known is not None, f"not a known non-event: {where}"
        assert known.id.startswith("sshd-"), where


def test_the_beats_logs_leave_only_real_refusals_for_review(rules: RuleSet) -> None:
    """Of the real logs' lines that are no event, everything but the refusals worth a human's
    eye (a sudo refusal, an account created) is a known non-event."""
    left = []
    for _, number, line in corpus_lines():
        raw = raw_of(line, number)
        if rules.recognise(raw) is None and rules.non_event(raw) is None:
            left.append(line)
    assert [re.sub(r"^.*? (\S+?)(?:\[\d+\])?: +", r"\1: ", line) for line in left] == [
        "sudo: tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; "
        "COMMAND=/bin/ls",
        "groupadd: new group: name=apache, GID=48",
        "useradd: new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, "
        "shell=/sbin/nologin",
    ]


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
