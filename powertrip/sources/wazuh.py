"""Wazuh (and OSSEC) alerts, as a manager's integrator posts them to a hook URL: one alert as
written to `alerts.json`, a list of them, or wrapped as Wazuh's Shuffle integration posts it
(`{"all_fields": <alert>, ...}`). Wazuh's alert format: https://documentation.wazuh.com/current/
user-manual/manager/alert-management.html; OSSEC's `jsonout_output` writes the same keys it has
(`TimeStamp`, `hostname`, `program_name` at the top level).

An alert names the log line it fired on (`full_log`): that line is the record, so an sshd
authentication success becomes the same login event a webhook or backfill of the line would
give, matched by the same rules and keyed by the alert's own `id` (`wazuh-<id>`). What Wazuh says
about the line wins over what the line says: the agent's name (for the manager's own agent,
`000`, which receives remote syslog, the host Wazuh's pre-decoder read from the line), the
pre-decoder's program, and the alert as fields for JSON rules (`rule.groups`, `data.srcip`...).
The line's own time, with the year and zone the alert's time gives it, is the event's time: a
zone-less line (RFC 3164, an agent logging local time) is in the UTC offset that puts it within
`ALERT_LAG` of the alert's zoned `timestamp` (an agent on UTC+2 writes `07:00:00` for the login the
manager alerts on at `05:00:00.512Z`, whatever zone the manager's own stamp is written in). A line
further from its alert than that (an agent's backlog) keeps its stamp, marked as without a zone
(a backlog within `ALERT_LAG` of a whole number of hours is indistinguishable from an offset).
A Windows eventchannel alert (`data.win.system`, no `full_log`) is read from the event: its
provider is the program, its message the message, its `systemTime` the time.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from powertrip.models import RawEvent
from powertrip.rules import lookup
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid
from powertrip.sources.shippers import FieldError, parse_time
from powertrip.sources.syslog import SyslogRecord, parse_syslog, raw_event
from powertrip.zones import wall_clock_at

SOURCE = "wazuh"
MANAGER_AGENT = "000"
# How long before its alert a line may have been written for the alert's time to tell its zone:
# analysisd alerts within seconds; offsets lie 15 minutes apart, so this must stay under 7.5.
ALERT_LAG = timedelta(minutes=5)


def is_wazuh_alert(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("rule"), dict)
        and "id" in value
        and ("full_log" in value or "agent" in value or "decoder" in value)
    )


def parse_wazuh(payload: Any) -> list[ParsedItem]:
    """One alert, a list of alerts, or Shuffle's envelope; `PayloadError` for anything else."""
    if isinstance(payload, dict) and isinstance(payload.get("all_fields"), dict):
        payload = payload["all_fields"]
    members = payload if isinstance(payload, list) else [payload]
    if not members or not all(isinstance(m, dict) for m in members):
        raise PayloadError("expected a Wazuh alert (a JSON object) or a list of them")
    return [wazuh_item(index, member) for index, member in enumerate(members)]


def wazuh_item(index: int, alert: dict[str, Any], source: str = SOURCE) -> ParsedItem:
    if not is_wazuh_alert(alert):
        return invalid(index, "not a Wazuh alert (needs `id`, `rule` and `full_log`)", alert)
    try:
        return ParsedItem(index=index, raw=wazuh_raw(alert, source))
    except (FieldError, ValidationError) as exc:
        reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        return invalid(index, reason, alert)


def wazuh_raw(alert: dict[str, Any], source: str = SOURCE) -> RawEvent:
    """One alert as the `RawEvent` of the line it fired on; `FieldError` for a bad time."""
    stamp = alert.get("timestamp") or alert.get("TimeStamp")
    alerted = parse_time(stamp, "timestamp") if stamp not in (None, "") else None
    full_log = str(alert.get("full_log") or "")
    line = parse_syslog(full_log, now=alerted) if full_log else None
    agent: dict[str, Any] = alert["agent"] if isinstance(alert.get("agent"), dict) else {}
    predecoded: dict[str, Any] = (
        alert["predecoder"] if isinstance(alert.get("predecoder"), dict) else {}
    )
    agent_name = agent.get("name") if agent.get("id") != MANAGER_AGENT else None
    host = (
        agent_name
        or predecoded.get("hostname")
        or alert.get("hostname")
        or (line.host if line else None)
        or agent.get("name")
    )
    program = (
        predecoded.get("program_name")
        or alert.get("program_name")
        or (line.program if line else None)
    )
    when, zoneless = _line_time(line, alerted)
    message = line.message if line else full_log
    if not full_log and isinstance(windows := lookup(alert, "data.win.system"), dict):
        # Windows eventchannel alerts carry the event, not a line: its provider (`OpenSSH`) is
        # the program, its message (Wazuh quotes it) or event data the message, and its
        # `systemTime` (UTC) when it happened.
        program = program or windows.get("providerName")
        message = (
            _unquoted(windows.get("message"))
            or _text(lookup(alert, "data.win.eventdata.data"))
            or ""
        )
        if isinstance(system_time := windows.get("systemTime"), str):
            with suppress(FieldError):
                when = parse_time(system_time, "data.win.system.systemTime")
    return raw_event(
        source,
        str(alert["id"]),
        when,
        _text(host),
        _text(program),
        message or str(lookup(alert, "rule.description") or ""),
        alert,
        time_without_zone=zoneless,
    )


def _line_time(line: SyslogRecord | None, alerted: datetime | None) -> tuple[datetime | None, bool]:
    """The event's time and whether it lacks a zone: the line's (zoned by the alert's time when
    it has none of its own), else the alert's."""
    if line is None or line.time is None:
        return alerted, False
    if line.zoned:
        return line.time, False
    if alerted is not None and (zoned := wall_clock_at(line.time, alerted, ALERT_LAG)):
        return zoned, False
    return line.time, True


def _unquoted(value: Any) -> str | None:
    text = _text(value)
    if text and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
