"""sudo's own JSON log file (`Defaults log_format=json` with `logfile=`, and `sudo_logsrvd`'s
`log_type=file` with `log_format=json`): one JSON object that sudo extends in place, one member
per event named by its type, so the same key repeats:

    {
        "accept": {"submituser": "alice", "runuser": "root", "command": "/usr/bin/id", ...},
        "reject": {"reason": "user NOT in sudoers", ...},
        "accept": {...}
    }

(sudo's `lib/eventlog/eventlog.c`, `json_log_write`; the members are documented in
sudoers_json(5)/sudo_logsrvd). Each member becomes one record of program `sudo` with the member
as its fields (`{"accept": {...}}`, the shape sudo 1.9.4's JSON syslog messages had), on the
host that ran the command (`submithost`) at its `submit_time`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from powertrip.sources import ParsedItem, content_id, describe_validation_error, invalid
from powertrip.sources.syslog import raw_event

# The event types sudo writes (eventlog.c: EVLOG_ACCEPT ... EVLOG_EXIT).
EVENT_TYPES = frozenset({"accept", "reject", "exit", "alert", "restart"})


def sudo_log_members(text: str) -> list[tuple[str, Any]] | None:
    """The `(type, body)` members of a sudo JSON log file, every repeat kept; None when `text`
    is not one (another JSON document, or not JSON)."""
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return None
    objects: list[list[tuple[str, Any]]] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(pairs)  # called innermost first: the document's own object comes last
        return dict(pairs)

    try:
        json.loads(stripped, object_pairs_hook=keep_pairs)
    except (ValueError, RecursionError):
        return None
    members = objects[-1] if objects else []
    if not members or not all(
        key in EVENT_TYPES and isinstance(body, dict) for key, body in members
    ):
        return None
    return members


def submit_time(body: dict[str, Any]) -> datetime | None:
    """When sudo was run: `submit_time` (else `server_time`) `{seconds, nanoseconds}`, UTC."""
    for key in ("submit_time", "server_time"):
        stamp = body.get(key)
        if isinstance(stamp, dict) and isinstance(stamp.get("seconds"), int):
            nanoseconds = stamp.get("nanoseconds")
            micro = nanoseconds // 1000 if isinstance(nanoseconds, int) else 0
            try:
                return datetime.fromtimestamp(stamp["seconds"], UTC) + timedelta(microseconds=micro)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def sudo_log_items(text: str, source: str, now: datetime) -> list[ParsedItem] | None:
    """Every member of a sudo JSON log file as a record (see the module); None when `text` is
    not one."""
    members = sudo_log_members(text)
    if members is None:
        return None
    items = []
    for index, (kind, body) in enumerate(members):
        fields = {kind: body}
        message = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        when = submit_time(body)
        host = body.get("submithost")
        try:
            raw = raw_event(
                source,
                content_id(message, when, now),
                when or now,
                host if isinstance(host, str) else None,
                "sudo",
                message,
                fields,
            )
        except ValidationError as exc:
            items.append(invalid(index, describe_validation_error(exc), fields))
            continue
        items.append(ParsedItem(index=index, raw=raw))
    return items
