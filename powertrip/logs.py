"""Powertrip's logs, in every process: JSON (or text) lines that carry the event id they are about,
and access logs that never keep a secret.

- `configure_logging`: the service entry points' handlers (`POWERTRIP_LOG_FORMAT=json`).
- `EventIdInterceptor`: the worker's activities log with the id of the event whose workflow
  scheduled them (slack_sdk's and aiohttp's lines too).
- `redact_access_logs`: access logs and HTTP clients' request lines without webhook tokens,
  step-up link secrets or any query value the API does not document.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Collection
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


# A query parameter's value reaches a log only when the API documents the parameter (its OpenAPI
# query parameters: `status`, `page_size`...; credentials are security schemes, never documented
# parameters). Any other value may be a secret, whatever its name, spelling, quoting or
# separator (`?a="&token=`, `;token=`, `t%6Fken=`, `TOKEN=`, `token%3D...`), so it is redacted:
# a denylist of secret names is one spelling away from leaking.
REDACTED = "[redacted]"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_SEPARATOR = re.compile(r"([&;])")
# A query inside free text runs to the next blank: quotes are part of it (`?a="&token=s`).
_QUERY = re.compile(r"\?\S*")
# A step-up or passkey link: `/verify/<Slack user>.<secret>` (api/routes/passkeys.py).
_LINK_SECRET = re.compile(r"(/(?:verify|passkeys/register)/[A-Z0-9]+\.)[A-Za-z0-9_-]+")


def _decoded(text: str) -> str:
    # Decode until stable (a few rounds): whatever the encoding a client chose, the name the
    # server acts on, or one a proxy would decode again, is what decides.
    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def redact_query(query: str, public: Collection[str] = ()) -> str:
    """A query string (without its `?`) as logs keep it: split on `&` and `;`, each `name=value`
    whose name, percent-decoded, is in `public` as given; any other value `[redacted]` (its
    name kept when it is a plain one, e.g. `token=[redacted]`), and a piece that is no plain
    `name=...` wholly `[redacted]`. Separators stay as they were."""
    kept = []
    for piece in _SEPARATOR.split(query):
        if piece in ("", "&", ";"):
            kept.append(piece)
            continue
        name, equals, _ = piece.partition("=")
        if equals and _decoded(name) in public:
            kept.append(piece)
        elif equals and _PLAIN_NAME.fullmatch(name):
            kept.append(f"{name}={REDACTED}")
        else:
            kept.append(REDACTED)
    return "".join(kept)


def redact_target(target: str, public: Collection[str] = ()) -> str:
    """A request target or URL (`/webhooks/papertrail?token=s`, `https://host/p?q`) as logs keep
    it: a step-up link's secret masked in the path, the query through `redact_query`, and a
    fragment dropped (servers never see one; a client could put anything there)."""
    head, question, query = target.partition("?")
    head = _LINK_SECRET.sub(rf"\1{REDACTED}", head.partition("#")[0])
    if not question:
        return head
    return f"{head}?{redact_query(query.partition('#')[0], public)}"


def redact_text(text: str, public: Collection[str] = ()) -> str:
    """Free text with every query string in it (from a `?` to the next blank) redacted, and
    step-up link secrets masked."""
    if "?" in text:
        text = _QUERY.sub(lambda found: "?" + redact_query(found[0][1:], public), text)
    return _LINK_SECRET.sub(rf"\1{REDACTED}", text)


class RedactQuerySecrets(logging.Filter):
    """Providers that cannot set headers (Papertrail) put the webhook secret in `?token=`, and a
    step-up link's secret is in its path: the access log (uvicorn's, whose arguments hold the
    request target) and HTTP clients' request lines (httpx's, a URL object) keep neither. Only
    the values of `public` query parameters are kept (`redact_query`)."""

    def __init__(self, public: Collection[str] = ()) -> None:
        super().__init__()
        self.public: set[str] = set(public)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(self._argument(arg) for arg in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact_text(record.msg, self.public)
        return True

    def _argument(self, arg: object) -> object:
        if type(arg).__name__ == "URL":  # httpx's, yarl's, Starlette's: str() is the whole URL
            arg = str(arg)
        if not isinstance(arg, str):
            return arg
        if arg.startswith(("/", "http://", "https://")):
            return redact_target(arg, self.public)
        return redact_text(arg, self.public)


# Loggers that write request targets or URLs: uvicorn's access log, and httpx's request lines
# (the SNS subscription confirmation's `Token`, any provider URL).
_URL_LOGGERS = ("uvicorn.access", "httpx")


def redact_access_logs(public: Collection[str] = ()) -> None:
    """Install `RedactQuerySecrets` on the loggers that write URLs (once; `public` adds to the
    parameters whose values are kept)."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        found = next((f for f in logger.filters if isinstance(f, RedactQuerySecrets)), None)
        if found is None:
            logger.addFilter(RedactQuerySecrets(public))
        else:
            found.public.update(public)


def configure_logging(settings: Settings) -> None:
    """For the service entry points (worker, `python -m api`), not for library use or tests."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    redact_access_logs()
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
