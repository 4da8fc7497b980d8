"""`powertrip`: the command line, with the same `POWERTRIP_*` settings as the services."""

from __future__ import annotations

import sys

import typer

from powertrip.cli import backfill, dev, events, expectations, failures, rules
from powertrip.process import exit_now

app = typer.Typer(
    name="powertrip",
    help="Did a human who owns it say 'yes, that was me'? Run, inspect and feed Powertrip.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command(name="dev")(dev.dev)
app.add_typer(rules.app, name="rules")
app.add_typer(events.app, name="events")
app.add_typer(expectations.app, name="expectations")
app.command(name="backfill")(backfill.backfill)


def main(argv: list[str] | None = None) -> None:
    """Run one command (`argv`, default `sys.argv[1:]`). An expected failure (Temporal
    unreachable, bad settings or config, a file that cannot be read) ends it with one line on
    stderr naming what to check, never a traceback."""
    try:
        app(args=argv, prog_name="powertrip")
    except Exception as exc:
        known = failures.one_line(exc)
        if known is None:
            raise
        message, code = known
        typer.echo(f"powertrip: {message}", err=True)
        if sys.stdout is sys.__stdout__:
            # A Temporal client may exist: leave before interpreter teardown (process.exit_now).
            exit_now(code)
        raise SystemExit(code) from None
