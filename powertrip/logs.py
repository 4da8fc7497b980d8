"""Powertrip's logs, in every process: JSON (or text) lines that carry the event id they are about,
and access logs that never keep a secret.

- `configure_logging`: the service entry points' handlers (`POWERTRIP_LOG_FORMAT=json`).
- `EventIdInterceptor`: the worker's activities log with the id of the event whose workflow
  scheduled them (slack_sdk's and aiohttp's lines too).
- `redact_access_logs`: the API's access log without webhook tokens or step-up link secrets.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

if TYPE_CHECKING:
    from powertrip.settings import Settings


EVENT_ID: ContextVar[str | None] = ContextVar("powertrip_event_id", default=None)

# Attributes every LogRecord has; anything else came from `extra=` and is worth printing.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def event_id_of(record: logging.LogRecord) -> str | None:
    """The event a log line is about: explicit `extra`, else the Temporal workflow id (which is
    the event id) that the SDK's workflow/activity loggers attach, else the current context."""
    explicit = getattr(record, "event_id", None)
    if explicit:
        return str(explicit)
    for attr in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, attr, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return str(info["workflow_id"])
    return EVENT_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, event_id, and any `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event_id = event_id_of(record)
        if event_id:
            line["event_id"] = event_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        event_id = event_id_of(record)
        return f"{text} [event {event_id}]" if event_id and event_id not in text else text


# Query parameters whose value is a secret. Compared after percent-decoding, as the server
# decodes them before authenticating: `?t%6Fken=` is `?token=`.
SECRET_PARAMETERS = frozenset({"token", "access_token", "api_key", "apikey", "secret", "password"})
_QUERY = re.compile(r"\?[^\s\"]*")
REDACTED = "[redacted]"


def _decoded_name(name: str) -> str:
    # Decode until stable (a few rounds): whatever the encoding a client chose, the name the
    # server acts on, or one a proxy would decode again, is what decides.
    for _ in range(4):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower()


def redact_query(text: str) -> str:
    """`/webhooks/papertrail?t%6Fken=s3cret&x=1` → `/webhooks/papertrail?t%6Fken=[redacted]&x=1`:
    every query string in `text` keeps its shape, with the value of each secret parameter
    (`SECRET_PARAMETERS`, names compared percent-decoded and ignoring case) replaced."""

    def one(found: re.Match[str]) -> str:
        pairs = []
        for pair in found.group(0)[1:].split("&"):
            name, equals, _ = pair.partition("=")
            secret = equals and _decoded_name(name) in SECRET_PARAMETERS
            pairs.append(f"{name}={REDACTED}" if secret else pair)
        return "?" + "&".join(pairs)

    return _QUERY.sub(one, text) if "?" in text else text


# A step-up or passkey link: `/verify/<Slack user>.<secret>` (api/routes/passkeys.py).
_LINK_SECRET = re.compile(r"(/(?:verify|passkeys/register)/[A-Z0-9]+\.)[A-Za-z0-9_-]+")


class RedactQuerySecrets(logging.Filter):
    """Providers that cannot set headers (Papertrail) put the webhook secret in `?token=`, and a
    step-up link's secret is in its path: access logs keep neither, however the name or value
    of a query parameter is encoded."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _LINK_SECRET.sub(rf"\1{REDACTED}", redact_query(arg))
                if isinstance(arg, str)
                else arg
                for arg in record.args
            )
        return True


def redact_access_logs() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuerySecrets) for f in access.filters):
        access.addFilter(RedactQuerySecrets())


def configure_logging(settings: Settings) -> None:
    """For the service entry points (worker, `python -m api`), not for library use or tests."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn installs its own handlers; route its lines through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if settings.log_format == "json":
        # The workflow/activity info is a field of the JSON line, not text appended to it.
        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False


class _EventIdActivities(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        token = EVENT_ID.set(activity.info().workflow_id)
        try:
            return await super().execute_activity(input)
        finally:
            EVENT_ID.reset(token)


class EventIdInterceptor(Interceptor):
    """Every line logged while an activity runs (ours, slack_sdk's, aiohttp's) carries the id
    of the event whose workflow scheduled it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _EventIdActivities(next)
