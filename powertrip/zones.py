"""How far a sender's stamp may be from the true time: its clock's skew (`CLOCK_SKEW`), and for
stamps written without a zone (an RFC 3164 line, a naive JSON time) the UTC offsets.

A stamp without a zone is the writer's local wall clock, `UTC + offset`, for an offset some zone
uses. `UTC_OFFSETS` lists every offset (standard and daylight saving) the IANA tz database has
had a zone use since 2015, so identity (`powertrip.identity`) allows only those between a
zone-less copy and a zoned one, a record that carries a zoned time beside a zone-less line (a
Wazuh alert's `timestamp` beside its `full_log`) can say which offset the line was written in,
and an expectation covers a zone-less stamp only if it would in every zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

CLOCK_SKEW = timedelta(minutes=5)
"""How far a sender's clock may be from ours: an SNS message's signed `Timestamp` may be this far
in the future (`powertrip.sources.sns`), an event this far outside an expectation's span
(`powertrip.contracts.expectations.Expectation.covers`)."""

UTC_OFFSETS: tuple[timedelta, ...] = tuple(
    timedelta(minutes=minutes)
    for minutes in (
        *range(-720, 841, 60),  # whole hours, UTC-12 to UTC+14
        -570,  # Marquesas
        -270,  # Venezuela (to 2016)
        -210,  # Newfoundland
        -150,  # Newfoundland, daylight saving
        210,  # Iran
        270,  # Afghanistan, Iran's daylight saving (to 2022)
        330,  # India, Sri Lanka
        345,  # Nepal
        390,  # Myanmar, Cocos
        510,  # Pyongyang (2015-2018)
        525,  # Eucla
        570,  # Australian Central
        630,  # Australian Central daylight saving, Lord Howe
        690,  # Norfolk (to 2015), Lord Howe daylight saving
        765,  # Chatham
        825,  # Chatham daylight saving
    )
)
"""Every offset some zone has used since 2015 (IANA tz database), UTC-12 to UTC+14."""


def wall_clock_at(wall: datetime, instant: datetime, tolerance: timedelta) -> datetime | None:
    """The zoned time of a zone-less stamp written within `tolerance` of `instant`.

    `wall`: the stamp's wall clock (naive, or taken as UTC); `instant`: a zoned time the same
    record carries that follows the stamp closely (when a manager raised its alert on the line).
    The stamp's offset is the one of `UTC_OFFSETS` that puts it within `tolerance` of `instant`
    (offsets lie 15 minutes or more apart: with a tolerance under 7.5 minutes at most one does);
    None when none does (a line read long after it was written: its zone cannot be told).
    """
    clock = wall.replace(tzinfo=UTC)
    for offset in UTC_OFFSETS:
        candidate = clock - offset
        if abs(instant - candidate) <= tolerance:
            return candidate
    return None
