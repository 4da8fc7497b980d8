"""Dependencies shared by the routes, as `Annotated` aliases."""

from __future__ import annotations

import base64
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from temporalio.client import Client

from powertrip.config import PowertripConfig
from powertrip.rules import RuleSet
from powertrip.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_config(request: Request) -> PowertripConfig:
    return request.app.state.config


def get_rules(request: Request) -> RuleSet:
    return request.app.state.rules


def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


def get_decision_key(request: Request) -> str:
    """The key the API signs decisions with (checked at start-up, powertrip.decisions)."""
    return request.app.state.decision_key


SettingsDep = Annotated[Settings, Depends(get_settings)]
DecisionKeyDep = Annotated[str, Depends(get_decision_key)]
ConfigDep = Annotated[PowertripConfig, Depends(get_config)]
RulesDep = Annotated[RuleSet, Depends(get_rules)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check(given: str | None, expected: str, what: str) -> None:
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or wrong {what}",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _basic_password(request: Request) -> str | None:
    """SNS cannot set headers but sends `https://user:secret@host/...` as HTTP Basic auth."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return password or None


def webhook_auth(source: str) -> Any:
    """The source's own secret (`POWERTRIP_WEBHOOK_TOKEN_<SOURCE>`, else
    `POWERTRIP_WEBHOOK_TOKEN`) as a bearer token, an HTTP Basic password or `?token=`."""

    def require(request: Request, settings: SettingsDep) -> None:
        given = _bearer(request) or _basic_password(request) or request.query_params.get("token")
        expected = settings.webhook_token_for(source)
        _check(given, expected, f"{source} webhook token")

    return Depends(require)


def require_api_token(request: Request, settings: SettingsDep) -> None:
    _check(_bearer(request), settings.secret("api_token"), "API token")


ApiAuth = Depends(require_api_token)
