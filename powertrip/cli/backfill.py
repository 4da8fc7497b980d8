"""`powertrip backfill`."""

from __future__ import annotations

import typer


def backfill() -> None:
    """Process what the webhooks missed (not built yet)."""
    raise typer.Exit(2)
