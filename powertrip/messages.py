"""Block Kit for every message Powertrip posts, built with slack_sdk's block types.

Laid out for a phone: one headline saying what happened, then short two-column facts (who, host,
from, when), then one context line (source, rule, Temporal link), then at most three buttons.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from powertrip.approvals import Action, EventRecord, MessageKind
from powertrip.models import Decision, DecisionKind, EventStatus, SecurityEvent

# Button action ids and what each asks the workflow to do. "Approve on behalf" is an approval
# like any other: the workflow decides who may approve from its own record, never from the button.
BUTTON_ACTIONS: dict[str, Action] = {
    "approve": Action.APPROVE,
    "approve_on_behalf": Action.APPROVE,
    "not_me": Action.NOT_ME,
    "acknowledge": Action.ACKNOWLEDGE,
}


def action_for(action_id: str) -> Action:
    """The action a button asks for; ValueError for a button Powertrip never posted."""
    try:
        return BUTTON_ACTIONS[action_id]
    except KeyError:
        raise ValueError(f"unknown action {action_id!r}") from None


def humanize(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return " ".join(p for p in parts if p)


def ago(when: datetime, now: datetime) -> str:
    """`12 min ago`, the fallback Slack shows if it cannot render `{ago}` itself."""
    seconds = (now - when).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    return f"{humanize(seconds)} ago"


def slack_date(when: datetime) -> str:
    """Slack renders this in each reader's own time zone, with a plain fallback."""
    epoch = int(when.timestamp())
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def slack_ago(when: datetime, now: datetime) -> str:
    """Kept current by Slack (`{ago}`), so a message read an hour later still says the truth."""
    return f"<!date^{int(when.timestamp())}^{{ago}}|{ago(when, now)}>"


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _codepoint(char: str) -> str:
    return _SHORT_ESCAPES.get(char) or char.encode("unicode_escape").decode("ascii")


def visible(text: str) -> str:
    """Every character that does not print as itself, shown as its escape (`\n`, `\u202e`).

    Python's `str.isprintable` is the test: control characters (a line break that would end a
    code span and start a forged line), format characters (bidi overrides such as U+202E that
    make `\u202eecila` read `alice`, zero-width joiners and spaces), line and paragraph
    separators, spaces other than U+0020, private-use and unassigned code points."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _codepoint(c) for c in text)


def escape(text: str) -> str:
    """Text from logs (user names, commands, PTR records) must never become a mention, a
    channel ping or a link, nor hide or forge what the reader sees: Slack reads `<...>` as
    control sequences, so escape as Slack asks, and show invisible characters (`visible`)."""
    return visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str, limit: int = 300) -> str:
    """Inline code that the text cannot break out of."""
    clipped = text if len(text) <= limit else text[: limit - 1] + "…"
    safe = escape(clipped).replace("`", "'")
    return f"`{safe}`"


def name(text: str) -> str:
    """A user or host name as inline code; a name with non-ASCII characters is flagged with its
    ASCII spelling, so `\u0430lice` (a Cyrillic a) is never read as `alice`."""
    if text.isascii():
        return code(text)
    spelled = text.encode("ascii", "backslashreplace").decode("ascii")
    if spelled == visible(text):  # only invisible characters, already shown escaped
        return f"{code(text)} (non-ASCII)"
    return f"{code(text)} (non-ASCII: {code(spelled)})"


_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def mention(user: str) -> str:
    """A Slack user id as a mention (Slack shows the name); anything else only as text."""
    return f"<@{user}>" if _SLACK_ID.match(user) else code(user)


def _where(event: SecurityEvent) -> str:
    return name(event.host) if event.host else "an unknown host"


def _what(event: SecurityEvent) -> str:
    return f"*{escape(event.action)}* as {name(event.actor)} on {_where(event)}"


def _facts(event: SecurityEvent, now: datetime, origin: str | None) -> SectionBlock:
    source = code(event.address) if event.address else "unknown"
    if event.address and event.port is not None:
        source += f" port {event.port}"
    if event.address and origin:
        source += f"\n{escape(origin)}"
    fields = [
        MarkdownTextObject(text=f"*Who*\n{name(event.actor)}"),
        MarkdownTextObject(text=f"*Host*\n{_where(event)}"),
        MarkdownTextObject(text=f"*From*\n{source}"),
        MarkdownTextObject(
            text=f"*When*\n{slack_date(event.occurred_at)}\n{slack_ago(event.occurred_at, now)}"
        ),
    ]
    return SectionBlock(block_id="facts", fields=fields)


def _details(event: SecurityEvent) -> SectionBlock | None:
    """What the rule extracted beyond who/where/from: the sudo command, the key fingerprint."""
    if not event.details:
        return None
    lines = [
        f"*{escape(name.capitalize())}*: {code(value)}" for name, value in event.details.items()
    ]
    # One line on a phone when the values are short (ssh key details); a long one (a sudo
    # command) gets lines of its own.
    joiner = " · " if sum(len(v) for v in event.details.values()) <= 80 else "\n"
    return SectionBlock(block_id="details", text=MarkdownTextObject(text=joiner.join(lines)))


def _context(event: SecurityEvent, ui_url: str | None) -> ContextBlock:
    text = (
        f"Source *{escape(event.source)}* · Rule *{escape(event.rule_title)}* "
        f"({code(event.rule_id)})"
    )
    if ui_url:
        text += f" · <{ui_url}|Open in Temporal>"
    return ContextBlock(block_id="context", elements=[MarkdownTextObject(text=text)])


_NOT_ME_CONFIRM = ConfirmObject(
    title="Report as not you?",
    text="The security team is alerted at once and the event becomes an incident.",
    confirm="Yes, not me",
    deny="Cancel",
)
_SUSPICIOUS_CONFIRM = ConfirmObject(
    title="Report as suspicious?",
    text="The event becomes an incident for the security team.",
    confirm="Yes, report it",
    deny="Cancel",
)
_BUTTONS: dict[str, tuple[str, str | None, ConfirmObject | None]] = {
    "approve": ("Approve — this was me", "primary", None),
    "approve_on_behalf": ("Approve on behalf", "primary", None),
    "not_me": ("Not me", "danger", _NOT_ME_CONFIRM),
    "acknowledge": ("Acknowledge incident", "primary", None),
}
# In the channel the readers are the security team: the same *Not me* action, in their words.
_CHANNEL_BUTTONS = {**_BUTTONS, "not_me": ("Report as suspicious", "danger", _SUSPICIOUS_CONFIRM)}


def button_ids(record: EventRecord, kind: MessageKind, in_channel: bool) -> list[str]:
    """Which buttons a message carries: what its readers may do.

    A DM asks its owner (*Approve — this was me*, *Not me*). The security channel is read by the
    security team: it offers *Approve on behalf* and a report, never the owner's own approval,
    whether the account has an owner (a reminder about bob's login) or not (a bot). After an
    approval on the owner's behalf, the owner's DM keeps *Not me* for the contest window.
    """
    if kind is MessageKind.INCIDENT or record.status is EventStatus.REPORTED:
        return ["acknowledge"]
    if record.status is not EventStatus.PENDING:
        contest = record.contest_until is not None and kind is MessageKind.FIRST
        return ["not_me"] if contest and not in_channel else []
    if not in_channel:
        return ["approve", "not_me"]
    return ["approve_on_behalf", "not_me"]


def _buttons(event: SecurityEvent, ids: list[str], in_channel: bool) -> ActionsBlock:
    elements = []
    for action_id in ids:
        text, style, confirm = (_CHANNEL_BUTTONS if in_channel else _BUTTONS)[action_id]
        # The value is only a reference to the event; who may decide is never read from it.
        elements.append(
            ButtonElement(
                text=text, action_id=action_id, value=event.event_id, style=style, confirm=confirm
            )
        )
    return ActionsBlock(block_id="decision", elements=elements)


def notification(
    record: EventRecord,
    kind: MessageKind,
    waited_seconds: float = 0.0,
    ui_url: str | None = None,
    note: str | None = None,
    *,
    in_channel: bool = False,
    origin: str | None = None,
    now: datetime | None = None,
) -> tuple[str, list[Block]]:
    """The text fallback and blocks for a first notification, reminder or incident alert."""
    event = record.event
    now = now or datetime.now(UTC)
    what = _what(event)
    if kind is MessageKind.INCIDENT:
        assert record.report is not None
        team = " ".join(
            mention(u) for u in (record.authority.security_team if record.authority else [])
        )
        contested = ""
        if record.contested is not None:
            contested = (
                f"It had been approved on their behalf by {mention(record.contested.by)}: that "
                "approval no longer stands.\n"
            )
        headline = (
            f":rotating_light: *Reported as NOT ME* by {mention(record.report.by)}\n{what}\n"
            + contested
            + (f"{team}: please investigate and acknowledge." if team else "Please investigate.")
        )
    elif kind is MessageKind.REMINDER and record.report is not None:
        headline = (
            f":rotating_light: *Incident unacknowledged after {humanize(waited_seconds)}*\n"
            f"{what} was reported as not me by {mention(record.report.by)}."
        )
    elif kind is MessageKind.REMINDER:
        headline = (
            f":hourglass: *Still unconfirmed after {humanize(waited_seconds)}*\n{what}\n"
            f"Asked: {record.asked}."
        )
    elif in_channel:
        headline = f":key: *Needs a decision*\n{what}"
    else:
        headline = f":key: *Was this you?*\n{what}"
    blocks: list[Block] = [
        SectionBlock(block_id="headline", text=MarkdownTextObject(text=headline)),
        _facts(event, now, origin),
    ]
    if details := _details(event):
        blocks.append(details)
    if note:
        blocks.append(ContextBlock(block_id="note", elements=[MarkdownTextObject(text=note)]))
    blocks.append(_context(event, ui_url))
    ids = button_ids(record, kind, in_channel)
    if ids:
        blocks.append(_buttons(event, ids, in_channel))
    return _plain(headline), blocks


def decided(
    record: EventRecord,
    kind: MessageKind,
    ui_url: str | None = None,
    *,
    in_channel: bool = False,
    origin: str | None = None,
    now: datetime | None = None,
) -> tuple[str, list[Block]]:
    """The same message after a decision: who decided and when. No buttons left, except the
    owner's *Not me* in their DM while they may still contest an approval on their behalf."""
    event = record.event
    lines = [_what(event)]
    for decision in (record.contested, record.report, record.decision):
        if decision is not None:
            lines.append(_outcome(decision))
    ids = button_ids(record, kind, in_channel) if record.status is EventStatus.APPROVED else []
    if ids and record.contest_until is not None:
        lines.append(
            f"Not you? Press *Not me* before {slack_date(record.contest_until)}: the security "
            "team is alerted at once."
        )
    headline = "\n".join(lines)
    blocks: list[Block] = [
        SectionBlock(block_id="headline", text=MarkdownTextObject(text=headline)),
        _facts(event, now or datetime.now(UTC), origin),
        *([details] if (details := _details(event)) else []),
        _context(event, ui_url),
        *([_buttons(event, ids, in_channel)] if ids else []),
    ]
    return _plain(headline), blocks


class DigestLine(BaseModel):
    """One pending event in a reminder digest."""

    event: SecurityEvent
    asked: str
    incident: bool = False
    waited_seconds: float = 0.0
    ui_url: str | None = None


def digest(items: list[DigestLine], now: datetime | None = None) -> tuple[str, list[Block]]:
    """One message for many due reminders, so a burst stays under Slack's per-channel limit and
    the channel stays readable. Each line links to the event; the buttons stay on the event's
    own messages."""
    now = now or datetime.now(UTC)
    headline = f":hourglass: *{len(items)} events still need a decision*"
    lines = []
    for item in items[:40]:
        event = item.event
        link = f"<{item.ui_url}|{event.event_id}>" if item.ui_url else f"`{event.event_id}`"
        state = "incident, unacknowledged" if item.incident else f"asked {item.asked}"
        lines.append(
            f"• {escape(event.action)} as {name(event.actor)} on {_where(event)} — waited "
            f"{humanize(item.waited_seconds)}, {state} · {link}"
        )
    if len(items) > 40:
        lines.append(f"…and {len(items) - 40} more.")
    blocks: list[Block] = [
        SectionBlock(block_id="headline", text=MarkdownTextObject(text=headline)),
        SectionBlock(block_id="list", text=MarkdownTextObject(text="\n".join(lines)[:2900])),
        ContextBlock(
            block_id="context",
            elements=[
                MarkdownTextObject(
                    text=f"Reminder digest at {slack_date(now)} · decide on each event's own "
                    "message or DM"
                )
            ],
        ),
    ]
    return _plain(headline), blocks


def _outcome(decision: Decision) -> str:
    icon, verb = {
        DecisionKind.APPROVED: (":white_check_mark:", "Approved"),
        DecisionKind.REPORTED: (":rotating_light:", "Reported as not me"),
        DecisionKind.ACKNOWLEDGED: (":shield:", "Incident acknowledged"),
    }[decision.kind]
    behalf = " on behalf" if decision.on_behalf else ""
    how = f" via the CLI ({code(decision.operator)})" if decision.operator else ""
    reason = f" — {escape(decision.reason)}" if decision.reason else ""
    return (
        f"{icon} *{verb}{behalf}* by {mention(decision.by)}{how} at {slack_date(decision.at)}"
        f"{reason}"
    )


def _plain(mrkdwn: str) -> str:
    return mrkdwn.replace("*", "").replace("`", "").replace("\n", " · ")
