"""Block Kit for every message Powertrip posts, built with slack_sdk's block types."""

from __future__ import annotations

from datetime import datetime

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
from powertrip.models import Decision, DecisionKind, SecurityEvent


def humanize(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return " ".join(p for p in parts if p)


def slack_date(when: datetime) -> str:
    """Slack renders this in each reader's own time zone, with a plain fallback."""
    epoch = int(when.timestamp())
    fallback = when.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def _facts(event: SecurityEvent) -> SectionBlock:
    fields = [
        MarkdownTextObject(text=f"*Who*\n`{event.actor}`"),
        MarkdownTextObject(text=f"*Host*\n`{event.host or 'unknown'}`"),
        MarkdownTextObject(text=f"*When*\n{slack_date(event.occurred_at)}"),
        MarkdownTextObject(text=f"*From*\n`{event.address or 'unknown'}`"),
    ]
    return SectionBlock(fields=fields)


def _context(event: SecurityEvent, ui_url: str | None) -> ContextBlock:
    text = f"Source: *{event.source}* · Rule: *{event.rule_title}* (`{event.rule_id}`)"
    if ui_url:
        text += f" · <{ui_url}|Open in Temporal>"
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _buttons(event: SecurityEvent, actions: list[Action]) -> ActionsBlock:
    labels = {
        Action.APPROVE: ("Approve — this was me", "primary", None),
        Action.NOT_ME: (
            "Not me",
            "danger",
            ConfirmObject(
                title="Report as not you?",
                text="The security team is alerted at once.",
                confirm="Yes, not me",
                deny="Cancel",
            ),
        ),
        Action.ACKNOWLEDGE: ("Acknowledge incident", "primary", None),
    }
    elements = []
    for action in actions:
        text, style, confirm = labels[action]
        # The value only names the event; who may decide is never read from it.
        elements.append(
            ButtonElement(
                text=text,
                action_id=action.value,
                value=event.event_id,
                style=style,
                confirm=confirm,
            )
        )
    return ActionsBlock(block_id="decision", elements=elements)


def notification(
    record: EventRecord,
    kind: MessageKind,
    waited_seconds: float = 0.0,
    ui_url: str | None = None,
    note: str | None = None,
) -> tuple[str, list[Block]]:
    """The text fallback and blocks for a first notification, reminder or incident alert."""
    event = record.event
    if kind is MessageKind.INCIDENT:
        assert record.report is not None
        team = " ".join(
            f"<@{u}>" for u in (record.authority.security_team if record.authority else [])
        )
        headline = (
            f":rotating_light: *Reported as NOT ME* by <@{record.report.by}>: {event.action} as "
            f"`{event.actor}` on `{event.host or 'unknown host'}`. {team}".rstrip()
        )
        actions = [Action.ACKNOWLEDGE]
    elif kind is MessageKind.REMINDER:
        headline = (
            f":hourglass: *Still unconfirmed after {humanize(waited_seconds)}*: {event.action} as "
            f"`{event.actor}` on `{event.host or 'unknown host'}`. Asked: {record.asked}."
        )
        actions = [Action.APPROVE, Action.NOT_ME]
        if record.report is not None:
            headline = (
                f":rotating_light: *Incident unacknowledged after {humanize(waited_seconds)}*: "
                f"{event.action} as `{event.actor}` was reported as not me by "
                f"<@{record.report.by}>."
            )
            actions = [Action.ACKNOWLEDGE]
    else:
        headline = (
            f":key: *Was this you?* {event.action} as `{event.actor}` "
            f"on `{event.host or 'unknown host'}`"
        )
        actions = [Action.APPROVE, Action.NOT_ME]
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=headline)), _facts(event)]
    if note:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    blocks += [_context(event, ui_url), _buttons(event, actions)]
    return _plain(headline), blocks


def decided(
    record: EventRecord, kind: MessageKind, ui_url: str | None = None
) -> tuple[str, list[Block]]:
    """The same message after a decision: no buttons left, who decided and when."""
    event = record.event
    lines = [f"{event.action} as `{event.actor}` on `{event.host or 'unknown host'}`"]
    if record.report is not None:
        lines.append(_outcome(record.report))
    if record.decision is not None:
        lines.append(_outcome(record.decision))
    headline = "\n".join(lines)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=headline)),
        _facts(event),
        _context(event, ui_url),
    ]
    return _plain(headline), blocks


def _outcome(decision: Decision) -> str:
    icon, verb = {
        DecisionKind.APPROVED: (":white_check_mark:", "Approved"),
        DecisionKind.REPORTED: (":rotating_light:", "Reported as not me"),
        DecisionKind.ACKNOWLEDGED: (":shield:", "Incident acknowledged"),
    }[decision.kind]
    behalf = " on behalf" if decision.on_behalf else ""
    reason = f" — {decision.reason}" if decision.reason else ""
    return f"{icon} *{verb}{behalf}* by <@{decision.by}> at {slack_date(decision.at)}{reason}"


def _plain(mrkdwn: str) -> str:
    return mrkdwn.replace("*", "").replace("`", "")
