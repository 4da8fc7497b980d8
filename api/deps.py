"""Dependencies shared by the routes, as `Annotated` aliases."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import (
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from starlette.requests import HTTPConnection
from temporalio.client import Client

from powertrip import jsontext
from powertrip.config import PowertripConfig
from powertrip.directory import SlackDirectory
from powertrip.rules import RuleSet
from powertrip.settings import Settings
from powertrip.webui import WebUi


async def unambiguous_request(request: Request) -> None:
    """Refuse (422, naming it) what one reader would take one way and another reader another:
    a query parameter given more than once (FastAPI reads the last `host=` of
    `?host=bastion&host=evil` while a proxy, a WAF or a log reader may read the first, so a
    question would be answered about another host than the one checked; no route takes a list
    in its query), and in the JSON body of the API's own routes (`/v1/...`) a key given twice in
    one object (`{"host": "bastion", "host": null}`: Python keeps the last) or an unpaired
    `\\ud800` escape, which no UTF-8 text (a log, Temporal's payloads) can hold."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise _invalid("repeated", ("query", name), "given more than once; give it once")
        seen.add(name)
    if not request.url.path.startswith("/v1/") or request.method not in ("POST", "PUT", "PATCH"):
        return
    try:
        body = json.loads(await request.body(), object_pairs_hook=_one_of_each)
    except _RepeatedKey as repeated:
        raise _invalid(
            "repeated", ("body", repeated.key), "a key given twice in one object"
        ) from None
    except ValueError:
        return  # not JSON: the route's own validation says so
    if jsontext.holds_surrogate(body):
        raise _invalid(
            "unencodable",
            ("body",),
            "holds an unpaired UTF-16 surrogate (a lone \\ud800 escape): no UTF-8 text can",
        )


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key.encode("utf-8", "backslashreplace").decode()


def _one_of_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(key)
        found[key] = value
    return found


def _invalid(kind: str, where: tuple[str, ...], why: str) -> RequestValidationError:
    # No `input`: echoing an unencodable one made the 422 itself a 500.
    return RequestValidationError([{"type": kind, "loc": where, "msg": why, "input": None}])


def get_settings(request: Request) -> Settings:
    """The settings the app started with."""
    return request.app.state.settings


def get_config(request: Request) -> PowertripConfig:
    """The config file's content, loaded at startup."""
    return request.app.state.config


def get_rules(request: Request) -> RuleSet:
    """The rules of the config (built-in packs and the config's own)."""
    return request.app.state.rules


def get_temporal(request: Request) -> Client:
    """The app's Temporal client."""
    return request.app.state.temporal


def get_decision_key(request: Request) -> str:
    """The key the API signs decisions with (checked at start-up, powertrip.signing)."""
    return request.app.state.decision_key


def get_directory(request: Request) -> SlackDirectory:
    """The API's Slack directory (made at startup): who is on the security team, who owns an
    account, cached, shared with the Bolt listeners."""
    return request.app.state.directory


SettingsDep = Annotated[Settings, Depends(get_settings)]


def web_ui(settings: SettingsDep) -> WebUi:
    """Links into the Temporal Web UI for the configured namespace (`POWERTRIP_TEMPORAL_UI_URL`)."""
    return WebUi(base_url=settings.temporal_ui_url, namespace=settings.temporal_namespace)


WebUiDep = Annotated[WebUi, Depends(web_ui)]
DirectoryDep = Annotated[SlackDirectory, Depends(get_directory)]
DecisionKeyDep = Annotated[str, Depends(get_decision_key)]
ConfigDep = Annotated[PowertripConfig, Depends(get_config)]
RulesDep = Annotated[RuleSet, Depends(get_rules)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


# Security schemes, so /docs shows how each route authenticates (and its "Authorize" button
# works). None raises on its own (`auto_error=False`): `_check` answers one clear 401.
api_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="`Authorization: Bearer <POWERTRIP_API_TOKEN>` for the record (`/v1`).",
)
api_write_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiWriteToken",
    description="`Authorization: Bearer <POWERTRIP_API_WRITE_TOKEN>` for what changes the "
    "record (creating and revoking expectations).",
)
webhook_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="WebhookToken",
    description="`Authorization: Bearer <token>`: the source's `POWERTRIP_WEBHOOK_TOKEN_<SOURCE>`, "
    "else `POWERTRIP_WEBHOOK_TOKEN`.",
)


class _LenientBasic(HTTPBasic):
    """HTTP Basic that answers None for a malformed header instead of a 401 of its own: the
    token may still come as `?token=`, and `_check` says what is missing."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            return None


webhook_basic = _LenientBasic(
    auto_error=False,
    scheme_name="WebhookBasic",
    description="The webhook token as the HTTP Basic password (SNS sends "
    "`https://user:<token>@host/...`).",
)
webhook_query = APIKeyQuery(
    name="token",
    auto_error=False,
    scheme_name="WebhookQueryToken",
    description="`?token=<token>`, for providers that cannot set headers (Papertrail).",
)


def _check(given: str | None, expected: str, what: str) -> None:
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or wrong {what}",
            headers={"WWW-Authenticate": "Bearer"},
        )


def webhook_auth(source: str) -> Any:
    """The source's own secret (`POWERTRIP_WEBHOOK_TOKEN_<SOURCE>`, else
    `POWERTRIP_WEBHOOK_TOKEN`) as a bearer token, an HTTP Basic password or `?token=`; a 401
    otherwise."""

    def require(
        settings: SettingsDep,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(webhook_bearer)],
        basic: Annotated[HTTPBasicCredentials | None, Depends(webhook_basic)],
        query_token: Annotated[str | None, Depends(webhook_query)],
    ) -> None:
        given = (
            (bearer.credentials.strip() if bearer else None)
            or (basic.password if basic else None)
            or query_token
        )
        _check(given, settings.webhook_token_for(source), f"{source} webhook token")

    return Depends(require)


def require_api_token(
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(api_bearer)],
) -> None:
    """`Authorization: Bearer <POWERTRIP_API_TOKEN>`, else a 401."""
    _check(
        bearer.credentials.strip() if bearer else None, settings.secret("api_token"), "API token"
    )


ApiAuth = Depends(require_api_token)


def require_api_write_token(
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(api_write_bearer)],
) -> None:
    """`Authorization: Bearer <POWERTRIP_API_WRITE_TOKEN>`, else a 401; a 403 naming the
    setting when the API has none (writes over HTTP are off)."""
    if settings.api_write_token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="changing the record over HTTP is off: set POWERTRIP_API_WRITE_TOKEN",
        )
    _check(
        bearer.credentials.strip() if bearer else None,
        settings.secret("api_write_token"),
        "API write token",
    )


ApiWriteAuth = Depends(require_api_write_token)
