"""`powertrip`: the command line, with the same `POWERTRIP_*` settings as the services."""

from __future__ import annotations

import typer

from powertrip.cli import backfill, dev, events, rules

app = typer.Typer(
    name="powertrip",
    help="Did a human who owns it say 'yes, that was me'? Run, inspect and feed Powertrip.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command(name="dev")(dev.dev)
app.add_typer(rules.app, name="rules")
app.add_typer(events.app, name="events")
app.command(name="backfill")(backfill.backfill)


def main() -> None:
    app()
