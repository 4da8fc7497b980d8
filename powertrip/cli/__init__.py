"""`powertrip`: the command line, with the same `POWERTRIP_*` settings as the services."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _interrupted_while_starting(_signum: int, _frame: FrameType | None) -> None:
    # Ctrl-C while the modules below load (a second or more) was a KeyboardInterrupt traceback
    # from whichever import it landed in. Nothing has started yet: leave as a shell would say.
    sys.stderr.write("powertrip: interrupted\n")
    os._exit(130)


# Only as the console script: a process importing this (tests, a tool) keeps its own handler.
if (
    os.path.basename(sys.argv[0]) == "powertrip"
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
):
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import typer  # noqa: E402

from powertrip.cli import backfill, dev, events, expectations, failures, rules  # noqa: E402
from powertrip.process import exit_now  # noqa: E402

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
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        # From here Ctrl-C is each command's (KeyboardInterrupt; backfill stops in order).
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
