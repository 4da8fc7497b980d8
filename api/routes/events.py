"""The record over HTTP: list and show events, and answer the HIDS's "was this login approved?".

All reads come from Temporal visibility and the workflow memo (powertrip.services.views and
hids), so they work with no worker running and for events long finished (until the namespace
retention expires).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ApiAuth, SettingsDep, TemporalDep, web_ui
from powertrip.durations import parse_duration
from powertrip.hosts import HostMatch
from powertrip.models import EventKind, RecordTime
from powertrip.services.hids import MatchAnswer, MatchQuestion, match
from powertrip.services.views import EventPage, EventView, list_events, show_event
from powertrip.settings import Settings
from powertrip.sources import describe_validation_error
from powertrip.visibility import (
    MAX_PAGE_SIZE,
    EventFilter,
    RecordError,
    aware,
    page_token_key,
)

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[ApiAuth])


class Problem(BaseModel):
    """An error's body."""

    detail: str = Field(description="What was wrong, in words.")


class FieldError(BaseModel):
    """One invalid part of a request, as FastAPI reports it (`loc`: where, e.g. `["query",
    "since"]`; `msg`: why; `type`: pydantic's error type; more keys may follow)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    """A 422's body: FastAPI's list of invalid parts when a parameter does not parse, or, for a
    question that parses but cannot be asked (a value Temporal cannot search for, `until`
    before `since`), what was wrong in words (the RecordError handler, api.main)."""

    detail: str | list[FieldError]


def invalid(description: str) -> dict[int | str, dict[str, Any]]:
    """The 422 of a route that takes input, documented with both bodies it may carry. Without
    it FastAPI documents only its own list, and the record's answers in words break clients
    that generate code from the schema."""
    return {422: {"model": Invalid, "description": description}}


AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No `Authorization: Bearer` token, or a wrong one."}
}
BAD_INPUT = invalid(
    "A parameter is invalid (bad status or date, a time without a zone, a value Temporal "
    "cannot search for, `until` before `since`)."
)


UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "Temporal throttled the lookup; retry after a second."}
}


class EventQuery(EventFilter):
    """`GET /v1/events`' query parameters: the filters (all optional, combined with AND) and
    the page."""

    host_match: HostMatch | None = Field(  # type: ignore[assignment]
        default=None,
        description="`short` (first label) or `fqdn`; default `POWERTRIP_HOST_MATCH`.",
    )
    page_size: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE, description="Events per page.")
    page_token: str | None = Field(
        default=None, description="`next_page_token` of the previous page."
    )

    def filters(self, settings: Settings) -> EventFilter:
        """The visibility filters; `host_match` defaults to `POWERTRIP_HOST_MATCH`."""
        return EventFilter.model_validate(
            {
                **self.model_dump(exclude={"page_size", "page_token"}),
                "host_match": self.host_match or settings.host_match,
            }
        )


@router.get(
    "/events",
    response_model=EventPage,
    summary="List events, filtered and paginated",
    responses={
        **AUTH_ERROR,
        **BAD_INPUT,
        **UNAVAILABLE,
        400: {"model": Problem, "description": "`page_token` is not one issued for these filters."},
    },
)
async def get_events(
    temporal: TemporalDep, settings: SettingsDep, query: Annotated[EventQuery, Query()]
) -> EventPage:
    """Events newest first in Temporal's sense: open ones (pending, reported) first, most
    recently received first, then closed ones, most recently closed first. Follow
    `next_page_token` with the same filters until it is null."""
    return await list_events(
        temporal,
        query.filters(settings),
        web_ui(settings),
        query.page_size,
        query.page_token,
        key=page_token_key(settings.secret("api_token")),
    )


@router.get(
    "/events/{event_id}",
    response_model=EventView,
    summary="One event: its decision, timeline and Temporal UI links",
    responses={
        **AUTH_ERROR,
        **UNAVAILABLE,
        404: {"model": Problem, "description": "No such event."},
    },
)
async def get_event(event_id: str, temporal: TemporalDep, settings: SettingsDep) -> EventView:
    """Readable while the event is pending and after it is decided (from the workflow's memo)."""
    view = await show_event(temporal, event_id, web_ui(settings))
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r}")
    return view


class MatchParams(BaseModel):
    """One HIDS question, as query parameters (GET) or a member of `questions` (POST)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, description="Host name; case and a trailing dot are ignored.")
    user: str = Field(min_length=1, description="The unix user, exactly (case matters).")
    at: RecordTime = Field(
        description="When the login happened: the log line's time, ISO 8601 with Z or an offset."
    )
    kind: EventKind = Field(
        default=EventKind.LOGIN, description="`login` (default), `privilege`, `change`, `other`."
    )
    address: str | None = Field(
        default=None, description="Source address of the session; only an event from it answers."
    )
    port: int | None = Field(
        default=None, ge=0, le=65535, description="Source port; only an event with it answers."
    )
    window: str = Field(
        default="5m",
        description="Events this far either side of `at` are listed (a *Not me* among them "
        "answers `reported`): `90s`, `5m`, `1h` (max 1 day).",
    )
    tolerance: str | None = Field(
        default=None,
        description="How far from `at` the event that is this login may lie: default `5s`, or "
        "`2m` when `address` and `port` are given.",
    )
    host_match: HostMatch | None = Field(
        default=None,
        description="`fqdn` (full name, the default) or `short` (first label); default "
        "`POWERTRIP_HOST_MATCH`.",
    )

    def question(self, settings: Settings) -> MatchQuestion:
        """Raises RecordError (a 422) for a question that cannot be asked."""
        try:
            window = parse_duration(self.window)
            tolerance = parse_duration(self.tolerance) if self.tolerance is not None else None
        except ValueError as exc:
            raise RecordError(str(exc)) from exc
        return MatchQuestion(
            host=self.host,
            user=self.user,
            at=aware(self.at),
            window=window,
            host_match=self.host_match or settings.host_match,
            kind=self.kind,
            address=self.address,
            port=self.port,
            tolerance=tolerance,
        )


@router.get(
    "/approvals/match",
    response_model=MatchAnswer,
    summary="HIDS: was this login approved?",
    responses={**AUTH_ERROR, **BAD_INPUT, **UNAVAILABLE},
)
async def match_approval(
    temporal: TemporalDep, settings: SettingsDep, params: Annotated[MatchParams, Query()]
) -> Response:
    """Always 200 with an answer (`approved`, `reported`, `pending`, `ambiguous`,
    `not_found`). `approved: true` only when exactly one login of `kind` fits the question
    (its `address` and `port` when given, within the tolerance of `at`) and it was approved,
    and no event of this user on this host in the window was reported *Not me*. Send the log
    line's time, the source address and the port: without them, two logins close together are
    `ambiguous`, never approved."""
    answer = await match(temporal, params.question(settings), web_ui(settings))
    # Already a validated MatchAnswer: skip FastAPI's second validation pass (the HIDS's hot
    # path; `response_model` still documents it).
    return Response(answer.model_dump_json(), media_type="application/json")


MAX_QUESTIONS = 100
BATCH_CONCURRENCY = 4  # visibility is rate limited per namespace: a batch must not hog it


class MatchBatch(BaseModel):
    """`POST /v1/approvals/match`: many HIDS questions at once."""

    questions: list[dict[str, Any]] = Field(
        description=f"Up to {MAX_QUESTIONS} questions, each with the fields of the GET form "
        "(`host`, `user`, `at`, and optionally `kind`, `address`, `port`, `window`, "
        "`tolerance`, `host_match`)."
    )


class BatchAnswer(BaseModel):
    """One question's answer, or why it could not be answered."""

    index: int = Field(description="Position of the question in `questions`.")
    answer: MatchAnswer | None = Field(description="The answer, as the GET form gives it.")
    error: str | None = Field(description="Why this question could not be answered.")


class MatchBatchAnswer(BaseModel):
    """Every question's answer, in order."""

    answers: list[BatchAnswer] = Field(description="One per question, in order.")


@router.post(
    "/approvals/match",
    response_model=MatchBatchAnswer,
    summary="HIDS: many logins at once (e.g. reconciling a day)",
    responses={
        **AUTH_ERROR,
        **UNAVAILABLE,
        413: {"model": Problem, "description": f"More than {MAX_QUESTIONS} questions."},
    },
)
async def match_approvals(
    batch: MatchBatch, temporal: TemporalDep, settings: SettingsDep
) -> MatchBatchAnswer:
    """Each question answered as `GET /v1/approvals/match` would; a question that is invalid
    or throttled gets its own `error` and the others are still answered."""
    if len(batch.questions) > MAX_QUESTIONS:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(batch.questions)} questions; at most {MAX_QUESTIONS} per request",
        )
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)
    ui = web_ui(settings)

    async def one(index: int, raw: dict[str, Any]) -> BatchAnswer:
        try:
            question = MatchParams.model_validate(raw).question(settings)
            async with gate:
                answer = await match(temporal, question, ui)
        except ValidationError as exc:
            return BatchAnswer(index=index, answer=None, error=describe_validation_error(exc))
        except RecordError as exc:
            return BatchAnswer(index=index, answer=None, error=str(exc))
        except RPCError as exc:
            if exc.status is not RPCStatusCode.RESOURCE_EXHAUSTED:
                raise
            error = f"Temporal visibility is rate limited: {exc.message}; ask again"
            return BatchAnswer(index=index, answer=None, error=error)
        return BatchAnswer(index=index, answer=answer, error=None)

    answers = await asyncio.gather(*(one(i, q) for i, q in enumerate(batch.questions)))
    return MatchBatchAnswer(answers=list(answers))
