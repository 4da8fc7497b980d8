"""`powertrip rules ...`: develop rules against real lines, and see the built-in packs."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from powertrip import jsontext
from powertrip.config import (
    ConfigError,
    PowertripConfig,
    available_rule_packs,
    config_from_mapping,
    load_config,
    rule_pack,
)
from powertrip.models import RawEvent, SecurityEvent
from powertrip.rules import Rule
from powertrip.settings import SettingsError, load_settings
from powertrip.sources import describe_validation_error
from powertrip.sources.cloudtrail import is_cloudtrail_document, is_cloudtrail_record
from powertrip.sources.eventbridge import is_eventbridge_event, parse_eventbridge
from powertrip.sources.files import (
    InputFormat,
    InputLines,
    UnreadableInput,
    detect_format,
    json_items,
    open_input,
    records,
    sse_bookkeeping,
    sse_data,
)
from powertrip.sources.syslog import event_from_text, logical_lines, parse_syslog

app = typer.Typer(help="Develop rules and see the built-in packs.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _config(config: Path | None, packs: list[str]) -> PowertripConfig:
    """`--pack` alone, else `--config`, else the services' config (POWERTRIP_CONFIG), else the
    default packs: the same loading, validation and errors as the services."""
    try:
        if packs:
            return config_from_mapping({"rule_packs": packs}, Path.cwd(), "--pack")
        if config is None:
            try:
                config = load_settings().config
            except SettingsError:
                config = None  # no service settings here: the default packs
        return load_config(config)
    except ConfigError as exc:
        errors.print(f"[red]config error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _records(
    line: str, number: int, source: str, host: str | None, program: str | None
) -> list[RawEvent | str]:
    """The raw events in one input line (a JSON value: an event of any shipper, an EventBridge
    event, a CloudTrail record or file, a Wazuh alert...; a syslog line; a bare message), or the
    reason it cannot be one."""
    line = sse_data(line)  # systemd-journal-gatewayd's server-sent events: `data: {...}`
    if line.lstrip().startswith(("{", "[")) and parse_syslog(line) is None:
        try:
            payload = jsontext.loads(line)
        except jsontext.JsonError as exc:
            return [f"not valid JSON: {exc}"]
        return _json_records(payload)
    try:
        raw = event_from_text(line, source, f"line-{number}", program=program)
    except ValidationError as exc:
        return [describe_validation_error(exc)]
    return [raw.model_copy(update={"host": host}) if host and raw.host is None else raw]


def _json_records(payload: Any) -> list[RawEvent | str]:
    """What the webhooks and the backfill read from this JSON value; CloudTrail records and
    files are taken as delivered by a CloudTrail route (you are testing rules over them)."""
    if is_eventbridge_event(payload):
        items = parse_eventbridge(payload)
    else:
        trusted = is_cloudtrail_record(payload) or is_cloudtrail_document(payload)
        items = json_items(payload, cloudtrail=trusted)
    return [item.raw or item.error or "invalid" for item in items]


def _document(lines: list[str]) -> list[tuple[int, RawEvent | str]] | None:
    """A document of records over many lines (`aws cloudtrail lookup-events` output, a pretty
    printed export, sudo's JSON log file, the journal's export format): every record in it, at
    the line it starts on (a JSON document's all at line 1); None for line-by-line input."""
    first = next((line for line in lines if line.strip()), "")
    fmt = detect_format(first)
    if fmt not in (InputFormat.JSON, InputFormat.JOURNAL_EXPORT):
        return None
    located = records(lines, fmt)
    return [(item.line or 1, item.item.raw or item.item.error or "invalid") for item in located]


def _describe(event: SecurityEvent) -> str:
    parts = [f"actor={event.actor}", f"action={event.action!r}"]
    parts += [f"{k}={v}" for k, v in (("host", event.host), ("address", event.address)) if v]
    parts += [f"{k}={v!r}" for k, v in event.details.items()]
    return " ".join(parts)


@app.command("test")
def test(
    file: Annotated[str, typer.Argument(help="Log lines to try (a file, or - for stdin).")],
    expect: Annotated[
        bool,
        typer.Option(
            "--expect", help="Every line must match a rule; exit 1 naming those that do not."
        ),
    ] = False,
    rule: Annotated[
        str | None, typer.Option(help="With --expect: the rule id each line must match.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file.")] = None,
    pack: Annotated[
        list[str] | None, typer.Option(help="Test only these built-in packs (repeatable).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Host for records that name none (no framing, log show).")
    ] = None,
    program: Annotated[
        str | None, typer.Option(help="Program for lines without syslog framing, e.g. sshd.")
    ] = None,
    source: Annotated[str, typer.Option(help="Source name the events get.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON result a line.")] = False,
) -> None:
    """For each record: which rule matched and the event it builds, that it is a known non-event
    (counted, never asked about), why nothing matched, or why the record is invalid.

    Reads what the webhooks and `powertrip backfill` read: syslog lines in every dialect, bare
    messages (give --program), JSON records of any log shipper, EventBridge events, CloudTrail
    records and files, Wazuh alerts, and JSON documents over many lines (lookup-events output).
    Blank lines and lines starting with # are skipped.
    """
    loaded = _config(config, pack or [])
    rules = loaded.rule_set()
    if rule is not None and rule not in {r.id for r in loaded.rules}:
        # Else every line would be listed as not matching a rule that cannot match anything.
        ids = ", ".join(sorted(r.id for r in loaded.rules)) or "none"
        errors.print(
            f"[red]--rule {escape(rule)}: no such rule in the rules tried; they are:[/red] "
            f"{escape(ids)}"
        )
        raise typer.Exit(2)
    lines = _read(file)
    failures = []
    counts: Counter[str] = Counter()
    # Lines end at \n only, as the backfill's do (str.splitlines would also end one at \x0c).
    found = _document(lines) or [
        (number, raw)
        for number, line in logical_lines(
            enumerate((line.rstrip("\r\n") for line in lines), start=1)
        )
        if line.strip() and not line.lstrip().startswith("#") and not sse_bookkeeping(line)
        for raw in _records(line, number, source, host, program)
    ]
    for number, raw in found:
        event: SecurityEvent | None = None
        reasons: dict[str, str] = {}
        error: str | None = None
        known: Rule | None = None
        if isinstance(raw, RawEvent):
            try:
                event, reasons = rules.explain(raw)
            except ValueError as exc:
                error = str(exc)
            if event is None and error is None:
                known = rules.non_event(raw)
        else:
            error = raw
        counts["event" if event else "non-event" if known else "invalid" if error else "none"] += 1
        matched = event.rule_id if event else known.id if known else None
        wrong_rule = rule is not None and matched != rule
        if expect and (event is None if rule is None else wrong_rule):
            failures.append(number)
        if as_json:
            console.print_json(
                json.dumps(
                    {
                        "line": number,
                        "rule": matched,
                        "event": event.model_dump(mode="json") if event else None,
                        "non_event": known.title if known else None,
                        "why_not": reasons if event is None and known is None else None,
                        "error": error,
                    }
                ),
                indent=None,
            )
        elif event is not None:
            mark = "[red]✗[/red]" if rule is not None and wrong_rule else "[green]✓[/green]"
            console.print(
                f"{mark} line {number}: [bold]{event.rule_id}[/bold] → {escape(_describe(event))}"
            )
        elif known is not None:
            mark = "[red]✗[/red]" if expect and wrong_rule else "-"
            console.print(
                f"{mark} line {number}: known non-event [bold]{known.id}[/bold] "
                f"({escape(known.title)}): counted, never asked about or reviewed"
            )
        else:
            # An unreadable record is the record's fault, not a missing rule: say which.
            what = "invalid (sent for review)" if error else "no rule matched"
            why = error or "; ".join(f"{rid}: {reason}" for rid, reason in reasons.items())
            console.print(
                f"{'[red]✗[/red]' if expect else '·'} line {number}: {what}"
                f" - {escape(why or 'no rules enabled')}"
            )
    if not as_json:
        console.print(
            f"{counts['event']} event(s), {counts['non-event']} known non-event(s), "
            f"{counts['none']} unmatched (sent for review), {counts['invalid']} invalid"
        )
    (errors if as_json else console).print(escape(_rules_used(loaded, explicit=bool(pack))))
    if failures:
        wanted = f"rule {rule}" if rule else "a rule"
        console.print(
            f"[red]{len(failures)} line(s) expected to match {wanted} did not:[/red] "
            + ", ".join(str(n) for n in failures)
        )
        raise typer.Exit(1)


def _rules_used(config: PowertripConfig, explicit: bool) -> str:
    """Which rules the lines were tried against: own rules, packs on, and the packs that exist
    but are off (a line no rule matched may be one of theirs)."""
    off = [name for name in available_rule_packs() if name not in config.rule_packs]
    packed = {rule["id"] for name in config.rule_packs for rule in rule_pack(name)["rules"]}
    own_count = sum(rule.id not in packed for rule in config.rules)
    own = f"{own_count} rule(s) of your own, then " if own_count else ""
    used = ", ".join(config.rule_packs) or "none"
    line = f"tried {own}the built-in pack(s): {used}"
    if off:
        how = "--pack" if explicit else "--pack or the config's `rule_packs:`"
        line += f"; off: {', '.join(off)} ({how} turns one on)"
    return line


def _read(file: str) -> list[str]:
    """The file (gzipped or not) or stdin (`-`) as the backfill reads it
    (`sources.files.InputLines`): a byte that is no UTF-8 costs only its character."""
    try:
        if file == "-":
            return list(InputLines(sys.stdin.buffer, "stdin"))
        if Path(file).is_dir():
            errors.print(f"[red]cannot read {escape(file)}: it is a directory[/red]")
            raise typer.Exit(2)
        with open_input(Path(file)) as stream:
            return list(InputLines(stream, file))
    except OSError as exc:
        errors.print(f"[red]cannot read {escape(file)}: {escape(str(exc.strerror or exc))}[/red]")
        raise typer.Exit(2) from exc
    except UnreadableInput as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


@app.command("packs")
def packs(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file.")] = None,
) -> None:
    """The built-in rule packs, their rules, and which are enabled (config `rule_packs:`)."""
    enabled = set(_config(config, []).rule_packs)
    for name in available_rule_packs():
        pack = rule_pack(name)
        state = "[green]enabled[/green]" if name in enabled else "[dim]available[/dim]"
        console.print(f"[bold]{name}[/bold] ({state}): {escape(pack.get('description', ''))}")
        for rule in pack["rules"]:
            console.print(f"    {rule['id']}: {escape(rule['title'])}")
