"""One JSON reader for everything that arrives from outside (webhook bodies, shipper lines,
CloudWatch and SNS envelopes, backfill files, `rules test`).

Python's `json` module raises a plain `ValueError` (not `JSONDecodeError`) for an integer of more
than 4,300 digits (CPython's int-conversion limit), which callers that catch decode errors let
through: one such number turned a whole batch into a 500 (red-team F2). Here an integer too long
to convert stays its digits as text, so the document decodes and only the field that needed a
number fails (a time field: `invalid` for that record). `NaN` and `Infinity` decode to floats as
`json` does; the time parser refuses them.
"""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 4000  # below CPython's default limit of 4,300


def _integer(text: str) -> int | str:
    return int(text) if len(text) <= MAX_INT_DIGITS else text


DECODER = json.JSONDecoder(parse_int=_integer)


def loads(text: str | bytes) -> Any:
    """`json.loads` for untrusted input: the same values, except that an integer longer than
    `MAX_INT_DIGITS` digits is returned as its text. Raises `json.JSONDecodeError` (a `ValueError`)
    for text that is not JSON."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    return json.loads(text, parse_int=_integer)
