"""Business hours (`business_hours: {timezone, days, start, end}`) and the zone rules behind them.

Pure and deterministic, so workflow code may call it: no clock is read, and zone rules come only
from the `tzdata` package pinned in `pyproject.toml`, never from the machine's
`/usr/share/zoneinfo`, so every worker (and every replay) computes the same instants.

Only business-hours openings depend on zone rules; every duration (`after`, `every`) is elapsed
time, added in UTC, so "1h" is one real hour across a DST change.

What a `tzdata` update means for replay: zone rules change for future dates (a country moves or
drops DST). A workflow replayed with new rules recomputes its schedule; if the change moves an
opening it had already computed, the replay can take another branch (sleep instead of page) and
fail as non-deterministic. So update the pin on purpose, like a change to workflow code: replay
the recorded histories (`tests/test_replay.py`) with the new data, and never run workers with
different `tzdata` versions side by side (the pin is what keeps them equal).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ZONE_KEY = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")  # seconds: pydantic's own dump
_NOT_A_TIME = 'not a time of day: {!r} (write it in quotes as "HH:MM", e.g. "09:00")'


@lru_cache(maxsize=64)
def zone(key: str) -> ZoneInfo:
    """The IANA time zone `key` (e.g. `Europe/Berlin`) from the pinned `tzdata` package.

    Raises ValueError naming the key when the package has no such zone."""
    if not _ZONE_KEY.fullmatch(key):
        raise ValueError(f"not a time zone name: {key!r} (use e.g. Europe/Berlin)")
    entry = resources.files("tzdata.zoneinfo").joinpath(*key.split("/"))
    try:
        with entry.open("rb") as data:
            return ZoneInfo.from_file(data, key=key)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):
        raise ValueError(
            f"unknown time zone {key!r} (an IANA name such as Europe/Berlin or America/New_York)"
        ) from None


def _weekday(name: object) -> str:
    text = str(name).strip().lower()
    if text in WEEKDAYS:
        return text
    if text in _FULL_NAMES:
        return WEEKDAYS[_FULL_NAMES.index(text)]
    raise ValueError(f"not a day: {name!r} (use mon, tue, wed, thu, fri, sat, sun)")


def _days(value: object) -> object:
    """`mon-fri`, `[mon, wed]` or `[mon-wed, fri]`: ranges wrap (`fri-mon`)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return value
    days: list[str] = []
    for item in items:
        first, _, last = str(item).partition("-")
        if not last:
            days.append(_weekday(first))
            continue
        begin, end = WEEKDAYS.index(_weekday(first)), WEEKDAYS.index(_weekday(last))
        days += [WEEKDAYS[(begin + i) % 7] for i in range((end - begin) % 7 + 1)]
    return sorted(set(days), key=WEEKDAYS.index)


def _clock(value: object) -> object:
    """`"09:00"`; also what YAML 1.1 makes of an unquoted `9:00` or `17:30` (sexagesimal: 540,
    1050), which is minutes after midnight."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 60 <= value < 24 * 60:
            return time(value // 60, value % 60)
        raise ValueError(_NOT_A_TIME.format(value))
    if isinstance(value, str):
        found = _CLOCK.fullmatch(value.strip())
        if not found or int(found[1]) > 23 or int(found[2]) > 59 or int(found[3] or 0) > 59:
            raise ValueError(_NOT_A_TIME.format(value))
        return time(int(found[1]), int(found[2]), int(found[3] or 0))
    return value


class BusinessHours(BaseModel):
    """When the team works: on `days`, from `start` to `end` local time in `timezone`.

    A time of day is the first instant of that date at which the local clock shows it; when the
    clocks skip it (a DST gap), the period starts (or ends) the moment they jump past it. Public
    holidays are not modelled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(description="IANA zone name, e.g. `Europe/Berlin`.")
    days: list[str] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]),
        description="Working days: `mon-fri` (the default), or a list such as `[mon, tue, thu]`.",
    )
    start: time = Field(default=time(9), description='Local time the day starts, `"09:00"`.')
    end: time = Field(default=time(17), description='Local time the day ends, `"17:00"`.')

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _parse_days(cls, value: object) -> object:
        return _days(value)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_clock(cls, value: object) -> object:
        return _clock(value)

    @model_validator(mode="after")
    def _a_real_day(self) -> BusinessHours:
        if not self.days:
            raise ValueError("days: give at least one working day")
        if self.start >= self.end:
            raise ValueError(
                f"start ({self.start:%H:%M}) must be before end ({self.end:%H:%M}); "
                "overnight periods are not supported"
            )
        return self

    def opening(self, at: datetime) -> datetime:
        """`at` (aware) if it lies within business hours, else the start of the next business
        period; in UTC. Raises ValueError for a naive `at`."""
        moment = _aware(at)
        local_date = moment.astimezone(zone(self.timezone)).date()
        # Every weekday comes round within a week; one more day covers "after today's end".
        for offset in range(8):
            day = local_date + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            begin, finish = self.local_instant(day, self.start), self.local_instant(day, self.end)
            if moment < finish and begin < finish:
                return max(moment, begin)
        raise AssertionError("unreachable: a week always has a working day")  # pragma: no cover

    def contains(self, at: datetime) -> bool:
        """Whether `at` (aware) lies within business hours."""
        return self.opening(at) == _aware(at)

    def local_instant(self, day: date, clock: time) -> datetime:
        """The first instant (UTC) of local `day` at which the clock in `timezone` shows
        `clock`, or the moment it jumps past it (a DST gap)."""
        tz = zone(self.timezone)
        naive = datetime.combine(day, clock)
        first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if first.astimezone(tz).replace(tzinfo=None) == naive:
            return first  # exists; fold=0 is its first occurrence when the clocks fall back
        # A gap: the two readings of `naive` straddle the jump. Find it to the second.
        other = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
        before, after = min(first, other), max(first, other)
        offset_before = before.astimezone(tz).utcoffset()
        while after - before > timedelta(seconds=1):
            middle = before + timedelta(seconds=(after - before).total_seconds() // 2)
            if middle.astimezone(tz).utcoffset() == offset_before:
                before = middle
            else:
                after = middle
        return after

    def describe(self) -> str:
        """e.g. `mon-fri 09:00-17:00 Europe/Berlin`."""
        return f"{_describe_days(self.days)} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


def _describe_days(days: list[str]) -> str:
    indexes = [WEEKDAYS.index(d) for d in days]
    if indexes == list(range(indexes[0], indexes[-1] + 1)) and len(indexes) > 2:
        return f"{days[0]}-{days[-1]}"
    return ",".join(days)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time without a zone: {at.isoformat()} (give an aware datetime)")
    return at.astimezone(UTC)
