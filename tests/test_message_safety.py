"""Log content is attacker-controlled: it must show in Slack as text, never as a mention, a
channel ping or a link, and never break out of its code span."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from powertrip.approvals import Authority, EventRecord, MessageKind, Recipient
from powertrip.directory import Identity
from powertrip.messages import decided, notification
from powertrip.models import RawEvent
from powertrip.unrecognised import UnrecognisedInput, review_message
from tests.harness import make_config

HOSTILE = "echo <!channel> <https://evil.example/approve|Approve here> & `x`"


def sudo_record() -> EventRecord:
    config = make_config(rule_packs=["sudo"])
    raw = RawEvent(
        source="papertrail",
        provider_id="s1",
        host="db-1",
        program="sudo",
        received_at=datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC),
        message=f"alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh -c '{HOSTILE}'",
    )
    event = config.rule_set().recognise(raw)
    assert event is not None and event.rule_id == "sudo-command"
    recipient = Recipient(
        identity=Identity.MAPPED,
        slack_user="U0ALICE",
        authority=Authority(actor_slack_user="U0ALICE", security_team=["U0SEC1"]),
    )
    return EventRecord(event=event, recipient=recipient)


def test_a_hostile_sudo_command_is_shown_but_cannot_ping_or_link() -> None:
    record = sudo_record()
    for text, blocks in (
        notification(record, MessageKind.FIRST),
        notification(record, MessageKind.REMINDER, waited_seconds=900),
        decided(record, MessageKind.FIRST),
    ):
        rendered = text + json.dumps([b.to_dict() for b in blocks])
        assert "<!channel>" not in rendered
        assert "<https://evil.example" not in rendered
        assert "&lt;!channel&gt;" in rendered  # the command is there, as text
        assert "&lt;https://evil.example/approve|Approve here&gt;" in rendered
        # The user sees which command they are approving.
        details = next(b for b in blocks if b.block_id == "details").to_dict()
        assert "/bin/sh -c" in details["text"]["text"]
        # A backtick in the value cannot close the code span early.
        assert "`x`" not in details["text"]["text"]


def test_an_unrecognised_line_cannot_ping_or_close_its_code_block() -> None:
    raw = RawEvent(
        source="json",
        provider_id="u1",
        host="web-1",
        program="app",
        message="<!here> ``` <@U0SEC1> pwned",
    )
    text, blocks = review_message(
        UnrecognisedInput(
            source="json",
            shape="app: <!here>",
            sample=raw,
            hour=datetime(2026, 11, 27, 1, tzinfo=UTC),
        )
    )
    rendered = text + json.dumps([b.to_dict() for b in blocks])
    assert "<!here>" not in rendered and "<@U0SEC1>" not in rendered
    body = next(b.to_dict() for b in blocks if "```" in json.dumps(b.to_dict()))
    assert body["text"]["text"].count("```") == 2
