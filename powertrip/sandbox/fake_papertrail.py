"""A local stand-in for Papertrail's search API (`GET /api/v1/events/search.json`), for tests,
benches and trying polling without a Papertrail account.

It pages the way Papertrail documents: the search walks from the newest end of the window
backwards, stops at `limit` events (`reached_record_limit`) or when its per-request budget runs
out (`scan_budget` events examined stands in for Papertrail's ~5 second time limit:
`reached_time_limit`, possibly with no events), and answers the events oldest first with
`min_id` = the oldest id examined, so `max_id = min_id` continues the search. It can be taken
down (HTTP 503) and records every request it served.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

MAX_LIMIT = 10_000


class StoredEvent(BaseModel):
    id: int
    received_at: datetime
    hostname: str
    program: str
    message: str
    severity: str = "Info"
    facility: str = "Auth"

    def wire(self) -> dict[str, Any]:
        """The JSON Papertrail sends for one event (ids are strings on the wire)."""
        when = self.received_at.isoformat()
        return {
            "id": str(self.id),
            "generated_at": when,
            "received_at": when,
            "display_received_at": self.received_at.strftime("%b %d %H:%M:%S"),
            "source_id": 1,
            "source_name": self.hostname,
            "hostname": self.hostname,
            "source_ip": "203.0.113.1",
            "facility": self.facility,
            "severity": self.severity,
            "program": self.program,
            "message": self.message,
        }


class FakePapertrail:
    def __init__(self, token: str, scan_budget: int = 1_000_000) -> None:
        self.token = token
        self.scan_budget = scan_budget
        self.events: list[StoredEvent] = []
        self.requests: list[dict[str, str]] = []
        self.down = False
        self._ids = itertools.count(700_000_000_000_000_000)

    def reset(self) -> None:
        self.events.clear()
        self.requests.clear()
        self.down = False

    def add(
        self,
        message: str,
        *,
        hostname: str = "bastion",
        program: str = "sshd",
        received_at: datetime | None = None,
    ) -> StoredEvent:
        """Log one line; ids only grow, like Papertrail's (with gaps, like Papertrail's)."""
        next(self._ids)
        event = StoredEvent(
            id=next(self._ids),
            received_at=received_at or datetime.now(UTC),
            hostname=hostname,
            program=program,
            message=message,
        )
        self.events.append(event)
        return event

    def search(self, params: dict[str, str]) -> dict[str, Any]:
        limit = min(int(params.get("limit", "1000")), MAX_LIMIT)
        min_id = int(params["min_id"]) if "min_id" in params else None
        max_id = int(params["max_id"]) if "max_id" in params else None
        min_time = _epoch(params.get("min_time"))
        max_time = _epoch(params.get("max_time"))
        query = params.get("q")
        candidates = [
            e
            for e in self.events
            if (min_id is None or e.id > min_id)
            and (max_id is None or e.id < max_id)
            and (min_time is None or e.received_at >= min_time)
            and (max_time is None or e.received_at <= max_time)
        ]
        found: list[StoredEvent] = []
        oldest_examined: int | None = None
        reached = {"reached_record_limit": False, "reached_time_limit": False}
        examined = 0
        # Newest first, as Papertrail searches.
        for event in sorted(candidates, key=lambda e: e.id, reverse=True):
            if len(found) >= limit:
                reached["reached_record_limit"] = True
                break
            if examined >= self.scan_budget:
                reached["reached_time_limit"] = True
                break
            examined += 1
            oldest_examined = event.id
            if query is None or query.lower() in event.message.lower():
                found.append(event)
        reached_beginning = not (reached["reached_record_limit"] or reached["reached_time_limit"])
        found.sort(key=lambda e: e.id)
        answer: dict[str, Any] = {
            "events": [e.wire() for e in found],
            "reached_beginning": reached_beginning,
            **{k: v for k, v in reached.items() if v},
        }
        if oldest_examined is not None:
            answer["min_id"] = str(oldest_examined)
        if found:
            answer["max_id"] = str(found[-1].id)
            answer["min_time_at"] = found[0].received_at.isoformat()
            answer["max_time_at"] = found[-1].received_at.isoformat()
        return answer


def _epoch(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


class NewEvent(BaseModel):
    message: str
    hostname: str = "bastion"
    program: str = "sshd"
    age_seconds: float = Field(default=0.0, description="How long ago it was received.")


def create_fake_papertrail_app(fake: FakePapertrail) -> FastAPI:
    app = FastAPI(title="Fake Papertrail search API")

    @app.get("/api/v1/events/search.json")
    async def search(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        fake.requests.append(params)
        if request.headers.get("X-Papertrail-Token") != fake.token:
            return JSONResponse({"message": "Authentication failed"}, status_code=401)
        if fake.down:
            return JSONResponse({"message": "Service Unavailable"}, status_code=503)
        try:
            return JSONResponse(fake.search(params))
        except ValueError as exc:
            return JSONResponse({"message": f"bad parameter: {exc}"}, status_code=400)

    @app.post("/sandbox/events")
    async def log_line(event: NewEvent) -> dict[str, Any]:
        """Log a line into the fake, as a host would: `curl -d '{"message": ...}'`."""
        stored = fake.add(
            event.message,
            hostname=event.hostname,
            program=event.program,
            received_at=datetime.now(UTC) - timedelta(seconds=event.age_seconds),
        )
        return stored.wire()

    return app
