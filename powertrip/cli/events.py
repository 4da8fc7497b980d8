"""`powertrip events ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="events commands", no_args_is_help=True)
