"""A click on a question the workflow has not recorded yet: Slack shows a message the moment it is
posted, the workflow records it one workflow task later, and a busy worker starts that task
seconds to a minute late. The owner's quick answer must wait for the record, not be refused as a
forgery; a click from another message in a channel the event already posted to is refused fast."""

from __future__ import annotations

import time
from typing import Any

import pytest

from powertrip.contracts.approval import EventRecord, MessageKind, PostedMessage
from powertrip.services import decisions
from tests.harness import make_event


def _recording_late(
    monkeypatch: pytest.MonkeyPatch, record: EventRecord, after: float, message: PostedMessage
) -> None:
    """The memo gains `message` `after` seconds from now (the late workflow task)."""
    ready = time.monotonic() + after

    async def late_record(client: Any, event_id: str) -> EventRecord:
        if time.monotonic() >= ready:
            return record.model_copy(update={"messages": [*record.messages, message]})
        return record

    monkeypatch.setattr(decisions, "event_record", late_record)
    monkeypatch.setattr(decisions, "FIRST_MESSAGE_GRACE_SECONDS", 8.0)


async def test_a_quick_click_waits_for_its_first_message_to_be_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = EventRecord(event=make_event())
    dm = PostedMessage(kind=MessageKind.FIRST, channel="D0ALICE", ts="1700000000.000100")
    _recording_late(monkeypatch, record, 3.0, dm)  # longer than MESSAGE_GRACE_SECONDS
    started = time.monotonic()
    found, mismatch = await decisions._on_its_message(
        None,  # type: ignore[arg-type]
        record.event.event_id,
        record,
        (dm.channel, dm.ts),
    )
    assert mismatch is None
    assert [m.ts for m in found.messages] == [dm.ts]
    assert 2.5 < time.monotonic() - started < 8.0


async def test_a_click_from_another_message_where_the_event_already_posted_is_refused_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dm = PostedMessage(kind=MessageKind.FIRST, channel="D0ALICE", ts="1700000000.000100")
    record = EventRecord(event=make_event(), messages=[dm])
    never = PostedMessage(kind=MessageKind.FIRST, channel="D0ALICE", ts="1")
    _recording_late(monkeypatch, record, 3600.0, never)
    started = time.monotonic()
    _, mismatch = await decisions._on_its_message(
        None,  # type: ignore[arg-type]
        record.event.event_id,
        record,
        ("D0ALICE", "1700000000.999999"),
    )
    assert mismatch is not None and "never posted" in mismatch
    assert time.monotonic() - started < decisions.MESSAGE_GRACE_SECONDS + 2.5
