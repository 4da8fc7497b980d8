"""`powertrip events ...`: the record from a terminal, with the same `POWERTRIP_*` settings as the
services. Tables on a terminal, JSON when piped or with `--json`."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from temporalio.client import Client

from powertrip.cli import options
from powertrip.cli.failures import connect_cli
from powertrip.config import ConfigError, load_config
from powertrip.hosts import HostMatch
from powertrip.messages import visible
from powertrip.models import EventStatus
from powertrip.process import exit_now
from powertrip.services.audit import ExportFormat, decisions, write_rows
from powertrip.services.decisions import approve_as_security
from powertrip.services.views import EventView, iter_events, show_event
from powertrip.settings import Settings, SettingsError, load_settings
from powertrip.signing import cli_decision_key, operator
from powertrip.visibility import EventFilter, RecordError
from powertrip.webui import WebUi

app = typer.Typer(help="Inspect, approve and export events.", no_args_is_help=True)
T = TypeVar("T")
P = ParamSpec("P")

JsonOption = Annotated[bool, typer.Option("--json", help="JSON output (the default when piped).")]
EventId = Annotated[str, typer.Argument(callback=options.an_id, help="The event's id.")]


def parse_when(text: str, option: str) -> datetime:
    """`2026-11-27T01:00:00Z`, `2026-11-27` (UTC), or a duration ago: `90m`, `7d`."""
    return options.parse_when(text, datetime.now(UTC), option=option)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"powertrip: {exc}", err=True)
        raise typer.Exit(2) from exc


def _exit_hard_after_temporal(command: Callable[P, None]) -> Callable[P, None]:
    """Leave through `exit_now` once a Temporal client existed in this process. Only for a
    real process: in-process runners (tests) replace sys.stdout."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        code: int | str | None = 0
        try:
            command(*args, **kwargs)
        except (typer.Exit, SystemExit) as exc:
            code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
            if not _connected or sys.stdout is not sys.__stdout__:
                raise
        if _connected and sys.stdout is sys.__stdout__:
            exit_now(code if isinstance(code, int) else 1)

    return wrapper


_connected = False


def _run(settings: Settings, work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        global _connected
        client = await connect_cli(settings)
        _connected = True
        return await work(client)

    try:
        return asyncio.run(main())
    except RecordError as exc:
        typer.echo(f"powertrip: {exc}", err=True)
        raise typer.Exit(1) from exc


def _ui(settings: Settings) -> WebUi:
    return WebUi(base_url=settings.temporal_ui_url, namespace=settings.temporal_namespace)


def _as_json(as_json: bool) -> bool:
    return as_json or not sys.stdout.isatty()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def _decided(view: EventView) -> str:
    decision = view.report if view.report and not view.decision else view.decision
    if decision is None:
        return ""
    how = f" via {decision.via}" if decision.via != "slack" else ""
    if decision.operator:
        how += f" (run by {decision.operator})"
    return f"{decision.kind.value} by {decision.who}{how}"


def _text(value: str | None) -> Text:
    """Log content as it is: never read as rich markup (`[link=…]` in a user name), and
    characters that do not print as themselves shown escaped, as in Slack."""
    return Text(visible(value or ""))


STATUS_STYLE = {
    EventStatus.PENDING: "yellow",
    EventStatus.APPROVED: "green",
    EventStatus.REPORTED: "bold red",
    EventStatus.ACKNOWLEDGED: "magenta",
}


def events_table(views: Sequence[EventView]) -> Table:
    table = Table(title=f"{len(views)} events (UTC)", title_justify="left")
    for column in ("id", "status", "when", "actor", "host", "what", "decided"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(
            v.event_id,
            f"[{STATUS_STYLE[v.status]}]{v.status.value}[/]",
            _when(v.occurred_at),
            _text(v.actor),
            _text(v.host),
            _text(v.action),
            _text(_decided(v)),
        )
    return table


@app.command("list")
@_exit_hard_after_temporal
def list_(
    status: Annotated[
        EventStatus | None, typer.Option(help="pending, approved, reported, ...")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Host; case ignored, short name matches FQDN.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="The unix or cloud user.")] = None,
    rule: Annotated[str | None, typer.Option(help="Rule id.")] = None,
    source: Annotated[str | None, typer.Option(help="Source, e.g. papertrail.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Happened at or after: ISO time or 7d, 90m.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Happened before: ISO time or a duration ago.")
    ] = None,
    host_match: Annotated[
        HostMatch | None, typer.Option(help="short or fqdn (default: settings).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Events, open ones first (newest first), then closed ones (most recently closed first)."""
    settings = _settings()
    filters = EventFilter(
        status=status,
        host=host,
        actor=actor,
        rule=rule,
        source=source,
        since=parse_when(since, "--since") if since else None,
        until=parse_when(until, "--until") if until else None,
        host_match=host_match or settings.host_match,
    )

    async def work(client: Client) -> list[EventView]:
        return [v async for v in iter_events(client, filters, _ui(settings), limit)]

    views = _run(settings, work)
    if _as_json(as_json):
        _print_json([v.model_dump(mode="json") for v in views])
    else:
        Console().print(events_table(views))


@app.command()
@_exit_hard_after_temporal
def show(event_id: EventId, as_json: JsonOption = False) -> None:
    """One event: who was asked, its decision, its timeline and where to look in Temporal."""
    settings = _settings()
    view = _run(settings, lambda client: show_event(client, event_id, _ui(settings)))
    if view is None:
        typer.echo(f"powertrip: no event {event_id!r}", err=True)
        raise typer.Exit(1)
    if _as_json(as_json):
        _print_json(view.model_dump(mode="json"))
        return
    console = Console()
    console.print(f"[bold]{view.event_id}[/]  [{STATUS_STYLE[view.status]}]{view.status.value}[/]")
    facts = Table.grid(padding=(0, 2))
    for name, value in [
        ("what", view.action),
        ("actor", view.actor),
        ("host", view.host or ""),
        ("from", view.address or ""),
        ("when", _when(view.occurred_at) + " UTC"),
        ("rule", f"{view.rule_id} ({view.source})"),
        ("asked", view.asked or "nobody yet"),
        ("decided", _decided(view) or "not yet"),
        ("log line", view.message),
        ("temporal", view.links.history),
    ]:
        facts.add_row(f"[dim]{name}[/]", _text(value))
    console.print(facts)
    timeline = Table(title="timeline (UTC)", title_justify="left")
    for column in ("when", "what", "by", "detail"):
        timeline.add_column(column, overflow="fold")
    for entry in view.timeline:
        timeline.add_row(_when(entry.at), entry.what, _text(entry.who), _text(entry.detail))
    console.print(timeline)


@app.command()
@_exit_hard_after_temporal
def approve(
    event_id: EventId,
    as_user: Annotated[
        str,
        typer.Option(
            "--as",
            callback=options.an_id,
            help="Your Slack user id; must be security team. Recorded beside the operating-"
            "system user and host that ran this command.",
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why you approve for someone else (recorded).")],
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the worker to record it.")
    ] = 10.0,
) -> None:
    """Security-team override: approve a pending event, recorded as via=cli with the reason and
    the operating-system user and host that ran it, signed with POWERTRIP_CLI_DECISION_KEY (which
    can sign nothing but such an override)."""
    settings = _settings()
    try:
        team = load_config(settings.config).security_team
        key = cli_decision_key(settings, "CLI (events approve)")
    except (ConfigError, SettingsError) as exc:
        typer.echo(f"powertrip: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def work(client: Client) -> EventView | None:
        await approve_as_security(
            client, event_id, as_user, reason, team, key=key, operator=operator()
        )
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            view = await show_event(client, event_id, _ui(settings))
            if (view and view.decision) or asyncio.get_running_loop().time() >= deadline:
                return view
            await asyncio.sleep(0.2)

    view = _run(settings, work)
    if view and view.decision:
        typer.echo(f"{event_id}: {_decided(view)} at {_when(view.decision.at)} UTC")
    else:
        typer.echo(f"{event_id}: approval delivered; the worker records it when it next runs")


# An audit export with no start: the last month, said on stderr so nobody mistakes it for all.
EXPORT_DEFAULT_SINCE = "30d"


@app.command()
@_exit_hard_after_temporal
def export(
    since: Annotated[
        str,
        typer.Option(help="Decisions made at or after: ISO time or 7d, 90m (default: 30 days)."),
    ] = EXPORT_DEFAULT_SINCE,
    until: Annotated[str | None, typer.Option(help="Decisions made before this.")] = None,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl or csv.")
    ] = ExportFormat.JSONL,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    """The audit trail: one row per decision, oldest first.

    Each approved, reported or acknowledged decision with who, when, how (slack or cli), why,
    and the event it was about.
    """
    settings = _settings()
    start = parse_when(since, "--since")
    end = parse_when(until, "--until") if until else None
    if output is not None and not output.parent.is_dir():
        raise typer.BadParameter(
            f"cannot write {output}: no folder {output.parent}", param_hint="-o"
        )
    rows = _run(settings, lambda client: decisions(client, start, end, _ui(settings)))
    if output is None:
        count = write_rows(rows, fmt, sys.stdout)
    else:
        with output.open("w", newline="") as out:
            count = write_rows(rows, fmt, out)
    period = f"made since {_when(start)} UTC"
    if since == EXPORT_DEFAULT_SINCE:
        period += " (the last 30 days: --since chooses another start)"
    counted = "1 decision" if count == 1 else f"{count} decisions"
    typer.echo(f"{counted} {period} written to {output or 'stdout'}", err=True)
