"""Step-up and passkey registration pages: `/verify/<token>` and `/passkeys/register/<token>`.

Each page is three requests: `GET` shows what the link is for (read-only: link previews and
reloads change nothing), `POST …/options` stores a fresh challenge in the user's passkey workflow
and returns WebAuthn options, `POST` (the browser's answer) uses the link up and checks the
answer (powertrip.stepup). The link itself is the credential of these routes, together with the
passkey: no Slack session or API token is involved.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from api.body import read_capped
from api.deps import DecisionKeyDep, SettingsDep, TemporalDep
from api.passkey_pages import (
    EXPLANATIONS,
    HEADERS,
    explain,
    refusal_page,
    registration_page,
    step_up_page,
)
from api.routes.events import Problem
from powertrip import jsontext
from powertrip.contracts.passkeys import LinkPurpose, PasskeyRefused, Refusal, StepUpVerified
from powertrip.relying_party import RelyingParty
from powertrip.services.decisions import deliver_step_up
from powertrip.services.stepup import (
    Link,
    announce_enrollment,
    announce_refusal,
    approve_passkey_with_step_up,
    begin_ceremony,
    complete_registration,
    complete_step_up,
    link_view,
    relying_party,
)
from powertrip.settings import Settings, SettingsError


def _refusals() -> dict[int | str, dict[str, Any]]:
    """The refusals these routes answer, by HTTP status (the page in HTML for a `GET`, JSON
    `{"outcome": "refused", "refusal": ...}` for a `POST`), from the one table of them."""
    statuses: dict[int, list[str]] = {}
    for refusal, explanation in EXPLANATIONS.items():
        statuses.setdefault(explanation.http_status, []).append(f"`{refusal.value}`")
    answers: dict[int | str, dict[str, Any]] = {
        code: {"description": "Refused: " + ", ".join(names)} for code, names in statuses.items()
    }
    bad = answers.setdefault(status.HTTP_400_BAD_REQUEST, {"description": "Refused"})
    bad["description"] += "; or the browser's answer is not JSON, or not a WebAuthn answer"
    return answers


router = APIRouter(
    tags=["step-up"],
    responses={
        **_refusals(),
        503: {
            "model": Problem,
            "description": "Step-up is not set up on this API (POWERTRIP_PUBLIC_URL, the "
            "https address people's browsers use, is missing or unusable).",
        },
    },
)
log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {"passkeys.js": "text/javascript", "passkeys.css": "text/css"}
# A WebAuthn response is a few KB; anything much larger is not one.
MAX_RESPONSE_BYTES = 64 * 1024


def get_relying_party(settings: SettingsDep) -> RelyingParty:
    try:
        return relying_party(settings)
    except SettingsError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


RelyingPartyDep = Annotated[RelyingParty, Depends(get_relying_party)]


def _html(page: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    return HTMLResponse(page, status_code=status_code, headers=HEADERS)


def _refused(
    refusal: Refusal, purpose: LinkPurpose, detail: str | None = None, **more: Any
) -> JSONResponse:
    explanation = explain(refusal, purpose)
    message = f"{explanation.title}. {re.sub(r'<[^>]+>', '', explanation.text)}"
    return JSONResponse(
        {
            "outcome": "refused",
            "refusal": refusal.value,
            "message": message,
            "detail": detail,
            **more,
        },
        status_code=explanation.http_status,
        headers=HEADERS,
    )


async def _page(
    temporal: TemporalDep, settings: Settings, token: str, purpose: LinkPurpose
) -> HTMLResponse:
    get_relying_party(settings)  # a page that cannot work says so before anything else
    try:
        view = await link_view(temporal, token)
    except PasskeyRefused as exc:
        return _html(refusal_page(exc.refusal, purpose), explain(exc.refusal, purpose).http_status)
    refusal = view.refusal or (Refusal.LINK_WRONG_PURPOSE if view.purpose is not purpose else None)
    if refusal is None and purpose is LinkPurpose.STEP_UP and view.passkeys == 0:
        refusal = Refusal.NO_PASSKEY
    if refusal is not None:
        return _html(refusal_page(refusal, purpose), explain(refusal, purpose).http_status)
    page = step_up_page(view) if purpose is LinkPurpose.STEP_UP else registration_page(view)
    return _html(page)


async def _options(
    temporal: TemporalDep, rp: RelyingParty, token: str, purpose: LinkPurpose
) -> Response:
    try:
        options = await begin_ceremony(temporal, rp, token, purpose)
    except PasskeyRefused as exc:
        return _refused(exc.refusal, purpose, exc.detail)
    return Response(options, media_type="application/json", headers=HEADERS)


async def _browser_answer(request: Request) -> Any:
    body = await read_capped(request, MAX_RESPONSE_BYTES)
    try:
        return jsontext.loads(body)
    except jsontext.JsonError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from exc


@router.get("/verify/{token}", response_class=HTMLResponse, summary="Step-up confirmation page")
async def verify_page(token: str, temporal: TemporalDep, settings: SettingsDep) -> HTMLResponse:
    return await _page(temporal, settings, token, LinkPurpose.STEP_UP)


@router.post("/verify/{token}/options", summary="WebAuthn request options for a step-up")
async def verify_options(token: str, temporal: TemporalDep, rp: RelyingPartyDep) -> Response:
    return await _options(temporal, rp, token, LinkPurpose.STEP_UP)


@router.post("/verify/{token}", summary="Check a step-up assertion and approve")
async def verify_assertion(
    token: str,
    request: Request,
    temporal: TemporalDep,
    settings: SettingsDep,
    rp: RelyingPartyDep,
    signing_key: DecisionKeyDep,
) -> JSONResponse:
    """The browser's passkey answer: checked (powertrip.services.stepup), then delivered like
    every decision (powertrip.services.decisions): a verified one approves the event with
    `step_up: passkey` and the credential (or, on a security-team member's link, the pending
    passkey it names); a refused one goes to the event's timeline, and the security channel
    hears at once of a cloned authenticator or another user's passkey."""
    outcome = await complete_step_up(temporal, rp, token, await _browser_answer(request))
    if not isinstance(outcome, StepUpVerified):
        log.warning("step-up refused for %s: %s", outcome.event_id, outcome.timeline_detail())
        await deliver_step_up(temporal, signing_key, outcome)
        await announce_refusal(temporal, settings, token, outcome)
        return _refused(
            outcome.refusal, LinkPurpose.STEP_UP, outcome.detail, event_id=outcome.event_id
        )
    message: str | None
    if outcome.passkey is not None:
        approved, message = await approve_passkey_with_step_up(temporal, outcome)
        decision = "delivered" if approved else "refused"
    else:
        delivery = await deliver_step_up(temporal, signing_key, outcome)
        decision, message = delivery.outcome, delivery.reply
    answer = {**outcome.model_dump(mode="json"), "decision": decision}
    return JSONResponse(
        {**answer, "message": message},
        status_code=status.HTTP_200_OK if decision == "delivered" else status.HTTP_409_CONFLICT,
        headers=HEADERS,
    )


@router.get(
    "/passkeys/register/{token}", response_class=HTMLResponse, summary="Passkey registration page"
)
async def register_page(token: str, temporal: TemporalDep, settings: SettingsDep) -> HTMLResponse:
    return await _page(temporal, settings, token, LinkPurpose.REGISTRATION)


@router.post("/passkeys/register/{token}/options", summary="WebAuthn creation options")
async def register_options(token: str, temporal: TemporalDep, rp: RelyingPartyDep) -> Response:
    return await _options(temporal, rp, token, LinkPurpose.REGISTRATION)


@router.post("/passkeys/register/{token}", summary="Store a new passkey")
async def register_credential(
    token: str, request: Request, temporal: TemporalDep, settings: SettingsDep, rp: RelyingPartyDep
) -> JSONResponse:
    answer = await _browser_answer(request)
    if not isinstance(answer, dict) or not isinstance(answer.get("credential"), dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "expected {credential, label}")
    label = answer.get("label")
    try:
        enrollment = await complete_registration(
            temporal, rp, token, answer["credential"], label if isinstance(label, str) else None
        )
    except PasskeyRefused as exc:
        return _refused(exc.refusal, LinkPurpose.REGISTRATION, exc.detail)
    # A first passkey is announced to the security channel; another one asks the team there.
    await announce_enrollment(temporal, settings, enrollment, user=Link.parse(token).user)
    name = enrollment.credential.label
    message = (
        f"Your passkey “{name}” is registered. The security team has been told: it is your first."
        if enrollment.first
        else f"Your passkey “{name}” waits for a security-team member's approval; it cannot "
        "approve anything until then."
    )
    return JSONResponse({**enrollment.model_dump(mode="json"), "message": message}, headers=HEADERS)


@router.get("/passkeys/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(
        STATIC_DIR / name,
        media_type=STATIC_FILES[name],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
    )
