"""A local stand-in for PagerDuty's Events API v2, for tests and the sandbox: what PagerDuty would
have received, and the incidents it would have opened.

It speaks the wire format PagerDuty documents ("Send an Alert Event"): `POST /v2/enqueue` with a
JSON event (`routing_key`, `event_action`, `dedup_key`, `payload`), answered `202 {"status":
"success", "message": "Event processed", "dedup_key": ...}`, or `400 {"status": "invalid event",
"message": "Event object is invalid", "errors": [...]}`. The routing-key errors are PagerDuty's
own words; the other error texts, and the bodies of injected 429s and 5xx, are this fake's.

Events are applied like PagerDuty applies them: a trigger opens an incident, or adds to the open
one with the same `dedup_key` and routing key; acknowledge and resolve change the open one, and
are accepted but dropped when none is open; a trigger after a resolve opens a new incident.

`/_fake/failures` makes the next N calls answer 429 (with `Retry-After`) or a 5xx; `/_fake/events`
and `/_fake/incidents` are the record as JSON, `/` the same as a page.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import itertools
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from powertrip.sandbox.tls import ensure_certificate

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")
FAKE_ROUTING_KEY = "powertripsandboxfakeroutingkey00"
"""The routing key `powertrip dev` gives its worker (32 letters and digits, like a real one)."""


class InjectedFailure(BaseModel):
    """Answer the next `times` events with `status` (429 or 5xx) instead of processing them;
    or, without a status, process them and answer only after `delay` seconds (an answer the
    client gives up on: the event was applied all the same)."""

    status: int | None = Field(default=None, ge=400, le=599)
    times: int = Field(default=1, ge=1)
    retry_after: int | None = Field(default=None, description="Seconds, for a 429.")
    delay: float = Field(default=0.0, ge=0, le=60, description="Seconds before answering.")


class Received(BaseModel):
    """One request to `/v2/enqueue`, and what the fake answered."""

    number: int
    at: datetime
    http_status: int
    event: Any = Field(description="The JSON body as sent (the routing key shortened).")
    answer: dict[str, Any]
    outcome: str = Field(description="What it did: opened #3, added to #3, dropped, ...")


class LogEntry(BaseModel):
    at: datetime
    action: str
    received: int = Field(description="Its `Received.number`.")


class Incident(BaseModel):
    number: int
    dedup_key: str
    service: str = Field(description="A fingerprint of the routing key it came through.")
    status: Literal["triggered", "acknowledged", "resolved"] = "triggered"
    summary: str
    source: str
    severity: str
    custom_details: dict[str, Any] = Field(default_factory=dict)
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    log: list[LogEntry] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != "resolved"


class SavedState(BaseModel):
    received: list[Received] = Field(default_factory=list)
    incidents: list[Incident] = Field(default_factory=list)


def _service(routing_key: str) -> str:
    """Incidents belong to the routing key's service; the record never shows the key itself."""
    return "svc-" + hashlib.sha256(routing_key.encode()).hexdigest()[:12]


def _short(key: object) -> str:
    """How the record shows a routing key: its last four characters."""
    return "*" + str(key)[-4:] if isinstance(key, str) and key else str(key)


def problems(event: Any, routing_keys: set[str] | None) -> list[str]:
    """Why PagerDuty would refuse `event` (empty: it is valid)."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    if isinstance(key, str) and not key.isalnum():
        errors.append("'routing_key' cannot contain non-alphanumeric characters.")
    if not errors and routing_keys is not None and key not in routing_keys:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' must be one of trigger, acknowledge, resolve")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required for {action} events")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("'payload.summary' is missing")
        elif len(summary) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("'payload.source' is missing")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' must be one of critical, error, warning, info")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict | list | str | int | float):
            errors.append("'payload.custom_details' must be JSON")
    return errors


class FakePagerDuty:
    """The Events API's state. `routing_keys`: the integration keys that exist (None: any
    well-formed key); `state`: a JSON file the record is kept in across restarts."""

    def __init__(self, routing_keys: set[str] | None = None, state: Path | None = None) -> None:
        self.routing_keys = routing_keys
        self.received: list[Received] = []
        self.incidents: list[Incident] = []
        self.failures: list[InjectedFailure] = []
        self.state = state
        if state is not None and state.exists():
            saved = SavedState.model_validate_json(state.read_text())
            self.received, self.incidents = saved.received, saved.incidents
        self._numbers = itertools.count(len(self.received) + 1)

    def save(self) -> None:
        if self.state is None:
            return
        partial = self.state.with_name(self.state.name + ".partial")
        partial.write_text(
            SavedState(received=self.received, incidents=self.incidents).model_dump_json()
        )
        partial.replace(self.state)

    def reset(self) -> None:
        self.received.clear()
        self.incidents.clear()
        self.failures.clear()
        self.save()

    def open_incident(self, routing_key: str, dedup_key: str) -> Incident | None:
        return next(
            (
                i
                for i in reversed(self.incidents)
                if i.open and i.dedup_key == dedup_key and i.service == _service(routing_key)
            ),
            None,
        )

    def incidents_for(self, dedup_key: str) -> list[Incident]:
        return [i for i in self.incidents if i.dedup_key == dedup_key]

    def enqueue(self, event: Any) -> tuple[int, dict[str, Any], dict[str, str], float]:
        """Apply one request body; the HTTP status, JSON answer and headers to send, and how
        long to wait before sending them."""
        number = next(self._numbers)
        now = datetime.now(UTC)
        failure = self._next_failure()
        if failure is not None and failure.status is not None:
            status, answer, headers, outcome = self._fail(failure.status, failure.retry_after)
        else:
            status, answer, headers, outcome = self._apply(event, number, now)
        shown = (
            {**event, "routing_key": _short(event.get("routing_key"))}
            if isinstance(event, dict)
            else event
        )
        self.received.append(
            Received(
                number=number,
                at=now,
                http_status=status,
                event=shown,
                answer=answer,
                outcome=outcome,
            )
        )
        self.save()
        return status, answer, headers, failure.delay if failure is not None else 0.0

    def _next_failure(self) -> InjectedFailure | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        failure.times -= 1
        if failure.times <= 0:
            self.failures.pop(0)
        return failure

    @staticmethod
    def _fail(
        status: int, retry_after: int | None
    ) -> tuple[int, dict[str, Any], dict[str, str], str]:
        if status == 429:
            headers = {"Retry-After": str(retry_after)} if retry_after else {}
            answer = {"status": "throttle event", "message": "Too many events; retry later"}
            return 429, answer, headers, "throttled (injected)"
        answer = {"status": "error", "message": f"Injected HTTP {status}"}
        return status, answer, {}, f"failed with HTTP {status} (injected)"

    def _apply(
        self, event: Any, number: int, now: datetime
    ) -> tuple[int, dict[str, Any], dict[str, str], str]:
        errors = problems(event, self.routing_keys)
        if errors:
            answer = {"status": "invalid event", "message": "Event object is invalid"}
            return 400, {**answer, "errors": errors}, {}, "refused"
        action, key = event["event_action"], event.get("dedup_key") or uuid.uuid4().hex
        incident = self.open_incident(event["routing_key"], key)
        entry = LogEntry(at=now, action=action, received=number)
        if action == "trigger" and incident is None:
            payload = event["payload"]
            incident = Incident(
                number=len(self.incidents) + 1,
                dedup_key=key,
                service=_service(event["routing_key"]),
                summary=payload["summary"],
                source=payload["source"],
                severity=payload["severity"],
                custom_details=payload.get("custom_details") or {},
                opened_at=now,
                log=[entry],
            )
            self.incidents.append(incident)
            outcome = f"opened incident #{incident.number}"
        elif incident is None:
            outcome = f"dropped: no open incident with this dedup_key to {action}"
        else:
            incident.log.append(entry)
            if action == "acknowledge" and incident.status == "triggered":
                incident.status, incident.acknowledged_at = "acknowledged", now
            elif action == "resolve":
                incident.status, incident.resolved_at = "resolved", now
            outcome = f"{action} on incident #{incident.number} (now {incident.status})"
        answer = {"status": "success", "message": "Event processed", "dedup_key": key}
        return 202, answer, {}, outcome


def create_fake_pagerduty_app(fake: FakePagerDuty) -> FastAPI:
    app = FastAPI(title="Fake PagerDuty Events API v2")
    app.state.fake = fake

    @app.post("/v2/enqueue")
    async def enqueue(request: Request) -> JSONResponse:
        try:
            event = json.loads(await request.body())
        except ValueError:
            event = None
        status, answer, headers, delay = fake.enqueue(event)
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse(answer, status_code=status, headers=headers)

    @app.post("/_fake/failures")
    async def inject(failure: InjectedFailure) -> dict[str, Any]:
        fake.failures.append(failure)
        return {"ok": True}

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        fake.reset()
        return {"ok": True}

    @app.get("/_fake/events")
    async def events() -> list[Received]:
        return fake.received

    @app.get("/_fake/incidents")
    async def incidents() -> list[Incident]:
        return fake.incidents

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return render_page(fake)

    return app


_BADGE = {"triggered": "#e01e5a", "acknowledged": "#b27b00", "resolved": "#007a5a"}


def render_page(fake: FakePagerDuty) -> str:
    """What PagerDuty would have received, and the incidents it would have opened."""
    esc = html.escape
    rows = []
    for incident in reversed(fake.incidents):
        log = ", ".join(f"{e.action} {e.at:%H:%M:%S}" for e in incident.log)
        details = json.dumps(incident.custom_details, indent=2, ensure_ascii=False)
        rows.append(
            f'<div class="incident"><h3>#{incident.number} '
            f'<span class="badge" style="background:{_BADGE[incident.status]}">'
            f"{incident.status}</span> <small>{esc(incident.severity)}</small> "
            f"{esc(incident.summary)}</h3>"
            f"<p><code>{esc(incident.dedup_key)}</code> · source {esc(incident.source)} · "
            f"opened {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC · {esc(log)}</p>"
            f"<details><summary>custom details</summary><pre>{esc(details)}</pre></details>"
            "</div>"
        )
    received = "".join(
        f"<tr><td>{r.number}</td><td>{r.at:%H:%M:%S}</td><td>{r.http_status}</td>"
        f"<td>{esc(str(r.event.get('event_action')) if isinstance(r.event, dict) else '?')}</td>"
        f"<td><code>{esc(str(r.answer.get('dedup_key', '')))}</code></td>"
        f"<td>{esc(r.outcome)}</td></tr>"
        for r in reversed(fake.received[-200:])
    )
    incidents = "".join(rows) or '<p class="empty">No incidents: nothing has paged yet.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Powertrip sandbox · fake PagerDuty</title>
<style>
 body {{ font:15px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
        margin:0; background:#f6f6f6; color:#1d1c1d; }}
 header {{ background:#06ac38; color:#fff; padding:10px 16px; }}
 header h1 {{ font-size:16px; margin:0; }}
 main {{ max-width:960px; margin:0 auto; padding:12px; }}
 .incident {{ background:#fff; border:1px solid #ddd; border-radius:6px; padding:8px 12px;
             margin:10px 0; }}
 .incident h3 {{ font-size:15px; margin:4px 0; }}
 .badge {{ color:#fff; border-radius:3px; padding:1px 6px; font-size:12px; }}
 code, pre {{ font:12px Menlo, Consolas, monospace; }}
 table {{ border-collapse:collapse; width:100%; background:#fff; font-size:13px; }}
 td, th {{ border-bottom:1px solid #eee; padding:4px 6px; text-align:left; }}
 .empty {{ color:#666; }}
</style></head>
<body><header><h1>Fake PagerDuty · what PagerDuty would have received</h1></header>
<main>
<h2>Incidents</h2>{incidents}
<h2>Events received (newest first; JSON at <a href="/_fake/events">/_fake/events</a>)</h2>
<table><tr><th>#</th><th>at (UTC)</th><th>HTTP</th><th>action</th><th>dedup_key</th>
<th>what it did</th></tr>{received}</table>
</main></body></html>"""


async def _serve(app: FastAPI, args: argparse.Namespace, cert: Path, key: Path) -> None:
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_level="warning",
                ssl_certfile=str(cert),
                ssl_keyfile=str(key),
            )
        )
    ]
    if args.page_port:
        # Browsers would warn about the self-signed certificate: the page also over plain HTTP.
        servers.append(
            uvicorn.Server(
                uvicorn.Config(app, host=args.host, port=args.page_port, log_level="warning")
            )
        )
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    """`python -m powertrip.sandbox.fake_pagerduty`: the Events API over https on `--port`
    (certificate written to `--cert` unless it exists), the page over http on `--page-port`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="Events API (https).")
    parser.add_argument("--page-port", type=int, help="The page and JSON record (http).")
    parser.add_argument("--cert", type=Path, required=True, help="PEM certificate (trust this).")
    parser.add_argument("--key", type=Path, required=True, help="PEM private key.")
    parser.add_argument(
        "--routing-key", action="append", help="An integration key that exists (else any)."
    )
    parser.add_argument("--state", type=Path, help="JSON file keeping the record.")
    args = parser.parse_args()
    ensure_certificate(args.cert, args.key, "Powertrip fake PagerDuty")
    fake = FakePagerDuty(set(args.routing_key) if args.routing_key else None, state=args.state)
    asyncio.run(_serve(create_fake_pagerduty_app(fake), args, args.cert, args.key))


if __name__ == "__main__":
    main()
