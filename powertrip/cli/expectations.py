"""`powertrip expectations ...`: expected work, pre-approved on the record, from a terminal.

Signed with POWERTRIP_CLI_DECISION_KEY like `events approve`: only the security team may create
or revoke expectations from the CLI (the worker checks that again before one approves anything).
With `security_team_group` in the config, a `--as` user not listed in `security_team` is looked
up in that Slack user group (POWERTRIP_SLACK_BOT_TOKEN, POWERTRIP_SLACK_API_URL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import Client

from powertrip.cli import options
from powertrip.cli.events import (
    JsonOption,
    _as_json,
    _exit_hard_after_temporal,
    _print_json,
    _run,
    _settings,
    _when,
)
from powertrip.config import ConfigError, PowertripConfig, load_config
from powertrip.contracts.expectations import Expectation
from powertrip.directory import SlackDirectory
from powertrip.services.expectations import (
    ExpectationRefused,
    Limits,
    create_expectation,
    list_expectations,
    new_expectation,
    revoke_expectation,
)
from powertrip.settings import Settings, SettingsError
from powertrip.signing import cli_decision_key, operator

app = typer.Typer(help="Pre-approve expected work; list and revoke it.", no_args_is_help=True)

AsUser = Annotated[
    str,
    typer.Option(
        "--as",
        callback=options.an_id,
        help="Your Slack user id; must be on the security team (recorded).",
    ),
]


def _config_and_key() -> tuple[PowertripConfig, str]:
    settings = _settings()
    try:
        return load_config(settings.config), cli_decision_key(settings, "CLI (expectations)")
    except (ConfigError, SettingsError) as exc:
        typer.echo(f"powertrip: {exc}", err=True)
        raise typer.Exit(2) from exc


def _limits(settings: Settings, config: PowertripConfig) -> Limits:
    """The limits, asking Slack (the bot token at POWERTRIP_SLACK_API_URL) whether `--as` is in
    the security team's user group when the config names one and does not list them."""
    slack = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    return Limits.from_config(config, SlackDirectory(slack, config))


def _until(for_: str | None, until: str | None, now: datetime) -> datetime:
    if (for_ is None) == (until is None):
        raise typer.BadParameter("give exactly one of --for (e.g. 2h) and --until (ISO time)")
    if for_ is not None:
        return options.parse_when(for_, now, ahead=True, option="--for")
    assert until is not None
    return options.parse_when(until, now, durations=False, option="--until")


def _table(expectations: list[Expectation]) -> Table:
    table = Table("id", "actor", "hosts", "rules", "until (UTC)", "by", "reason")
    for e in expectations:
        table.add_row(
            e.id,
            e.actor,
            ", ".join(e.hosts) or "any",
            ", ".join(e.rules) or "any",
            _when(e.until),
            e.created_by,
            e.reason,
        )
    return table


@app.command()
@_exit_hard_after_temporal
def create(
    actor: Annotated[str, typer.Option(help="The account as events name it (alice, deploy).")],
    reason: Annotated[str, typer.Option(help="Why this work is expected (recorded).")],
    as_user: AsUser,
    for_: Annotated[str | None, typer.Option("--for", help="How long: 2h, 90m.")] = None,
    until: Annotated[str | None, typer.Option(help="Until this ISO time instead.")] = None,
    host: Annotated[list[str] | None, typer.Option(help="Only on this host (repeat).")] = None,
    rule: Annotated[list[str] | None, typer.Option(help="Only this rule id (repeat).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pre-approve an actor's work until a time: matching events are approved at once, on the
    record (via=expectation), and nobody is asked."""
    settings = _settings()
    config, key = _config_and_key()
    if not config.security_team and not config.security_team_group:
        # Said here, naming the config: the limits would only say "only the security team".
        where = (
            f"the config {settings.config}"
            if settings.config
            else "no config (POWERTRIP_CONFIG is not set)"
        )
        typer.echo(
            f"powertrip: {where} names no security team (`security_team` or "
            "`security_team_group`), and only the security team may create expectations "
            "from the CLI",
            err=True,
        )
        raise typer.Exit(2)
    now = datetime.now(UTC)
    try:
        expectation = new_expectation(
            actor=actor,
            hosts=host or [],
            rules=rule or [],
            until=_until(for_, until, now),
            reason=reason,
            created_by=as_user,
            via="cli",
            operator=operator(),
            now=now,
        )
    except ExpectationRefused as exc:  # a blank --host or --reason: said, not a traceback
        typer.echo(f"powertrip: {exc}", err=True)
        raise typer.Exit(1) from exc

    async def work(client: Client) -> Expectation:
        return await create_expectation(
            client, key, settings.task_queue, expectation, _limits(settings, config)
        )

    created = _run(settings, work)
    if _as_json(as_json):
        _print_json(created.model_dump(mode="json"))
    else:
        typer.echo(f"{created.id}: {actor} expected until {_when(created.until)} UTC")


@app.command(name="list")
@_exit_hard_after_temporal
def list_(
    actor: Annotated[str | None, typer.Option(help="Only this account's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The active expectations, soonest ending first."""
    settings = _settings()

    async def work(client: Client) -> list[Expectation]:
        return await list_expectations(client, actor)

    found = _run(settings, work)
    if _as_json(as_json):
        _print_json([e.model_dump(mode="json") for e in found])
    else:
        Console().print(_table(found))


@app.command()
@_exit_hard_after_temporal
def revoke(
    expectation_id: Annotated[str, typer.Argument(callback=options.an_id)], as_user: AsUser
) -> None:
    """End an expectation now: later events are asked as usual."""
    settings = _settings()
    config, key = _config_and_key()

    async def work(client: Client) -> Expectation:
        return await revoke_expectation(
            client, key, expectation_id, as_user, "cli", _limits(settings, config)
        )

    _run(settings, work)
    typer.echo(f"{expectation_id}: revoked")
