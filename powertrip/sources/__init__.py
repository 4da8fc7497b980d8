"""Source adapters: each turns one provider's payload into `RawEvent`s, reporting bad members by
index instead of failing the batch."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from powertrip.models import RawEvent


class PayloadError(ValueError):
    """The payload as a whole is unusable (HTTP 400/422); nothing in it is processed."""


@dataclass(frozen=True)
class ParsedItem:
    index: int
    raw: RawEvent | None = None
    error: str | None = None


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()
    )
