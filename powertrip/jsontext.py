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
`invalid` with the reason and the rest of the batch proceeds. Two more inputs are valid JSON
that one record of a batch can hold:
- a value nested beyond the interpreter's stack (about 1,000 levels) made the whole document
  unreadable; such a value is an `Unreadable` marker in its place too (`_flatten_deep`);
- a `\\ud800` escape without its pair (RFC 8259 section 8.2 allows it; UTF-8 cannot encode
  it) became a Python string that every later `encode()` and Temporal's converter refuse. An
  unpaired surrogate, in a key or a value, reads as U+FFFD, as undecodable bytes do in the
  text bodies (`errors="replace"`).
A document that is no JSON at all (syntax, encoding) is a `JsonError`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_INTEGER_DIGITS = 4300  # CPython's default `sys.int_info.default_max_str_digits`
_SHOWN = 40  # characters of an unreadable number kept for the reason
# Values nested deeper than this are markers once a document overflows the decoder's stack:
# far under the ~1,000 levels the C decoder reaches, far over any record's `MAX_FIELD_DEPTH`.
FLATTENED_DEPTH = 256
# A whole JSON string, or one bracket: what `_flatten_deep` steps through (strings whole, so a
# bracket inside one is text).
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Where a decoded string can hold an unpaired surrogate: an escape of one, or one passed
# through from bytes (`surrogatepass`, as `json.loads` decodes bytes).
_SURROGATE_SOURCE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


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
    with `Unreadable` in place of each number Python cannot hold and of each value nested too
    deeply to decode, and U+FFFD for each unpaired surrogate; `JsonError` when `text` is no
    single JSON value."""
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        except UnicodeDecodeError as exc:
            raise JsonError(str(exc)) from exc
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc), extra_data=exc.msg == "Extra data") from exc
    except RecursionError:  # `[[[[...` well under any size cap: mark the deep values instead
        value = _decode_flattened(text)
    return _without_surrogates(value) if _SURROGATE_SOURCE.search(text) else value


def raw_decode(text: str, position: int) -> tuple[Any, int]:
    """The JSON value starting at `position` of `text` and where the rest begins (values one
    after another), read as `loads` reads a document; `JsonError` when none starts there."""
    try:
        value, end = _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc)) from exc
    except RecursionError:
        # The value's own extent, without decoding it: its deep parts are markers, as in
        # `loads`, and the values after it are still read.
        closed = _value_end(text, position)
        if closed is None:
            raise JsonError("nested too deeply, and never closed") from None
        value, end = _decode_flattened(text[position:closed]), closed
    if _SURROGATE_SOURCE.search(text, position, end):
        value = _without_surrogates(value)
    return value, end


def _decode_flattened(text: str) -> Any:
    """`text` decoded with every value deeper than `FLATTENED_DEPTH` levels an `Unreadable`."""
    sentinel = f"\x00powertrip-too-deep-{secrets.token_hex(8)}"  # no sender can write it
    flattened = _flatten_deep(text, json.dumps(sentinel))
    try:
        value = _DECODER.decode(flattened)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise JsonError(f"nested too deeply: {exc}") from exc
    marker = Unreadable(f"a value nested deeper than {FLATTENED_DEPTH} levels")
    return _map_strings(value, lambda s: marker if s == sentinel else s)


def _flatten_deep(text: str, replacement: str) -> str:
    """`text` with each value that opens at depth `FLATTENED_DEPTH` + 1 replaced by
    `replacement`; iterative, in linear time. Malformed text comes out malformed."""
    pieces: list[str] = []
    depth = 0
    kept_to = 0  # text[:kept_to] is in `pieces`
    opened_at = -1  # where the value being replaced began, or -1
    for token in _TOKEN.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth == FLATTENED_DEPTH + 1:
                opened_at = token.start()
        elif bracket in "]}":
            if depth == FLATTENED_DEPTH + 1 and opened_at >= 0:
                pieces += [text[kept_to:opened_at], replacement]
                kept_to, opened_at = token.end(), -1
            depth -= 1
    pieces.append(text[kept_to:])
    return "".join(pieces)


def _value_end(text: str, position: int) -> int | None:
    """Where the array or object opening at or after `position` (after whitespace) closes, one
    past it; None when it never does. Iterative."""
    depth = 0
    for token in _TOKEN.finditer(text, position):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
        elif bracket in "]}":
            depth -= 1
            if depth == 0:
                return token.end()
    return None


def holds_surrogate(value: Any) -> bool:
    """Whether `value` (as decoded: dicts, lists, scalars) holds an unpaired surrogate in a
    string or a key, text no UTF-8 can hold. Iterative."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _without_surrogates(value: Any) -> Any:
    """`value` with every unpaired surrogate in its strings and keys replaced by U+FFFD (a
    paired escape decodes to its one character, so any surrogate left is unpaired)."""
    return _map_strings(value, lambda s: _SURROGATE.sub("\ufffd", s))


def _map_strings(value: Any, change: Callable[[str], Any]) -> Any:
    """`value` (as decoded: dicts, lists, scalars) with `change` applied to every string in it,
    keys included (a key must stay a string); the containers are changed in place. Iterative,
    so a deep value cannot exhaust the stack."""
    if isinstance(value, str):
        return change(value)
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            entries = list(item.items())
            item.clear()
            for key, child in entries:
                new_key = change(key)
                item[new_key if isinstance(new_key, str) else key] = (
                    change(child) if isinstance(child, str) else child
                )
                if isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    item[index] = change(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
    return value


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
