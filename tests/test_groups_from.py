"""A group's question says where its events came from (issue 13 §1): one burst may come from
several addresses, and the *From* of its one message must not show only the first event's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from powertrip import messages
from powertrip.contracts.approval import Burst, EventRecord, Member, MessageKind
from tests.harness import make_event


def group_record(addresses: list[str | None], members: int | None = None) -> EventRecord:
    """A group's record as `GroupWorkflow` keeps it: the first event (203.0.113.7, port 40022)
    and its latest members, oldest first, from `addresses`."""
    first = make_event("alice", host="ops-1", port=40022)
    latest = [
        Member(
            event_id=f"e{n}",
            action="sudo",
            detail=f"systemctl restart nginx #{n}",
            occurred_at=first.occurred_at + timedelta(minutes=n),
            address=address,
        )
        for n, address in enumerate(addresses)
    ]
    burst = Burst(members=members or len(latest), since=first.occurred_at, latest=latest)
    return EventRecord(event=first, burst=burst)


def from_field(blocks: list[Any]) -> str:
    [facts] = [b for b in blocks if b.block_id == "facts"]
    [source] = [f.text for f in facts.fields if f.text.startswith("*From*")]
    return str(source)


def test_a_group_from_several_addresses_shows_them_all_newest_first() -> None:
    record = group_record(["203.0.113.7", "198.51.100.4", "203.0.113.7", "198.51.100.9"])
    for build in (
        lambda: messages.notification(record, MessageKind.FIRST),
        lambda: messages.notification(record, MessageKind.REMINDER, 900, in_channel=True),
        lambda: messages.decided(record, MessageKind.FIRST),
    ):
        source = from_field(build()[1])
        assert source.index("198.51.100.9") < source.index("198.51.100.4")
        assert "203.0.113.7" in source
        # Each login of a burst has its own port: the first one's would mislead.
        assert "40022" not in source


def test_many_addresses_are_counted_and_one_shared_address_keeps_its_origin() -> None:
    many = group_record([f"198.51.100.{n}" for n in range(1, 6)], members=12)
    source = from_field(messages.notification(many, MessageKind.FIRST)[1])
    assert "198.51.100.5" in source and "198.51.100.3" in source
    assert "198.51.100.2" not in source
    assert "and 3 other addresses" in source  # .2, .1 and the first's 203.0.113.7
    assert "the first and the latest 5 events" in source

    shared = group_record(["203.0.113.7"] * 3)
    _, blocks = messages.notification(shared, MessageKind.FIRST, origin="office VPN")
    assert from_field(blocks) == "*From*\n`203.0.113.7`\noffice VPN"


def test_members_recorded_without_addresses_say_whose_address_is_shown() -> None:
    older = group_record([None, None])
    source = from_field(messages.notification(older, MessageKind.FIRST)[1])
    assert "203.0.113.7" in source and "the first event's" in source
    # An event asked on its own is shown as before, port and all.
    alone = make_event("alice", port=40022)
    source = from_field(messages.notification(EventRecord(event=alone), MessageKind.FIRST)[1])
    assert source == "*From*\n`203.0.113.7` port 40022"


def test_a_member_keeps_what_the_message_shows_of_its_event() -> None:
    event = make_event("alice", host="ops-1")
    member = Member.of(event)
    assert (member.event_id, member.action, member.occurred_at) == (
        event.event_id,
        event.action,
        event.occurred_at,
    )
    assert member.address == "203.0.113.7"
    assert member.detail == next(iter(event.details.values()), None)
