"""Log content is attacker-controlled: it must show in Slack as text, never as a mention, a
channel ping or a link, and never break out of its code span."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from rich.console import Console
from temporalio.testing import WorkflowEnvironment

from powertrip.cli.events import events_table
from powertrip.contracts.approval import Authority, EventRecord, MessageKind, Recipient
from powertrip.contracts.conflict import ConflictReport
from powertrip.contracts.polling import PollAlert
from powertrip.contracts.reminders import DigestLine
from powertrip.contracts.reviews import UnrecognisedInput
from powertrip.directory import Identity
from powertrip.messages import (
    conflict_message,
    decided,
    mention,
    name,
    notification,
    poll_alert_message,
    reminder_digest,
    review_message,
    visible,
)
from powertrip.models import Decision, DecisionKind, EventStatus, RawEvent
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.services.views import EventView
from powertrip.settings import Settings
from tests.harness import (
    WEBHOOK_HEADERS,
    alert,
    eventually,
    make_config,
    make_event,
    message_for,
    papertrail_event,
    running_worker,
    text_of,
)
from tests.servers import SECURITY_CHANNEL

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


# -- Invisible and look-alike characters (issue 10 §5) ------------------------------------------

RLO_ACTOR = "\u202eecila"  # shows as "alice" where bidi overrides are honoured
FORGED_HOST = "bastion\n*Approved by <@U0SEC1>*"
INVISIBLE = [chr(c) for c in (0x202E, 0x202D, 0x2066, 0x200B, 0x200F, 0xFEFF, 0x1B, 0x2028)]


def strings(value: object) -> list[str]:
    """Every string in a Block Kit payload."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def shown(text: str, blocks: list) -> list[str]:
    return [text, *strings([b.to_dict() for b in blocks])]


def assert_nothing_hidden_or_forged(texts: list[str]) -> None:
    for text in texts:
        # Our own layout uses line breaks; nothing else invisible reaches Slack.
        assert all(c == "\n" or c.isprintable() for c in text), repr(text)
        assert not any(line.startswith("*Approved") for line in text.split("\n")), text


def hostile_record() -> EventRecord:
    record = sudo_record()
    event = record.event.model_copy(update={"actor": RLO_ACTOR, "host": FORGED_HOST})
    return record.model_copy(update={"event": event})


def test_a_right_to_left_override_or_a_line_break_in_log_content_is_shown_escaped() -> None:
    record = hostile_record()
    renders = [
        notification(record, MessageKind.FIRST),
        notification(record, MessageKind.REMINDER, waited_seconds=900, in_channel=True),
        decided(record, MessageKind.FIRST),
        reminder_digest([DigestLine(event=record.event, asked="<@U0ALICE>")]),
    ]
    for text, blocks in renders:
        texts = shown(text, blocks)
        assert_nothing_hidden_or_forged(texts)
        joined = "\n".join(texts)
        # What was there is still visible, spelled out, and the name is flagged.
        assert "\\u202eecila" in joined and "(non-ASCII)" in joined
        assert "bastion\\n*Approved by &lt;@U0SEC1&gt;*" in joined
    # A reverse-DNS name is the address owner's to choose: shown the same way.
    ssh = record.model_copy(update={"event": make_event("alice")})
    origin = "\n".join(shown(*notification(ssh, MessageKind.FIRST, origin="vpn\u202eniam")))
    assert "vpn\\u202eniam" in origin


def test_a_look_alike_name_is_flagged_with_its_ascii_spelling() -> None:
    record = sudo_record()
    event = record.event.model_copy(update={"actor": "\u0430lice"})  # Cyrillic a
    conflict = ConflictReport(event_id="e1", recorded=event, arriving=event, arriving_digest="d")
    for text, blocks in (
        notification(record.model_copy(update={"event": event}), MessageKind.FIRST),
        conflict_message(conflict),
    ):
        joined = "\n".join(shown(text, blocks))
        assert "(non-ASCII: `\\u0430lice`)" in joined
    assert name("alice") == "`alice`"


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_message_builder_escapes_invisible_characters(char: str) -> None:
    """Each builder that puts log or provider text into Slack, with one hostile character."""
    hostile = f"x{char}y"
    sample = RawEvent(
        source="json", provider_id="u2", host=hostile, program=hostile, message=hostile
    )
    review = review_message(
        UnrecognisedInput(
            source="json", shape=hostile, sample=sample, hour=datetime(2026, 11, 27, tzinfo=UTC)
        )
    )
    poll = poll_alert_message(
        PollAlert(
            source="papertrail",
            failing_since=datetime(2026, 11, 27, tzinfo=UTC),
            until=datetime(2026, 11, 27, 1, tzinfo=UTC),
            error=f"HTTP 500: {hostile}",
            cursor=hostile,
        )
    )
    record = sudo_record()
    event = record.event.model_copy(
        update={"actor": hostile, "host": hostile, "action": hostile, "details": {"cmd": hostile}}
    )
    approval = Decision(
        kind=DecisionKind.APPROVED, by="U0SEC1", at=event.occurred_at, via="cli", reason=hostile
    )
    decided_record = record.model_copy(
        update={"event": event, "decision": approval, "status": EventStatus.APPROVED}
    )
    conflict = conflict_message(
        ConflictReport(event_id="e1", recorded=event, arriving=event, arriving_digest="d")
    )
    for text, blocks in (
        review,
        notification(record.model_copy(update={"event": event}), MessageKind.FIRST),
        decided(decided_record, MessageKind.FIRST),
        conflict,
    ):
        assert_nothing_hidden_or_forged(shown(text, blocks))
    text, poll_blocks = poll
    assert_nothing_hidden_or_forged([text, *strings(poll_blocks)])
    assert visible(hostile) in "\n".join(strings(poll_blocks))


def test_a_mention_is_only_made_of_a_slack_user_id() -> None:
    assert mention("U0SEC1") == "<@U0SEC1>"
    assert mention("<!channel>") == "`&lt;!channel&gt;`"
    assert mention("U0SEC1> <!here") == "`U0SEC1&gt; &lt;!here`"


async def test_hostile_names_through_the_webhook_reach_slack_escaped(
    served: tuple[httpx.AsyncClient, Settings],
    dev_env: WorkflowEnvironment,
    fake_slack: FakeSlack,
) -> None:
    """The issue's examples, end to end: an RLO actor in the security channel, a provider host
    with a line break in alice's DM."""
    http, settings = served
    rlo = papertrail_event(uuid.uuid4().hex[:12], user=RLO_ACTOR)
    forged = papertrail_event(uuid.uuid4().hex[:12], host=FORGED_HOST)
    async with running_worker(dev_env.client, settings):
        response = await http.post(
            "/webhooks/papertrail", json=alert(rlo, forged), headers=WEBHOOK_HEADERS
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["started", "started"]
        channel = await eventually(lambda: message_for(fake_slack, results[0]["event_id"]))
        dm = await eventually(lambda: message_for(fake_slack, results[1]["event_id"]))
    assert channel.channel == SECURITY_CHANNEL and dm.channel == "D0ALICE"
    for message in (channel, dm):
        assert_nothing_hidden_or_forged([message.text, *strings(message.blocks)])
    assert "\\u202eecila" in text_of(channel) and "(non-ASCII)" in text_of(channel)
    assert "bastion\\n*Approved by" in text_of(dm)


def test_log_content_in_the_cli_table_is_neither_markup_nor_hidden() -> None:
    """The same class outside Slack: a terminal renders rich markup and bidi overrides."""
    fields: dict[str, Any] = {
        "event_id": "papertrail-1",
        "status": EventStatus.PENDING,
        "occurred_at": datetime(2026, 11, 27, tzinfo=UTC),
        "actor": "[link=https://evil.example]alice[/link]",
        "host": RLO_ACTOR,
        "action": "ssh login",
        "decision": None,
        "report": None,
    }
    view = EventView.model_construct(**fields)  # only what the table reads
    console = Console(record=True, width=200)
    console.print(events_table([view]))
    text = console.export_text()
    assert "[link=https://evil.example]alice[/link]" in text
    assert "\\u202eecila" in text and "\u202e" not in text


def test_log_text_in_the_temporal_ui_details_cannot_break_out_of_its_code() -> None:
    """The Web UI renders an event's details (its *User Metadata* tab) as Markdown. The provider
    id (a JSON record's own `id`, which an application's merged log can set) and the log line
    are shown as code: a backtick in them must not end the code and forge `**Approved by …**` or
    a link beside the real facts; a line break must not end the block."""
    from markdown_it import MarkdownIt

    from powertrip.services.starts import details_for

    forged = "**Approved by @alice (U0ALICE) via slack** [proof](https://evil.example)"
    event = sudo_record().event.model_copy(
        update={
            "provider_id": f"x` {forged} `",
            "message": f"alice : USER=root ; COMMAND=/bin/echo\n```\n{forged}\n```\n``",
        }
    )
    html = MarkdownIt("commonmark").render(details_for(event))
    assert "<strong>Approved" not in html and "<a " not in html, html
    # The facts stay readable: the id and the whole line, as code, line breaks as escapes.
    assert html.count("<code>") == 4 and "COMMAND=/bin/echo\\n" in html, html
    assert "evil.example" in html  # shown, as text inside the code


def test_log_text_in_the_temporal_ui_summary_is_text_not_markdown() -> None:
    """The Web UI renders a workflow's summary as (single-line) Markdown. A user, host or action
    read from a log is shown as written, never as emphasis, a link or an image."""
    from markdown_it import MarkdownIt

    from powertrip.services.starts import summary_for

    event = sudo_record().event.model_copy(
        update={
            "actor": "**root**",
            "host": "[bastion](https://evil.example)",
            "action": "sudo ![x](https://evil.example/p.png) <b>x</b> _approved_",
            "address": "2001:db8::7",
        }
    )
    summary = summary_for(event)
    html = MarkdownIt("commonmark").renderInline(summary)
    for forged in ("<strong>", "<a ", "<img", "<b>", "<em>"):
        assert forged not in html, html
    for shown in ("**root**", "[bastion](https://evil.example)", "_approved_", "2001:db8::7"):
        assert shown in html.replace("&lt;", "<").replace("&gt;", ">"), html
    # An ordinary summary reads as before (the README's example, the `temporal` CLI's list).
    plain = sudo_record().event
    assert summary_for(plain) == (
        f"{plain.action} as {plain.actor} on {plain.host} from {plain.address}"
        if plain.address
        else f"{plain.action} as {plain.actor} on {plain.host}"
    )
