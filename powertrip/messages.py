"""Block Kit for every message Powertrip posts, built with slack_sdk's block types, and the text
safety every one of them goes through (`escape`, `code`, `name`, `visible`).

Each builder returns `(text, blocks)`: the plain-text fallback Slack shows in notifications, and
the blocks. The event messages (`notification`, `decided`) are laid out for a phone: one headline
saying what happened, then short two-column facts (who, host, from, when), then one context line
(source, rule, Temporal link), then at most three buttons. The security channel's other
messages: `reminder_digest`, `review_message` / `review_digest_message`, `poll_alert_message`,
`stale_report_message`, `conflict_message`, `passkey_notice`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from powertrip.contracts.approval import Action, EventRecord, MessageKind, decision_block_id
from powertrip.contracts.conflict import ConflictReport
from powertrip.contracts.expectations import (
    Expectation,
    ExpectationNotice,
    ExpectationStatus,
    same_here_refusal,
)
from powertrip.contracts.passkeys import NoticeKind, NoticeState, Refusal, passkey_notice_id
from powertrip.contracts.polling import PollAlert, StaleReport
from powertrip.contracts.reminders import DigestLine
from powertrip.contracts.reviews import DIGEST_LISTED, ReviewDigest, UnrecognisedInput
from powertrip.durations import parse_duration
from powertrip.models import CredentialRef, Decision, DecisionKind, EventStatus, SecurityEvent
from powertrip.webui import WebUi

# Button action ids and what each asks the workflow to do. "Approve on behalf" is an approval
# like any other: the workflow decides who may approve from its own record, never from the button.
BUTTON_ACTIONS: dict[str, Action] = {
    "approve": Action.APPROVE,
    "approve_expect": Action.APPROVE,
    "approve_on_behalf": Action.APPROVE,
    "not_me": Action.REPORT,
    "acknowledge": Action.ACKNOWLEDGE,
}


def action_for(action_id: str) -> Action:
    """The action a button asks for; ValueError for a button Powertrip never posted."""
    try:
        return BUTTON_ACTIONS[action_id]
    except KeyError:
        raise ValueError(f"unknown action {action_id!r}") from None


def humanize(seconds: float) -> str:
    """`seconds` as `2d 3h 4m` (whole minutes; `45s` under a minute)."""
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


# CommonMark's inline syntax: emphasis, code, links, images, autolinks and raw HTML, escapes,
# GFM's strikethrough and tables. A backslash before any of these shows it as itself.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>!~|])")


def markdown_text(text: str) -> str:
    """`text` shown as itself in (single-line) CommonMark, as the Temporal Web UI renders a
    workflow's summary: its inline syntax backslash-escaped, so a user or host from a log is
    never emphasis, a link, an image or HTML; invisible characters and line breaks shown as
    escapes (`visible`). Text without such characters is returned as it is."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", visible(text))


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def markdown_code(text: str) -> str:
    """`text` as one CommonMark code span it cannot end (for the Temporal Web UI, which renders
    details as Markdown): delimited by more backticks than any run inside it, padded with a
    space where it begins or ends with one (CommonMark strips one such space), invisible
    characters and line breaks shown as escapes (`visible`)."""
    shown = visible(text)
    fence = "`" * (_longest_backtick_run(shown) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def markdown_block(text: str) -> str:
    """`text` as a CommonMark fenced code block it cannot close: one line (line breaks and
    invisible characters shown as escapes, `visible`) under a fence longer than any run of
    backticks in it."""
    shown = visible(text)
    fence = "`" * max(3, _longest_backtick_run(shown) + 1)
    return f"{fence}\n{shown}\n{fence}"


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


def _asked(asked: str) -> str:
    """Whom a digest line says was asked: `<@U…>` (a mention, as the approval workflow sends
    it), the security channel, or anything else as inline code, never a ping or a link: the
    line comes from a signal anyone who reaches Temporal can send."""
    if asked.startswith("<@") and asked.endswith(">"):
        return mention(asked[2:-1])
    return asked if asked == "the security channel" else code(asked, 80)


def _where(event: SecurityEvent) -> str:
    return name(event.host) if event.host else "an unknown host"


def _what(event: SecurityEvent) -> str:
    return f"*{escape(event.action)}* as {name(event.actor)} on {_where(event)}"


def _what_of(record: EventRecord) -> str:
    """What a message is about: the event, or for a group's question its burst
    ("alice on ops-1: *20 events of Sudo command* since 10:02")."""
    burst, event = record.burst, record.event
    if burst is None or burst.members < 2 or burst.since is None:
        return _what(event)
    return (
        f"{name(event.actor)} on {_where(event)}: *{burst.members} events of "
        f"{escape(event.rule_title)}* since {slack_date(burst.since)}"
    )


def _burst_list(record: EventRecord) -> SectionBlock | None:
    """A group's latest events, oldest first, and how many more there are."""
    burst = record.burst
    if burst is None or burst.members < 2:
        return None
    lines = [
        f"• {slack_date(m.occurred_at)} {code(m.detail or m.action, 120)}" for m in burst.latest
    ]
    if (more := burst.members - len(burst.latest)) > 0:
        lines.insert(0, f"…and {more} earlier")
    text = "*Latest*\n" + "\n".join(lines) + "\nOne answer decides every one of them."
    return SectionBlock(block_id="burst", text=MarkdownTextObject(text=text))


FROM_LISTED = 3
"""A group's question names at most this many of its members' addresses."""


def _source(event: SecurityEvent, origin: str | None) -> str:
    source = code(event.address) if event.address else "unknown"
    if event.address and event.port is not None:
        source += f" port {event.port}"
    if event.address and origin:
        source += f"\n{escape(origin)}"
    return source


def _burst_sources(record: EventRecord, origin: str | None) -> str:
    """Where a group's events came from: the one address they share (with `origin`, the first
    event's label), or the distinct addresses of its latest events and its first, newest first,
    at most FROM_LISTED, the rest counted. The first event's port is left out: each login of a
    burst has its own."""
    burst, event = record.burst, record.event
    if burst is None or burst.members < 2:
        return _source(event, origin)
    known = [m.address for m in reversed(burst.latest) if m.address]
    if not known:
        # Members recorded without their addresses: say whose address this is.
        return f"{_source(event, origin)}\n(the first event's)"
    addresses = list(dict.fromkeys(known + ([event.address] if event.address else [])))
    if len(addresses) == 1:
        return _source(event.model_copy(update={"port": None}), origin)
    lines = [code(a) for a in addresses[:FROM_LISTED]]
    if (other := len(addresses) - FROM_LISTED) > 0:
        lines.append(f"…and {other} other address{'es' if other > 1 else ''}")
    if burst.members > len(burst.latest):
        lines.append(f"_of the first and the latest {len(burst.latest)} events_")
    return "\n".join(lines)


def _facts(
    event: SecurityEvent, now: datetime, origin: str | None, record: EventRecord | None = None
) -> SectionBlock:
    source = _burst_sources(record, origin) if record is not None else _source(event, origin)
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
_REJECT_PASSKEY_CONFIRM = ConfirmObject(
    title="Reject this passkey?",
    text="It is removed; its owner can register another.",
    confirm="Reject",
    deny="Cancel",
)
_BUTTONS: dict[str, tuple[str, str | None, ConfirmObject | None]] = {
    "approve": ("Approve — this was me", "primary", None),
    # Also creates an expectation (services.expectations.expect_the_same): EXPECT_THE_SAME_FOR.
    "approve_expect": ("Approve, and expect the same from me here for 1 h", None, None),
    "approve_on_behalf": ("Approve on behalf", "primary", None),
    "not_me": ("Not me", "danger", _NOT_ME_CONFIRM),
    "acknowledge": ("Acknowledge incident", "primary", None),
}
# In the channel the readers are the security team: the same *Not me* action, in their words.
_CHANNEL_BUTTONS = {**_BUTTONS, "not_me": ("Report as suspicious", "danger", _SUSPICIOUS_CONFIRM)}


def button_ids(record: EventRecord, kind: MessageKind, in_channel: bool) -> list[str]:
    """Which buttons a message carries: what its readers may do.

    A DM asks its owner (*Approve — this was me*, *Approve, and expect the same from me here
    for 1 h* unless the event needs a step-up or names no host to be "here"
    (`same_here_refusal`), *Not me*). The security channel is read by the
    security team: it offers *Approve on behalf* and a report, never the owner's own approval,
    whether the account has an owner (a reminder about bob's login) or not (a bot). After an
    approval on the owner's behalf, the owner's DM keeps *Not me* for the contest window.
    """
    if kind is MessageKind.REPORT or record.status is EventStatus.REPORTED:
        return ["acknowledge"]
    if record.status is not EventStatus.PENDING:
        contest = record.contest_until is not None and kind is MessageKind.FIRST
        return ["not_me"] if contest and not in_channel else []
    if not in_channel:
        # An owner may not pre-approve what needs a step-up, and "here" cannot mean every
        # host: no "expect the same" on either.
        if record.event.step_up is None and same_here_refusal(record.event) is None:
            return ["approve", "approve_expect", "not_me"]
        return ["approve", "not_me"]
    return ["approve_on_behalf", "not_me"]


def _buttons(record: EventRecord, ids: list[str], in_channel: bool) -> ActionsBlock:
    event = record.event
    elements = []
    for action_id in ids:
        text, style, confirm = (_CHANNEL_BUTTONS if in_channel else _BUTTONS)[action_id]
        # The value is only a reference to the event; who may decide is never read from it.
        elements.append(
            ButtonElement(
                text=text, action_id=action_id, value=event.event_id, style=style, confirm=confirm
            )
        )
    # A group's question says how many events it lists: an approval of fewer than have joined
    # is refused (`EventRecord.shown_refusal`).
    shown = record.burst.members if record.burst is not None else None
    return ActionsBlock(block_id=decision_block_id(shown), elements=elements)


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
    what = _what_of(record)
    if kind is MessageKind.REPORT:
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
        _facts(event, now, origin, record),
    ]
    if listed := _burst_list(record):
        blocks.append(listed)
    elif details := _details(event):
        blocks.append(details)
    if note:
        blocks.append(ContextBlock(block_id="note", elements=[MarkdownTextObject(text=note)]))
    blocks.append(_context(event, ui_url))
    ids = button_ids(record, kind, in_channel)
    if ids:
        blocks.append(_buttons(record, ids, in_channel))
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
    lines = [_what_of(record)]
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
        _facts(event, now or datetime.now(UTC), origin, record),
        *([listed] if (listed := _burst_list(record)) else []),
        *([details] if (details := _details(event)) and not listed else []),
        _context(event, ui_url),
        *([_buttons(record, ids, in_channel)] if ids else []),
    ]
    return _plain(headline), blocks


def reminder_digest(
    items: list[DigestLine], now: datetime | None = None
) -> tuple[str, list[Block]]:
    """One message for many due reminders, so a burst stays under Slack's per-channel limit and
    the channel stays readable. Each line links to the event; the buttons stay on the event's
    own messages."""
    now = now or datetime.now(UTC)
    headline = f":hourglass: *{len(items)} events still need a decision*"
    lines = []
    for item in items[:40]:
        event = item.event
        link = f"<{item.ui_url}|{escape(event.event_id)}>" if item.ui_url else code(event.event_id)
        state = "incident, unacknowledged" if item.incident else f"asked {_asked(item.asked)}"
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


# The security channel's other messages ----------------------------------------------------


def review_message(request: UnrecognisedInput) -> tuple[str, list[Block]]:
    """The security channel's review request: what arrived, from where, and what to do about it."""
    if request.reason:
        return _invalid_message(request)
    sample = request.sample
    where = " ".join(
        part
        for part in (
            f"host {code(sample.host)}" if sample.host else "",
            f"program {code(sample.program)}" if sample.program else "",
        )
        if part
    )
    text = f"Unrecognised {request.source} record needs review" + (f" ({where})" if where else "")
    body = sample.message or json.dumps(sample.fields, sort_keys=True, default=str)
    intro = (
        f"No rule recognised a record from *{request.source}*"
        + (f" ({where})" if where else "")
        + ". It may be a login or privileged action Powertrip cannot see yet."
    )
    advice = "Add a rule (`powertrip rules test` helps) or set `ignore_unmatched` for the source."
    return text, _review_blocks("Unrecognised event: please review", intro, body, request, advice)


def _review_blocks(
    header: str, intro: str, body: str, request: UnrecognisedInput, advice: str
) -> list[Block]:
    """A review request: what happened, the record itself (fenced), and what to do."""
    return [
        HeaderBlock(text=header),
        SectionBlock(text=MarkdownTextObject(text=intro)),
        SectionBlock(text=MarkdownTextObject(text=f"```{_fence_safe(body)[:2900]}```")),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Shape {code(request.shape)} - one request per shape per hour (from "
                    f"{request.hour:%Y-%m-%d %H:00} UTC). {advice}"
                )
            ]
        ),
    ]


def _fence_safe(text: str) -> str:
    """A log line inside a code block: it can neither close the fence nor ping anyone."""
    return escape(text).replace("```", "'''")


def _invalid_message(request: UnrecognisedInput) -> tuple[str, list[Block]]:
    """An invalid record: the sender's data is broken somewhere, and nothing in it was asked."""
    text = f"Invalid {request.source} record needs review"
    intro = (
        f"A record from *{request.source}* could not be read: "
        f"{code(request.reason or '', limit=500)}. Nobody was asked about it; if it was a login "
        "or privileged action, its owner has not confirmed it."
    )
    advice = "Fix the sender, or map its field names (`sources.<name>.fields`)."
    body = request.sample.message or "(empty)"
    return text, _review_blocks("Invalid record: please review", intro, body, request, advice)


def review_digest_message(digest: ReviewDigest) -> tuple[str, list[Block]]:
    """One message for the shapes a source sent beyond what it may post on its own this hour."""
    text = (
        f"{digest.total} more unrecognised {digest.source} record shapes need review "
        f"(hour from {digest.hour:%Y-%m-%d %H:00} UTC)"
    )
    lines = []
    for request in digest.requests[:DIGEST_LISTED]:
        sample = request.sample
        what = request.reason or sample.message or json.dumps(sample.fields, default=str)
        where = f" on {code(sample.host, limit=60)}" if sample.host else ""
        lines.append(f"• {code(request.shape, limit=160)}{where}: {code(what, limit=160)}")
    more = digest.total - len(lines)
    if more > 0:
        lines.append(f"… and {more} more (`powertrip_events_total` counts every record)")
    blocks: list[Block] = [
        HeaderBlock(text=f"Unrecognised {digest.source} records: digest"[:150]),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{digest.total}* more record shapes from *{escape(digest.source)}* that "
                "no rule recognises (or that could not be read) arrived this hour. The first "
                "ones were posted on their own; these are listed here instead of one post each."
            )
        ),
    ]
    # One section a shape: Slack caps a section at 3,000 characters and a message at 50 blocks.
    blocks.extend(SectionBlock(text=MarkdownTextObject(text=line)) for line in lines)
    return text, blocks


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def poll_alert_message(alert: PollAlert) -> tuple[str, list[dict[str, Any]]]:
    """Polling a source fails (or, `recovered`, works again)."""
    since = alert.failing_since.strftime("%Y-%m-%d %H:%M UTC")
    lasted = _minutes(alert.until - alert.failing_since)
    if alert.recovered:
        text = f"Polling {alert.source} works again after {lasted} of failures."
        detail = "Nothing was lost: the poll continued from the last event it had processed."
    else:
        text = f":warning: Polling {alert.source} has failed since {since} ({lasted})."
        detail = (
            f"Last error: {code(alert.error or 'unknown')}. Powertrip keeps retrying and will say "
            "so here once it "
            "recovers; events are picked up from the last processed one"
            + (f" (cursor {code(alert.cursor)})" if alert.cursor else "")
            + ", so none are skipped. Webhooks are not affected."
        )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*{text}*")),
        ContextBlock(elements=[MarkdownTextObject(text=detail)]),
    ]
    return text, [b.to_dict() for b in blocks]


def stale_report_message(digest: StaleReport, ui: WebUi | None) -> tuple[str, list[dict[str, Any]]]:
    """Old events a backfill or poll found, started without a DM: each with its Web UI link."""
    days = digest.stale_after_seconds / 86400
    age = f"{days:g} days" if days >= 1 else f"{digest.stale_after_seconds / 3600:g} hours"
    text = (
        f"{digest.total} old event{'s' if digest.total != 1 else ''} found by {digest.found_by} "
        f"(older than {age}): recorded as pending, nobody was DM'd."
    )
    lines = []
    for event in digest.events:
        when = event.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
        name = f"`{event.event_id}`"
        if ui is not None:
            name = f"<{ui.workflow_url(event.event_id)}|{event.event_id}>"
        lines.append(f"• {when} {escape(event.summary)} ({name})")
    if digest.total > len(digest.events):
        lines.append(f"…and {digest.total - len(digest.events)} more.")
    blocks: list[Block] = [
        HeaderBlock(text=f"Backfill: {digest.total} stale event{'s' if digest.total != 1 else ''}"),
        SectionBlock(text=MarkdownTextObject(text=text)),
    ]
    section: list[str] = []
    for line in lines:
        # Slack limits a section to 3,000 characters and a message to 50 blocks.
        if sum(len(x) + 1 for x in section) + len(line) > 2900:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(section))))
            section = []
        section.append(line)
        if len(blocks) >= 46:
            break
    if section and len(blocks) < 47:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(section))))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Review them, then approve with "
                    "`powertrip events approve ID --as YOU --reason ...`; "
                    'in the Temporal UI: `PowertripStatus="pending"`.'
                )
            ]
        )
    )
    return text, [b.to_dict() for b in blocks]


CONFLICT_LINE_SHOWN = 1200


def _conflict_fenced(text: str) -> str:
    clipped = text if len(text) <= CONFLICT_LINE_SHOWN else text[: CONFLICT_LINE_SHOWN - 1] + "…"
    return "```" + escape(clipped).replace("```", "'''") + "```"


def _conflict_facts(event: SecurityEvent) -> str:
    origin = f" from {code(event.address)}" if event.address else ""
    return (
        f"{code(event.action)} as {name(event.actor)} on {name(event.host or '?')}{origin} at "
        f"{event.occurred_at.isoformat()}"
    )


def conflict_message(report: ConflictReport) -> tuple[str, list[Block]]:
    """A delivery arrived again under a known id with other content: both versions, and what to
    check."""
    raw, first = report.arriving, report.recorded
    text = f"Conflicting delivery for {report.event_id}: same id, different content"
    recorded = _conflict_facts(first) if first else "(unknown)"
    blocks: list[Block] = [
        HeaderBlock(text="Same event id, different content"),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{escape(raw.source)}* delivered id {code(raw.provider_id)} again with "
                f"content that differs from what event {code(report.event_id)} recorded. It was "
                "*not* started. Either the provider reused an id, or someone posted a record "
                "under an id they expected, ahead of the real one: check the provider's log "
                "for the real record."
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=f"*Recorded first:* {recorded}")),
        SectionBlock(text=MarkdownTextObject(text=f"*Arriving now:* {_conflict_facts(raw)}")),
        SectionBlock(text=MarkdownTextObject(text=_conflict_fenced(raw.message or "(no message)"))),
        ContextBlock(
            elements=[MarkdownTextObject(text=f"content digest {code(report.arriving_digest)}")]
        ),
    ]
    return text, blocks


# Passkeys (step-up approvals) -------------------------------------------------------------

PASSKEY_BUTTONS: dict[str, bool] = {"passkey_approve": True, "passkey_reject": False}
"""The buttons of a pending passkey's notice: action id -> approve? Their value is the notice's
id; who may press them comes from the notice's own memo, never from the button."""


def _passkey_name(credential: CredentialRef | None) -> str:
    if credential is None:
        return "a passkey"
    return f"“{escape(credential.label)}” ({code(credential.credential_id[:16])})"


_ALERTS = {
    Refusal.SIGN_COUNT_REGRESSED: "its authenticator's use counter went backwards, which a "
    "copied (cloned) authenticator does",
    Refusal.CREDENTIAL_NOT_REGISTERED: "someone answered a one-time link sent to them with a "
    "passkey that is not theirs: whoever holds their Slack session tried to approve",
}


def passkey_notice(state: NoticeState) -> tuple[str, list[Block]]:
    """The security channel's message about a passkey: a first one (announced), another one
    (waiting for a security-team member: *Approve passkey* / *Reject*, then who decided), or an
    alert about a refused step-up."""
    notice = state.notice
    who = mention(notice.user)
    passkey = _passkey_name(notice.credential)
    buttons: list[str] = []
    if notice.kind is NoticeKind.FIRST:
        headline = (
            f":key: *New passkey* {who} registered their first passkey {passkey}. It works at "
            "once (there was nothing to step up with). If it was not them, their Slack session "
            "is in someone else's hands: act at once."
        )
    elif notice.kind is NoticeKind.PENDING:
        replacing = f", replacing {code(notice.replaces[:16])}" if notice.replaces else ""
        headline = (
            f":key: *Passkey waiting for approval* {who} registered another passkey {passkey}"
            f"{replacing}. It approves nothing until a security-team member approves it: check "
            f"with {who} in person or on a call first (a stolen Slack session can register one)."
        )
        decided = state.decided
        if decided is None:
            buttons = list(PASSKEY_BUTTONS)
        elif decided.approved:
            stepped = (
                f" with their passkey {_passkey_name(decided.with_credential)}"
                if decided.with_credential
                else " (they have no passkey: no step-up)"
            )
            headline += (
                f"\n:white_check_mark: *Approved* by {mention(decided.by)}{stepped} at "
                f"{slack_date(decided.at)}"
            )
        else:
            when = slack_date(decided.at)
            headline += f"\n:no_entry: *Rejected* by {mention(decided.by)} at {when}"
    else:
        refusal = notice.refusal or Refusal.CREDENTIAL_NOT_REGISTERED
        why = _ALERTS.get(refusal, escape(refusal.value))
        event = f" Event {code(notice.event_id)}." if notice.event_id else ""
        headline = (
            f":rotating_light: *Passkey alert* for {who}: {why}. Nothing was approved.{event}"
        )
        if notice.credential is not None:
            headline += f"\nPasskey: {passkey}."
    blocks: list[Block] = [
        SectionBlock(block_id="headline", text=MarkdownTextObject(text=headline))
    ]
    if buttons:
        value = passkey_notice_id(notice)
        blocks.append(
            ActionsBlock(
                block_id="passkey",
                elements=[
                    ButtonElement(
                        text="Approve passkey",
                        action_id="passkey_approve",
                        value=value,
                        style="primary",
                    ),
                    ButtonElement(
                        text="Reject",
                        action_id="passkey_reject",
                        value=value,
                        style="danger",
                        confirm=_REJECT_PASSKEY_CONFIRM,
                    ),
                ],
            )
        )
    return _plain(headline), blocks


def registration_reply(url: str, expires_at: datetime, passkeys: int) -> str:
    """`/powertrip passkey`'s ephemeral answer: the one-time registration link and what happens
    to the new passkey (`passkeys`: how many the person has already)."""
    if passkeys == 0:
        rule = "Your first passkey works at once, and the security team is told."
    else:
        rule = (
            f"You have {passkeys} passkey{'s' if passkeys != 1 else ''}: a new one works once a "
            "security-team member approves it."
        )
    until = expires_at.astimezone(UTC).strftime("%H:%M UTC")
    return (
        f":key: <{url}|Register a passkey> (Touch ID, Windows Hello, a security key): a one-time "
        f"link for you alone, valid until {until}. {rule} Powertrip asks for it before approving "
        "sensitive events, so a stolen laptop or Slack session cannot approve them."
    )


def _scope(e: Expectation) -> str:
    """Where and for which rules `e` pre-approves, e.g. ` on `ci-1` (`sudo-command`)`. A scope
    left open is said, not left out: "any host" is what the team must notice."""
    where = f" on {', '.join(map(code, e.hosts))}" if e.hosts else " on *any host*"
    return where + (f" ({', '.join(map(code, e.rules))})" if e.rules else " (*any rule*)")


def expectation_notice(notice: ExpectationNotice) -> tuple[str, list[Block]]:
    """The security channel's one message about an expectation: who expects whom to act, where,
    until when and why; the events it approved so far (the latest listed, the rest counted);
    and, once it ended, whether it expired or was revoked. Approvals by an expectation are
    never silent: this message is updated in place as they happen."""
    e = notice.expectation
    state = {
        ExpectationStatus.ACTIVE: f"until {slack_date(e.until)}",
        ExpectationStatus.EXPIRED: f"expired {slack_date(e.until)}",
        ExpectationStatus.REVOKED: f"revoked by {mention(e.revoked_by or '?')}",
    }[e.status]
    headline = (
        f":calendar: *Expected work* {mention(e.created_by)} pre-approved {name(e.actor)}"
        f"{_scope(e)}, {state}: {escape(e.reason)}"
    )
    lines = [
        f"• {escape(item.action)} on {code(item.host or 'no host')} at {slack_date(item.at)} · "
        f"{code(item.event_id)}"
        for item in notice.approved
    ]
    if notice.total > len(notice.approved):
        lines.insert(0, f"…and {notice.total - len(notice.approved)} earlier.")
    approved = (
        f"*{notice.total} event{'s' if notice.total != 1 else ''} approved by it, nobody "
        f"asked:*\n" + "\n".join(lines)
        if notice.total
        else "No event approved by it yet."
    )
    blocks: list[Block] = [
        SectionBlock(block_id="headline", text=MarkdownTextObject(text=headline[:2900])),
        SectionBlock(block_id="approved", text=MarkdownTextObject(text=approved[:2900])),
        ContextBlock(
            block_id="context",
            elements=[MarkdownTextObject(text=f"{code(e.id)} · via {escape(e.via)}")],
        ),
    ]
    return _plain(headline), blocks


# The /powertrip slash command ---------------------------------------------------------------

EXPECT_FOR_DEFAULT = "1h"


class ModalError(ValueError):
    """A modal field Slack should mark (`block`: its block id) with the message."""

    def __init__(self, block: str, message: str) -> None:
        super().__init__(message)
        self.block = block


@dataclass(frozen=True)
class ExpectFields:
    """What the `/powertrip expect` modal asks."""

    actor: str
    hosts: list[str]
    rules: list[str]
    lasts: timedelta
    reason: str


def _input(
    block_id: str, label: str, placeholder: str, initial: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "placeholder": {"type": "plain_text", "text": placeholder},
    }
    if initial:
        element["initial_value"] = initial
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
        "optional": block_id in ("hosts", "rules"),  # Slack adds "(optional)" to the label
    }


def expect_modal(actor: str | None = None) -> dict[str, Any]:
    """The `/powertrip expect` modal (Block Kit view, `callback_id` `powertrip_expect`): the
    account, optional hosts and rule ids, how long, why; `actor` pre-fills the account."""
    return {
        "type": "modal",
        "callback_id": "powertrip_expect",
        "title": {"type": "plain_text", "text": "Expect my work"},
        "submit": {"type": "plain_text", "text": "Pre-approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Events of this account that match are approved *on the record* "
                    "without asking you; the security channel sees each one.",
                },
            },
            _input("actor", "Account", "alice (as the events name it)", actor),
            _input("hosts", "Hosts (comma-separated; none: any host)", "ops-1, ops-2"),
            _input("rules", "Rule ids (comma-separated; none: any rule)", "sudo-command"),
            _input("for", "For how long", "1h, 90m", EXPECT_FOR_DEFAULT),
            _input("reason", "Why", "nginx upgrade, CHG-42"),
        ],
    }


def expect_fields(values: dict[str, Any]) -> ExpectFields:
    """The submitted modal's `view.state.values`; ModalError naming the field that is wrong."""

    def value(block: str) -> str:
        return str((values.get(block, {}).get("value") or {}).get("value") or "").strip()

    actor, reason = value("actor"), value("reason")
    if not actor:
        raise ModalError("actor", "Name the account, as the events name it.")
    if not reason:
        raise ModalError("reason", "Say why: the expectation is recorded with it.")
    try:
        lasts = parse_duration(value("for") or EXPECT_FOR_DEFAULT)
    except ValueError as exc:
        raise ModalError("for", str(exc)[:150]) from exc
    hosts, rules = _names(value("hosts"), "hosts"), _names(value("rules"), "rules")
    return ExpectFields(actor=actor, hosts=hosts, rules=rules, lasts=lasts, reason=reason)


def _names(text: str, block: str) -> list[str]:
    """A comma-separated field's names (a stray comma is no name). Left empty it means "any";
    typed into but naming nothing (`,`) it is refused (ModalError), not taken for "any"."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if text and not names:
        raise ModalError(block, "Give names separated by commas, or leave it empty for any.")
    return names


def pending_list(records: list[EventRecord], user: str, listed: int = 20) -> str:
    """`/powertrip pending`'s answer to `user`: the events waiting for them, newest first."""
    if not records:
        return ":white_check_mark: Nothing waits for your decision."
    lines = [f"*{len(records)} event{'s' if len(records) != 1 else ''} wait for a decision:*"]
    for record in records[:listed]:
        event = record.event
        state = (
            ":rotating_light: *Not me*, unacknowledged"
            if record.status is EventStatus.REPORTED
            else f"asked {record.asked}"
        )
        lines.append(
            f"• {escape(event.action)} as {name(event.actor)} on {_where(event)} — {state} · "
            f"{code(event.event_id)}"
        )
    if len(records) > listed:
        lines.append(f"…and {len(records) - listed} more.")
    return "\n".join(lines)


# The App Home ---------------------------------------------------------------------------------

REVOKE_EXPECTATION = "revoke_expectation"
"""`action_id` of an App Home's *Revoke* button (its value: the expectation id)."""


def app_home(
    waiting: list[EventRecord], expectations: list[Expectation], on_team: bool
) -> dict[str, Any]:
    """A user's App Home tab (`views.publish`): the questions waiting for them (for the security
    team: every pending event and open *Not me* report), and the active expectations they may
    revoke (for the team: everyone's), each with a *Revoke* button."""
    mine = "Waiting for the security team" if on_team else "Waiting for you"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": mine}},
        {
            "type": "section",
            "block_id": "waiting",
            "text": {"type": "mrkdwn", "text": pending_list(waiting, "")[:2900]},
        },
        {"type": "divider"},
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": "Active expectations" if on_team else "Your active expectations",
            },
        },
    ]
    if not expectations:
        blocks.append(
            {
                "type": "section",
                "block_id": "no_expectations",
                "text": {
                    "type": "mrkdwn",
                    "text": "None. Type `/powertrip expect` to pre-approve work you are about "
                    "to do.",
                },
            }
        )
    for e in expectations[:40]:
        blocks.append(
            {
                "type": "section",
                "block_id": f"expectation-{e.id}"[:255],
                "text": {
                    "type": "mrkdwn",
                    "text": f"{name(e.actor)}{_scope(e)} until {slack_date(e.until)}, by "
                    f"{mention(e.created_by)}: {escape(e.reason)} · {code(e.id)}"[:2900],
                },
                "accessory": {
                    "type": "button",
                    "action_id": REVOKE_EXPECTATION,
                    "value": e.id,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Revoke"},
                },
            }
        )
    return {"type": "home", "blocks": blocks}
