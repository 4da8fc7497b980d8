"""Checks of command-line option values, one per kind, so a bad value is refused by the option's
name before any work starts (click prints `Invalid value for '--year': ...`, exit 2).

Counts and ports are click ranges (`typer.Option(min=1)`, ports also `max=MAX_PORT`); years,
durations and times, whose bounds or shape need words, are the functions below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from powertrip.durations import parse_duration
from powertrip.models import EARLIEST_TIME, LATEST_TIME, out_of_range

MAX_PORT = 65535
FIRST_YEAR = EARLIEST_TIME.year
LAST_YEAR = LATEST_TIME.year - 1  # LATEST_TIME is the first instant no record can have


def record_year(value: int | None) -> int | None:
    """A year a record's time can be in (`powertrip.models.EARLIEST_TIME` to `LATEST_TIME`).

    Outside it every stamp of the year would be no time at all, and a record without one is
    taken as arriving now: an old login would be asked about as if it had just happened.
    """
    if value is not None and not FIRST_YEAR <= value <= LAST_YEAR:
        raise typer.BadParameter(
            f"{value} is no year a record can be in: give the four-digit year the lines were "
            f"written in, {FIRST_YEAR} to {LAST_YEAR}"
        )
    return value


def positive_duration(value: str) -> timedelta:
    """`90s`, `15m`, `1h30m`, `7d` (or seconds) as a timedelta above zero: a
    `typer.Option(parser=...)`."""
    if isinstance(value, timedelta):  # a default
        return value
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: give a duration like 90s, 15m, 1h30m, 7d") from exc
    if duration <= timedelta(0):
        raise typer.BadParameter(f"{value!r}: give a duration above zero, like 7d")
    return duration


def parse_when(
    text: str, now: datetime, *, option: str, ahead: bool = False, durations: bool = True
) -> datetime:
    """`2026-11-27T01:00:00Z`, `2026-11-27` (UTC when no zone), or (unless not `durations`) a
    duration: ago (`7d`, `90m`), or with `ahead` from now. BadParameter when it is neither, or
    no time a record can have, naming `option` (`--since`)."""
    try:
        if not durations:
            raise ValueError("an ISO time only")
        duration = parse_duration(text)
    except ValueError:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise typer.BadParameter(
                f"{text!r}: give an ISO time (UTC if no zone)"
                + (" or a duration like 7d, 90m" if durations else ""),
                param_hint=option,
            ) from exc
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
    else:
        try:
            at = now + duration if ahead else now - duration
        except OverflowError:  # `9999999d`: before year 1
            at = datetime.max.replace(tzinfo=UTC) if ahead else datetime.min.replace(tzinfo=UTC)
    if why := out_of_range(at):
        raise typer.BadParameter(f"{text!r}: {why}", param_hint=option)
    return at


def an_id(value: str) -> str:
    """An event, expectation or Slack user id: never empty (an unset shell variable), which
    Temporal would only answer with INVALID_ARGUMENT."""
    if not value.strip():
        raise typer.BadParameter("is empty: give the id (an unset shell variable?)")
    return value.strip()
