"""Human durations in config files: `15m`, `1h30m`, `90s`, or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, TypeAdapter, ValidationError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# What pydantic writes a timedelta as in JSON (`PT15M`): a model that holds a Duration must read
# back its own dump (workflow inputs and memos are such dumps).
_ISO_8601 = TypeAdapter(timedelta)


def parse_duration(value: object) -> timedelta:
    """`value` as a timedelta; ValueError naming it when it is none, or too long for one."""
    try:
        return _parse(value)
    except (OverflowError, ValueError) as exc:  # `99999999999d`, a NaN or infinite number
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 1h30m)") from exc


def _parse(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
        if text and _PART.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
            return timedelta(seconds=seconds)
        if text.startswith(("p", "-p")):
            try:
                return _ISO_8601.validate_python(value.strip().upper())
            except ValidationError:
                pass
    raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 1h30m)")


def _positive(value: object) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return duration


Duration = Annotated[timedelta, BeforeValidator(_positive)]


def _or_off(value: object) -> timedelta:
    """A duration, or `off` (YAML's `off` reads as false), `0`: none."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return timedelta(0)
    duration = parse_duration(value)
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {value!r}")
    return duration


DurationOrOff = Annotated[timedelta, BeforeValidator(_or_off)]
"""A duration, or `off` / `0` for none (e.g. a rule's `group_window`)."""
