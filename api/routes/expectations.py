"""Expectations over HTTP (issue 13 §2): expected work, pre-approved on the record.

Listing takes the API token, like every read of the record; creating and revoking take the API
write token (`POWERTRIP_API_WRITE_TOKEN`), which vouches for `created_by` / `by` (whoever holds it
is trusted as the tool of the person it names), so a HIDS holding the read token cannot
pre-approve work; the limits (`powertrip.services.expectations.Limits`)
are checked here and again by the worker before an expectation approves anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.deps import (
    ApiAuth,
    ApiWriteAuth,
    ConfigDep,
    DecisionKeyDep,
    DirectoryDep,
    SettingsDep,
    TemporalDep,
    WebUiDep,
)
from api.routes.events import AUTH_ERROR, UNAVAILABLE, Problem, invalid
from powertrip.contracts.expectations import Expectation, scope_refusal
from powertrip.durations import parse_duration
from powertrip.models import RecordTime
from powertrip.services.expectations import (
    ExpectationAudit,
    Limits,
    approved_by,
    create_expectation,
    list_expectations,
    new_expectation,
    revoke_expectation,
)

router = APIRouter(prefix="/v1", tags=["expectations"])

REFUSED: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": f"{UNAVAILABLE[503]['description']} Or Slack did not say who is on the "
        "security team (`security_team_group`) or who owns the account (an `email:` mapping): "
        "the limits could not be checked, nothing was changed.",
    },
    403: {
        "model": Problem,
        "description": "The limits forbid it: an owner for someone else's account, a step-up "
        "rule pre-approved by its owner, longer than `max_expectation`, a revocation by "
        "someone else; or the API has no `POWERTRIP_API_WRITE_TOKEN` (writes over HTTP off).",
    },
    **invalid(
        "Invalid body: no reason, neither `for` nor `until`, a bad duration, a blank `host` or "
        "`rule` or an empty list of them."
    ),
}


class ExpectationCreate(BaseModel):
    """`POST /v1/expectations`: who is expected to act, where, until when, and why."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    actor: str = Field(min_length=1, max_length=256, description="The account (`alice`).")
    host: str | list[str] | None = Field(
        default=None,
        description="A host or hosts; left out (or null): any host. A blank name or an empty "
        "list is refused (422), never taken for any host.",
    )
    rule: str | list[str] | None = Field(
        default=None,
        description="A rule id or ids; left out (or null): any rule. A blank id or an empty "
        "list is refused (422), never taken for any rule.",
    )
    for_: timedelta | None = Field(
        default=None, alias="for", description="How long, e.g. `2h`, `90m` (or give `until`)."
    )
    until: RecordTime | None = Field(
        default=None, description="When it ends (with a timezone; 1970 to 2999)."
    )
    reason: str = Field(min_length=1, max_length=500)
    created_by: str = Field(
        pattern=r"^[UW][A-Z0-9]+$", description="The Slack user id of whoever asks for it."
    )

    @field_validator("for_", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)

    @field_validator("host", "rule")
    @classmethod
    def _named(cls, value: str | list[str] | None, info: ValidationInfo) -> object:
        # `[]` or `""` is what a script sends when its list came out empty: refused, so that
        # only leaving the field out means "any" (the same check as every path: scope_refusal).
        if value is None:
            return value
        names = _listed(value)
        if not names:
            raise ValueError(f"an empty list: leave `{info.field_name}` out for any")
        hosts, rules = (names, []) if info.field_name == "host" else ([], names)
        if (widened := scope_refusal(hosts, rules)) is not None:
            raise ValueError(widened)
        return value

    @model_validator(mode="after")
    def _one_end(self) -> ExpectationCreate:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("give exactly one of `for` (a duration) and `until` (a time)")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("`until` needs a timezone (e.g. 2026-12-01T18:00:00Z)")
        return self

    def ends(self, now: datetime) -> datetime:
        return self.until if self.until is not None else now + (self.for_ or timedelta(0))


def _listed(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else value


@router.post(
    "/expectations",
    response_model=Expectation,
    status_code=status.HTTP_201_CREATED,
    summary="Pre-approve expected work",
    dependencies=[ApiWriteAuth],
    responses={**AUTH_ERROR, **UNAVAILABLE, **REFUSED},
)
async def post_expectation(
    body: ExpectationCreate,
    temporal: TemporalDep,
    settings: SettingsDep,
    config: ConfigDep,
    directory: DirectoryDep,
    key: DecisionKeyDep,
) -> Expectation:
    """Until it ends, events of `actor` (on `host`, of `rule`, when given) are approved at once
    with `via: expectation`, its id, creator and reason, and nobody is asked; the security
    channel still sees them. The owner of an account may create one only for it and never for
    a step-up rule; the security team for anyone."""
    now = datetime.now(UTC)
    expectation = new_expectation(
        actor=body.actor,
        hosts=_listed(body.host),
        rules=_listed(body.rule),
        until=body.ends(now),
        reason=body.reason,
        created_by=body.created_by,
        via="api",
        now=now,
    )
    return await create_expectation(
        temporal, key, settings.task_queue, expectation, Limits.from_config(config, directory)
    )


@router.get(
    "/expectations",
    response_model=list[Expectation],
    summary="Active expectations",
    dependencies=[ApiAuth],
    responses={
        **AUTH_ERROR,
        **UNAVAILABLE,
        **invalid("`actor` is longer than 256 or holds characters Temporal cannot search for."),
    },
)
async def get_expectations(
    temporal: TemporalDep,
    actor: Annotated[str | None, Query(max_length=256, description="Only this account's.")] = None,
) -> list[Expectation]:
    """The active ones, soonest ending first (from visibility: no worker needed)."""
    return await list_expectations(temporal, actor)


@router.get(
    "/expectations/{expectation_id}",
    response_model=ExpectationAudit,
    summary="An expectation and the events it approved",
    dependencies=[ApiAuth],
    responses={
        **AUTH_ERROR,
        **UNAVAILABLE,
        404: {"model": Problem, "description": "No such expectation."},
    },
)
async def get_expectation_audit(
    expectation_id: str, temporal: TemporalDep, ui: WebUiDep
) -> ExpectationAudit:
    """Active or ended: the expectation, and each event it approved (as `GET /v1/events/{id}`
    shows it), listed only if the event's own decision names this expectation."""
    return await approved_by(temporal, expectation_id, ui)


@router.delete(
    "/expectations/{expectation_id}",
    response_model=Expectation,
    summary="Revoke an expectation",
    dependencies=[ApiWriteAuth],
    responses={
        **AUTH_ERROR,
        **UNAVAILABLE,
        **REFUSED,
        404: {"model": Problem, "description": "No such expectation."},
    },
)
async def delete_expectation(
    expectation_id: str,
    temporal: TemporalDep,
    config: ConfigDep,
    directory: DirectoryDep,
    key: DecisionKeyDep,
    by: Annotated[
        str,
        Query(pattern=r"^[UW][A-Z0-9]+$", description="The Slack user id of whoever revokes."),
    ],
) -> Expectation:
    """Ends it at once (a signed signal, durable with no worker running): events after it are
    asked as usual. Its creator, the account's owner or the security team may revoke it.
    Returns it as it was."""
    return await revoke_expectation(
        temporal, key, expectation_id, by, "api", Limits.from_config(config, directory)
    )
