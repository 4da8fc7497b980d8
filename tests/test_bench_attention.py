"""`bench/attention.py`'s synthetic day has the shape the issue asks for, and every line of it is
recognised by the default rule packs as the kind the bench counts it as (no servers: seconds)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench.attention import DB_HOSTS, make_day, phased
from powertrip.config import config_from_mapping
from powertrip.identity import identity_of
from powertrip.models import RawEvent


def test_the_day_is_deterministic_and_shaped_as_asked() -> None:
    day = make_day(13, people=50, bots=3, sessions=3)
    assert day == make_day(13, people=50, bots=3, sessions=3)
    assert day != make_day(14, people=50, bots=3, sessions=3)
    actors = {s.actor for s in day.sessions}
    assert actors == set(day.people) | set(day.bots) and len(day.people) == 50
    bursts = [s for s in day.sessions if s.events[0].kind == "sudo" and s.actor in day.people]
    assert all(5 <= len(s.events) <= 40 for s in bursts)
    assert max(len(s.events) for s in bursts) > 30 and min(len(s.events) for s in bursts) < 10
    kinds = Counter(e.kind for e in day.events)
    assert kinds["sshd"] >= 50 and kinds["su"] >= 1 and kinds["sudo"] > 10 * kinds["sshd"]
    # Every person's burst is one account on one host, in time order.
    for session in day.sessions:
        assert len({(e.actor, e.host) for e in session.events}) == 1
        assert [e.at for e in session.events] == sorted(e.at for e in session.events)
    # The maintenance window: the DBA's sessions on the database hosts, inside the window.
    actor, hosts, opens, closes = day.maintenance
    planned = [s for s in day.sessions if s.maintenance]
    assert {s.events[0].host for s in planned} == set(DB_HOSTS) == set(hosts)
    assert all(s.actor == actor and opens <= s.at and s.events[-1].at <= closes for s in planned)
    # No two lines of one account on one host are the same action (the product would count a
    # repeat within its tolerance as one event, and the replay compresses the day).
    assert len({(e.actor, e.host, e.message) for e in day.events}) == len(day.events)


def test_every_line_is_recognised_by_the_default_packs_as_its_kind(tmp_path: Path) -> None:
    rules = config_from_mapping({"bots": ["deploybot1"]}, tmp_path, "test").rule_set()
    day = make_day(13, people=5, bots=1, sessions=2)
    rule_of = {"sshd": "sshd-", "sudo": "sudo-", "su": "su-"}
    for n, event in enumerate(day.events):
        raw = RawEvent(source="papertrail", provider_id=str(n), received_at=datetime.now(UTC),
                       host=event.host, program=event.program, message=event.message)  # fmt: skip
        recognised = rules.recognise(raw)
        assert recognised is not None, event.message
        assert recognised.actor == event.actor, event.message
        assert recognised.rule_id.startswith(rule_of[event.kind]), (recognised.rule_id, event)


def test_no_two_lines_are_one_action_in_a_phase_nor_a_login_across_phases(tmp_path: Path) -> None:
    """The replay stamps each line with the real time it delivers it, so the day's hours become
    minutes: no two lines of one phase may have one natural identity, whatever their times; and
    a login (the identity whose tolerance is minutes) differs in every phase (`phased`), while
    every other line is the same and each is recognised as it was."""
    rules = config_from_mapping({"bots": ["deploybot1"]}, tmp_path, "test").rule_set()
    day = make_day(13, people=10, bots=1, sessions=2)

    def identities(phase: int) -> list[str | None]:
        found = []
        for n, event in enumerate(day.events):
            raw = RawEvent(source="papertrail", provider_id=str(n), received_at=datetime.now(UTC),
                           host=event.host, program=event.program,
                           message=phased(event.message, phase))  # fmt: skip
            recognised = rules.recognise(raw)
            assert recognised is not None and recognised.actor == event.actor, event.message
            found.append(identity_of(recognised))
        return found

    first, second = identities(1), identities(2)
    assert None not in first and len(set(first)) == len(first) == len(day.events)
    for event, one, two in zip(day.events, first, second, strict=True):
        assert (one != two) if event.kind == "sshd" else (one == two), event.message
