"""Paging on-call through PagerDuty's Events API v2: trigger, acknowledge and resolve, each one
activity whose failures are classified for Temporal's retries.

Why the `pagerduty` package (7.x, PagerDuty's own, the maintained successor of `pdpyras`, which
PagerDuty stopped maintaining in 2025): it composes Events API v2 events (payload, `dedup_key`,
the routing key in the body), checks the answer carries a `dedup_key`, and formats PagerDuty's
errors. `pdpyras` does the same over `requests` but gets no fixes any more. Neither fits Temporal
as it comes, so the client is configured to send exactly one HTTP request per activity attempt
and leave every retry to Temporal (durable across worker restarts, visible in the Web UI, and
able to honour `Retry-After`):

- its 429 handling retries without limit, sleeping in the calling thread and ignoring
  `Retry-After`; its 5xx handling retries up to 6 times with growing sleeps (minutes); its
  network handling retries 3 times. Here `postprocess` (its documented per-response hook) raises
  on any non-2xx answer, `retry` is emptied and `max_network_attempts` is 0;
- it is synchronous (`httpx2`), so each call runs in a thread (`asyncio.to_thread`) with its
  own client: the client keeps the last answer for its status and message, and nothing is
  shared between threads. `httpx2` is a second HTTP stack beside `httpx`; pages are rare, so
  one client (and TLS handshake) per page costs nothing that matters;
- it accepts only `https://` base URLs. Tests and the sandbox therefore serve the fake Events API
  over TLS with their own certificate, trusted through `POWERTRIP_PAGERDUTY_CA_FILE`.

Errors: 429 retries after `Retry-After` (`next_retry_delay`; 30 s without one, as PagerDuty
suggests); 5xx, 408 and network errors retry with the policy's backoff; 400 (an invalid event,
a bad routing key) and every other refusal fail at once as `PagerDutyPermanentError`, with
PagerDuty's own `errors` in the message. Every attempt is counted by outcome
(`powertrip_pagerduty_events`, activities/metrics.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pagerduty
from httpx2 import Response
from pagerduty.common import http_error_message
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from powertrip.contracts.paging import (
    PAGERDUTY_PERMANENT,
    PageAction,
    PageResult,
    PageTrigger,
    PageUpdate,
)
from powertrip.escalation import EscalationPolicy, StepKind
from powertrip.settings import Settings

log = logging.getLogger("powertrip.pagerduty")

REQUEST_TIMEOUT = 10.0
"""Seconds for one HTTP request; PAGING_CALL_TIMEOUT (the activity's) leaves room around it."""
RATE_LIMIT_WAIT = timedelta(seconds=30)
"""After a 429 without `Retry-After` (PagerDuty's advice: retry about 30 s apart)."""
MAX_RETRY_AFTER = timedelta(hours=1)


class _OneRequest(pagerduty.EventsApiV2Client):
    """The Events API client, sending one request per call and raising on any refusal."""

    max_network_attempts = 0

    def __init__(
        self, routing_key: str, base_url: str, verify: ssl.SSLContext | bool, timeout: float
    ) -> None:
        super().__init__(routing_key, base_url=base_url, verify=verify)
        self.retry = {}
        self.timeout = timeout  # type: ignore[assignment]  # seconds; httpx2 takes a float
        self.answer: Response | None = None

    def postprocess(self, response: Response) -> None:
        self.answer = response
        if not response.is_success:
            context = "sending an event to the Events API"
            raise pagerduty.HttpError(http_error_message(response, context), response)


def _retry_after(response: Response) -> timedelta:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return RATE_LIMIT_WAIT
    try:
        wait = timedelta(seconds=float(value))
    except ValueError:
        try:
            wait = parsedate_to_datetime(value) - datetime.now(UTC)
        except (TypeError, ValueError):
            return RATE_LIMIT_WAIT
    return min(max(wait, timedelta(seconds=1)), MAX_RETRY_AFTER)


def _refusal(response: Response) -> str:
    """PagerDuty's words: `Event object is invalid: Invalid routing key`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:200]
    errors = body.get("errors")
    message = str(body.get("message") or body.get("status") or "")
    if isinstance(errors, list) and errors:
        return f"{message}: {'; '.join(str(e) for e in errors)}" if message else "; ".join(errors)
    return message or response.text[:200]


def _untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def classify(exc: Exception) -> tuple[ApplicationError, str]:
    """The error Temporal should act on, and the outcome to count."""
    response = exc.response if isinstance(exc, pagerduty.Error) else None
    if not isinstance(exc, pagerduty.Error):
        # UrlError, ValueError, TypeError: our request or settings are wrong; no retry helps.
        return (
            ApplicationError(
                f"PagerDuty event not sent: {exc}", type=PAGERDUTY_PERMANENT, non_retryable=True
            ),
            "refused",
        )
    if response is None:
        cause = exc.__cause__ or exc
        untrusted = _untrusted_certificate(exc)
        if untrusted is not None:
            return (
                ApplicationError(
                    f"PagerDuty's certificate is not trusted: {untrusted.verify_message} (a "
                    "TLS-inspecting proxy or a local fake needs POWERTRIP_PAGERDUTY_CA_FILE)",
                    type=PAGERDUTY_PERMANENT,
                    non_retryable=True,
                ),
                "refused",
            )
        return (
            ApplicationError(
                f"PagerDuty unreachable: {type(cause).__name__}: {cause}",
                type="PagerDutyUnreachable",
            ),
            "unreachable",
        )
    status = response.status_code
    if status == 429:
        wait = _retry_after(response)
        return (
            ApplicationError(
                f"PagerDuty rate limit (HTTP 429); retrying after {wait.total_seconds():g}s",
                type="PagerDutyRateLimited",
                next_retry_delay=wait,
            ),
            "rate_limited",
        )
    if status >= 500 or status == 408 or response.is_success:
        # A 2xx without a dedup_key is a broken answer (a proxy's page?): try again.
        return (
            ApplicationError(
                f"PagerDuty unavailable (HTTP {status}): {_refusal(response)}",
                type="PagerDutyUnavailable",
            ),
            "unavailable",
        )
    return (
        ApplicationError(
            f"PagerDuty refused the event (HTTP {status}): {_refusal(response)}",
            status,
            type=PAGERDUTY_PERMANENT,
            non_retryable=True,
        ),
        "refused",
    )


class PagerDutyActivities:
    """The paging activities. Without a routing key each call sends nothing and answers
    `skipped`, so the timeline says why nobody was paged."""

    def __init__(
        self,
        routing_key: str | None,
        events_url: str,
        ca_file: Path | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.routing_key = routing_key
        self.events_url = events_url
        self.request_timeout = request_timeout
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PagerDutyActivities:
        """The activities for `POWERTRIP_PAGERDUTY_ROUTING_KEY`, `_EVENTS_URL` and `_CA_FILE`."""
        key = settings.pagerduty_routing_key
        return cls(
            key.get_secret_value() if key else None,
            settings.pagerduty_events_url,
            settings.pagerduty_ca_file,
        )

    @activity.defn
    async def trigger_page(self, request: PageTrigger) -> PageResult:
        """Open (or, for a dedup_key already open, add to) an alert that pages on-call."""
        payload = {
            key: value
            for key, value in (
                ("component", request.component),
                ("group", request.group),
                ("class", request.event_class),
                ("timestamp", request.timestamp),
            )
            if value is not None
        }
        return await self._send(
            PageAction.TRIGGER,
            request.dedup_key,
            lambda client: client.trigger(
                request.summary,
                request.source,
                dedup_key=request.dedup_key,
                severity=request.severity.value,
                payload=payload,
                custom_details=request.custom_details,
            ),
        )

    @activity.defn
    async def acknowledge_page(self, request: PageUpdate) -> PageResult:
        """Someone is on it: PagerDuty stops notifying for the alert."""
        return await self._send(
            PageAction.ACKNOWLEDGE,
            request.dedup_key,
            lambda client: client.acknowledge(request.dedup_key),
        )

    @activity.defn
    async def resolve_page(self, request: PageUpdate) -> PageResult:
        """The event was decided: the alert is closed (PagerDuty drops a resolve for an alert
        that is not open, and still answers success)."""
        return await self._send(
            PageAction.RESOLVE,
            request.dedup_key,
            lambda client: client.resolve(request.dedup_key),
        )

    async def _send(
        self,
        action: PageAction,
        dedup_key: str,
        call: Callable[[pagerduty.EventsApiV2Client], Any],
    ) -> PageResult:
        if self.routing_key is None:
            metrics.count_page(action.value, "skipped")
            return PageResult(
                action=action,
                dedup_key=dedup_key,
                status="skipped",
                message="not sent: POWERTRIP_PAGERDUTY_ROUTING_KEY is not set",
            )
        try:
            result = await asyncio.to_thread(self._request, action, dedup_key, call)
        except Exception as exc:
            failure, outcome = classify(exc)
            metrics.count_page(action.value, outcome)
            log.warning("PagerDuty %s %s failed: %s", action.value, dedup_key, failure.message)
            raise failure from exc
        metrics.count_page(action.value, "accepted")
        log.info("PagerDuty %s %s: %s", action.value, dedup_key, result.message)
        return result

    def _request(
        self,
        action: PageAction,
        dedup_key: str,
        call: Callable[[pagerduty.EventsApiV2Client], Any],
    ) -> PageResult:
        assert self.routing_key is not None
        with _OneRequest(
            self.routing_key, self.events_url, self.verify, self.request_timeout
        ) as client:
            call(client)
            answer = client.answer
        assert answer is not None  # postprocess saw the response the call returned
        body = answer.json()
        return PageResult(
            action=action,
            dedup_key=str(body.get("dedup_key") or dedup_key),
            status=str(body.get("status", "")),
            message=str(body.get("message", "")),
            http_status=answer.status_code,
        )


def paging_unset_warning(settings: Settings, policies: list[EscalationPolicy]) -> str | None:
    """For the worker's start: a policy pages but no routing key is set."""
    if settings.pagerduty_routing_key is not None:
        return None
    if any(policy.steps_of(StepKind.PAGE) for policy in policies):
        return (
            "the escalation policy pages on-call, but POWERTRIP_PAGERDUTY_ROUTING_KEY is not "
            "set: pages will be recorded as skipped (a Not me too)"
        )
    return None
