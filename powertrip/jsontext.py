"""JSON text from outside (webhook bodies, log lines, files, CLI input): the one decoder every
reader uses, so a value Python cannot hold is the problem of the record that holds it, never
of its batch.

Python's `json` on its own turns three inputs into surprises a sender controls:
- an integer over `MAX_INTEGER_DIGITS` digits raises a plain `ValueError` (CPython's
  int-conversion limit, which exists because converting one is quadratic), not a
  `JSONDecodeError`, so callers catching only that fail the whole request;
- `NaN`, `Infinity` and `-Infinity` are accepted although RFC 8259 (section 6) has no such
  numbers;
- a number beyond a float's range (`1e999`) silently becomes infinity.

`loads` decodes each of them as an `Unreadable` marker in its place instead, and `unreadable`
finds the first marker in a record (`RawEvent` refuses fields holding one), so that record is
`invalid` with the reason and the rest of the batch proceeds. A document that is no JSON at
all (syntax, encoding, nesting beyond the interpreter's stack) is a `JsonError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_INTEGER_DIGITS = 4300  # CPython's default `sys.int_info.default_max_str_digits`
_SHOWN = 40  # characters of an unreadable number kept for the reason


class JsonError(ValueError):
    """The text is no JSON document: the message says why and where (`Expecting value: line 1
    column 5 (char 4)`, `nested too deeply`, a text encoding error).
    `extra_data`: one complete value was followed by more text (values one after another)."""

    def __init__(self, reason: str, extra_data: bool = False) -> None:
        super().__init__(reason)
        self.extra_data = extra_data


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A JSON number no Python value stands for, kept in its place: `what` says which."""

    what: str

    def __str__(self) -> str:
        return f"<{self.what}>"


def decimal(text: str, max_digits: int) -> int | None:
    """The integer `text` writes in ASCII decimal (`0`-`9`, an optional leading `-`), with at
    most `max_digits` digits after leading zeros; None for anything else. Unlike `int(text)` it
    never raises on text from outside: not on digits `str.isdigit` accepts and `int` refuses
    (`²`), nor on a numeral over CPython's conversion limit (`MAX_INTEGER_DIGITS`); nor does it
    take what `int` also reads (`+1`, `1_000`, blanks, Arabic-Indic digits)."""
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits.lstrip("0")) > max_digits:
        return None
    return int(text)


def _integer(text: str) -> int | Unreadable:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return Unreadable(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def _float(text: str) -> float | Unreadable:
    value = float(text)
    if math.isinf(value):
        return Unreadable(f"a number out of range: {text[:_SHOWN]}")
    return value


def _constant(text: str) -> Unreadable:
    return Unreadable(f"{text} (not a JSON number)")


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_float, parse_constant=_constant)


def loads(text: str | bytes | bytearray) -> Any:
    """The JSON value of `text` (bytes as UTF-8, UTF-16 or UTF-32, as `json.loads` reads them),
    with `Unreadable` in place of each number Python cannot hold; `JsonError` when `text` is
    no single JSON value."""
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        except UnicodeDecodeError as exc:
            raise JsonError(str(exc)) from exc
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc), extra_data=exc.msg == "Extra data") from exc
    except RecursionError as exc:  # `[[[[...` well under any size cap
        raise JsonError("nested too deeply") from exc


def raw_decode(text: str, position: int) -> tuple[Any, int]:
    """The JSON value starting at `position` of `text` and where the rest begins (values one
    after another); `JsonError` when none starts there."""
    try:
        value, end = _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc)) from exc
    except RecursionError as exc:
        raise JsonError("nested too deeply") from exc
    return value, end


def unreadable(value: Any) -> str | None:
    """Where the first `Unreadable` in `value` (nested dicts and lists) is and what it is, e.g.
    `order: an integer of 5000 digits`; None when there is none. Iterative: a deep value cannot
    exhaust the stack."""
    if not _holds_unreadable(value):
        return None  # the common case, without building paths
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if _is_unreadable(item):
            return f"{path or 'value'}: {item.what if isinstance(item, Unreadable) else item}"
        if isinstance(item, dict):
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()]
        elif isinstance(item, list):
            children = [(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def _is_unreadable(item: Any) -> bool:
    # A non-finite float can reach a record other ways than `loads` (a caller's own dict).
    return isinstance(item, Unreadable) or (isinstance(item, float) and not math.isfinite(item))


def _holds_unreadable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif _is_unreadable(item):
            return True
    return False
