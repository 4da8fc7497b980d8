"""Webhook endpoints: one per source, each with its adapter; all share the ingest path."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from api.body import decode_payload, read_capped
from api.deps import RulesDep, SettingsDep, TemporalDep, WebhookAuth
from powertrip.ingest import ItemResult, process
from powertrip.sources import PayloadError
from powertrip.sources.papertrail import parse_papertrail

router = APIRouter(prefix="/webhooks", tags=["webhooks"], dependencies=[WebhookAuth])


class WebhookResponse(BaseModel):
    results: list[ItemResult]


@router.post(
    "/papertrail",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="Papertrail search alert",
    responses={
        400: {"description": "Malformed body"},
        401: {"description": "Bad token"},
        413: {"description": "Body too large"},
        415: {"description": "Wrong type"},
    },
)
async def papertrail(
    request: Request, settings: SettingsDep, rules: RulesDep, temporal: TemporalDep
) -> WebhookResponse:
    """Papertrail posts `payload=<json>` form-encoded; a plain JSON body of the same shape works
    too. Each event gets its own result: started, duplicate, unmatched or invalid."""
    body = await read_capped(request, settings.max_body_bytes)
    try:
        items = parse_papertrail(decode_payload(request, body))
    except PayloadError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    results = await process(temporal, rules, items, settings.task_queue, settings.start_concurrency)
    return WebhookResponse(results=results)
