"""Source adapters: each turns one provider's payload into `RawEvent`s, reporting bad members by
index instead of failing the batch.

Naming records the provider gives no id (`content_id`): a record that carries its own time is
named by its content and that time, so a retried delivery is the same id and the same text at
another time is another event; a record without a time of its own is named by its content and
the `RECEIVE_BUCKET` it arrived in. A sender with its own key for a delivery sends an
`Idempotency-Key` header instead (`keyed_id`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from powertrip.models import RawEvent, without_trailing_noise

# A record without its own time is a new event once this much time has passed: a retry within
# the bucket is a duplicate, the same text in a later bucket is a new event.
RECEIVE_BUCKET = timedelta(minutes=10)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
SAMPLE_CHARS = 2000


class PayloadError(ValueError):
    """The payload as a whole is unusable (HTTP 400/422); nothing in it is processed."""


@dataclass(frozen=True)
class ParsedItem:
    """One record of a payload: its `RawEvent`, or the reason it has none (`error`) with what
    the security channel's review shows of it (`sample`, the record as received, clipped). A
    line of a text body that is known to be no record (a saved journalctl header) has neither:
    `annotation` says what it is, and it is answered a non-event, so no line goes unanswered."""

    index: int
    raw: RawEvent | None = None
    error: str | None = None
    sample: str | None = None
    annotation: str | None = None


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()
    )


def sample_of(value: Any) -> str:
    """A bad record as the review shows it: its JSON (or text), at most `SAMPLE_CHARS`."""
    if isinstance(value, str | bytes):
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (ValueError, RecursionError):
            try:
                text = repr(value)[:SAMPLE_CHARS]
            except (ValueError, RecursionError):  # an int over the conversion limit
                text = f"<{type(value).__name__}>"
    return text[:SAMPLE_CHARS]


def json_text(data: bytes) -> str:
    """Bytes of JSON (or log) text as a string: UTF-8, UTF-16 or UTF-32 as RFC 8259 (section
    8.1) and `json.loads` tell them apart, a UTF-8 byte order mark skipped. Bytes that are no
    character become U+FFFD: in a string they cost that string its bytes, not the batch holding
    it its records (outside a string they leave the value unreadable)."""
    return data.decode(json.detect_encoding(data), errors="replace")


def invalid(index: int, reason: str, record: Any) -> ParsedItem:
    return ParsedItem(index=index, error=reason, sample=sample_of(record))


def content_id(content: Any, own_time: datetime | None, received: datetime | None = None) -> str:
    """The provider id of a record the provider gave none: `h` + 32 hex digits of the SHA-256 of
    the canonical JSON of `{"time": <own time>, "record": content}`, or, for a record without a
    time of its own, `{"received": <start of its RECEIVE_BUCKET>, "record": content}`.

    `content` is the record as received (a line, a JSON object); times are compared in UTC. A
    line is named without its trailing noise (`models.without_trailing_noise`): a retry that
    adds or drops a `\r` or a blank is the same record.
    """
    if isinstance(content, str):
        content = without_trailing_noise(content)
    if own_time is not None:
        basis: dict[str, Any] = {"time": _utc(own_time).isoformat(), "record": content}
    else:
        at = _utc(received or datetime.now(UTC))
        step = int(RECEIVE_BUCKET.total_seconds())
        bucket = datetime.fromtimestamp(int(at.timestamp()) // step * step, UTC)
        basis = {"received": bucket.isoformat(), "record": content}
    canonical = json.dumps(
        basis, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def keyed_id(key: str, index: int, batch: int) -> str:
    """The provider id an `Idempotency-Key` gives record `index` of a batch of `batch` records:
    the key itself for a single record, `<key>:<index>` in a batch."""
    return key if batch == 1 else f"{key}:{index}"


def check_idempotency_key(key: str) -> str:
    """The header's value, or `PayloadError` naming what is wrong with it."""
    if not _IDEMPOTENCY_KEY.match(key):
        raise PayloadError(
            "Idempotency-Key must be 1 to 200 printable ASCII characters without spaces"
        )
    return key


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
