"""The record over HTTP: list and show events, and answer the HIDS's "was this login approved?".

All reads come from Temporal visibility and the workflow memo (powertrip.records), so they work
with no worker running and for events long finished (until the namespace retention expires).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ApiAuth, SettingsDep, TemporalDep
from powertrip.durations import parse_duration
from powertrip.hosts import HostMatch
from powertrip.models import EventStatus
from powertrip.records import (
    MAX_PAGE_SIZE,
    EventFilter,
    EventPage,
    EventView,
    MatchAnswer,
    MatchQuestion,
    PageTokenError,
    RecordError,
    Ui,
    aware,
    list_events,
    match,
    page_token_key,
    show_event,
)
from powertrip.settings import Settings

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[ApiAuth])


class Problem(BaseModel):
    detail: str = Field(description="What was wrong, in words.")


AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No `Authorization: Bearer` token, or a wrong one."}
}
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "A parameter is invalid (bad status or date, a time without a zone, "
        "a value Temporal cannot search for, `until` before `since`)."
    }
}


@contextmanager
def _temporal_errors() -> Iterator[None]:
    """Temporal throttles visibility per namespace (`frontend.namespaceRPS.visibility`): tell the
    caller to retry rather than fail with a 500."""
    try:
        yield
    except RPCError as exc:
        if exc.status is RPCStatusCode.RESOURCE_EXHAUSTED:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"Temporal visibility is rate limited: {exc.message}; retry shortly",
                headers={"Retry-After": "1"},
            ) from exc
        raise


UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "Temporal throttled the lookup; retry after a second."}
}


def _ui(settings: Settings) -> Ui:
    return Ui(base_url=settings.temporal_ui_url, namespace=settings.temporal_namespace)


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
    temporal: TemporalDep,
    settings: SettingsDep,
    status_: Annotated[
        EventStatus | None, Query(alias="status", description="Only events in this status.")
    ] = None,
    actor: Annotated[str | None, Query(description="The unix or cloud user, exactly.")] = None,
    host: Annotated[
        str | None, Query(description="Host name; case is ignored, see `host_match`.")
    ] = None,
    host_match: Annotated[
        HostMatch | None,
        Query(description="`short` (first label) or `fqdn`; default `POWERTRIP_HOST_MATCH`."),
    ] = None,
    rule: Annotated[str | None, Query(description="Rule id, e.g. `sshd-accepted`.")] = None,
    source: Annotated[str | None, Query(description="Source, e.g. `papertrail`.")] = None,
    since: Annotated[
        datetime | None, Query(description="Events that happened at or after (ISO 8601, zoned).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Events that happened before (ISO 8601, zoned).")
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Events per page.")] = 50,
    page_token: Annotated[
        str | None, Query(description="`next_page_token` of the previous page.")
    ] = None,
) -> EventPage:
    """Events newest first in Temporal's sense: open ones (pending, reported) first, most
    recently received first, then closed ones, most recently closed first. Follow
    `next_page_token` with the same filters until it is null."""
    try:
        filters = EventFilter(
            status=status_,
            actor=actor,
            host=host,
            host_match=host_match or settings.host_match,
            rule=rule,
            source=source,
            since=since,
            until=until,
        )
        with _temporal_errors():
            return await list_events(
                temporal,
                filters,
                _ui(settings),
                page_size,
                page_token,
                key=page_token_key(settings.secret("api_token")),
            )
    except PageTokenError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except RecordError as exc:
        raise HTTPException(422, str(exc)) from exc


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
    with _temporal_errors():
        view = await show_event(temporal, event_id, _ui(settings))
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r}")
    return view


@router.get(
    "/approvals/match",
    response_model=MatchAnswer,
    summary="HIDS: was this user's login on this host around this time approved?",
    responses={**AUTH_ERROR, **BAD_INPUT, **UNAVAILABLE},
)
async def match_approval(
    temporal: TemporalDep,
    settings: SettingsDep,
    host: Annotated[str, Query(min_length=1, description="Host name; case is ignored.")],
    user: Annotated[str, Query(min_length=1, description="The unix user, exactly.")],
    at: Annotated[
        datetime, Query(description="When the login was seen (ISO 8601 with Z or an offset).")
    ],
    window: Annotated[
        str, Query(description="How far either side of `at`: `90s`, `5m`, `1h` (max 1 day).")
    ] = "5m",
    host_match: Annotated[
        HostMatch | None,
        Query(description="`short` (first label) or `fqdn`; default `POWERTRIP_HOST_MATCH`."),
    ] = None,
) -> Response:
    """Always 200 with an answer. `events` are every event of this user on this host within the
    window, nearest to `at` first; `answer` is the nearest one's status, except that a *Not me*
    anywhere in the window makes it `reported`. `approved` is true only for `answer: approved`.
    Nothing found is `answer: not_found`, not an error."""
    try:
        question = MatchQuestion(
            host=host,
            user=user,
            at=aware(at),
            window=parse_duration(window),
            host_match=host_match or settings.host_match,
        )
        with _temporal_errors():
            answer = await match(temporal, question, _ui(settings))
    except (RecordError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from exc
    # Already a validated MatchAnswer: skip FastAPI's second validation pass (the HIDS's hot
    # path; `response_model` still documents it).
    return Response(answer.model_dump_json(), media_type="application/json")
