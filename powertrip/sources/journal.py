"""systemd's journal export format, as `journalctl -o export` writes it and
`systemd-journal-upload` / `systemd-journal-remote` speak it
(https://systemd.io/JOURNAL_EXPORT_FORMATS/): one entry is `FIELD=value` lines ended by a blank
line; a value that is not plain text (a newline or control character in it) is written as the
field name alone on its line, then its length as 8 bytes little-endian, the bytes, and a newline.

Each entry becomes the same JSON object `journalctl -o json` gives, which the journald shipper
map reads (`__CURSOR`, `__REALTIME_TIMESTAMP`, `_HOSTNAME`, `SYSLOG_IDENTIFIER`, `MESSAGE`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

CONTENT_TYPE = "application/vnd.fdo.journal"
# Field names: upper-case letters, digits and underscores, not starting with a digit.
_FIELD = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>.*)$", re.DOTALL)
_BINARY_FIELD = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_LENGTH_BYTES = 8
# An entry holding more fields than this is no journal entry (bounded memory per record).
MAX_FIELDS = 1000


def looks_like_export(first_line: str) -> bool:
    """Whether a text starts like the export format: its first line a `FIELD=value` pair of the
    journal's own fields (`__CURSOR=`, `__REALTIME_TIMESTAMP=`, ...)."""
    return first_line.startswith(("__CURSOR=", "__REALTIME_TIMESTAMP=", "__SEQNUM="))


@dataclass
class _Entry:
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    binary: str | None = None  # the field whose value lines are being read


def export_entries(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, dict[str, str]]]:
    """Each entry of numbered export-format lines as `(first line number, fields)`.

    The text was decoded from bytes, so a binary value's 8-byte length cannot be trusted: its
    value is the text after the length, up to the next field or the end of the entry (a length
    under 2^48 ends in a zero byte, the last one among its first 8 characters).
    """
    entry: _Entry | None = None
    for number, raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            if entry is not None and entry.fields:
                yield entry.line, entry.fields
            entry = None
            continue
        if entry is None:
            entry = _Entry(number)
        if entry.binary is not None and not (_FIELD.match(line) or _BINARY_FIELD.match(line)):
            value = entry.fields.get(entry.binary)
            if value is None:
                head = line[:_LENGTH_BYTES]
                value = line[head.rfind("\x00") + 1 :] if "\x00" in head else line
                entry.fields[entry.binary] = value
            else:
                entry.fields[entry.binary] = f"{value}\n{line}"
            continue
        entry.binary = None
        if len(entry.fields) >= MAX_FIELDS:
            continue
        if found := _FIELD.match(line):
            entry.fields.setdefault(found["name"], found["value"])
        elif _BINARY_FIELD.match(line):
            entry.binary = line
    if entry is not None and entry.fields:
        yield entry.line, entry.fields
