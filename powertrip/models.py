"""The event model: one source of truth for the API, the workflows, the activities and the CLI."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from powertrip.business_hours import BusinessHours
from powertrip.escalation import EscalationPolicy, Urgency
from powertrip.jsontext import unreadable

MAX_FIELD_DEPTH = 64
# The times a record can carry: no log predates the Unix epoch, and a stamp centuries ahead is
# a sender's mistake (or a probe), not an event. Inside these bounds every comparison,
# conversion to UTC, search attribute and tolerance window works.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)


# What a transport leaves after a record and no writer meant as content: a line ending
# (Papertrail, CRLF files and TCP syslog keep `\r`), blanks a template pads with, and the NUL
# some syslog senders end a TCP frame with (RFC 6587 section 3.4.2). Every character Python
# counts as whitespace (all below U+3001), and NUL.
_TRAILING_NOISE = "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + "\x00"


def without_trailing_noise(text: str) -> str:
    """`text` without `_TRAILING_NOISE` at its end: what rules match and events show of a
    record's message, and what names a text record (`sources.content_id`), so a copy with or
    without it is the same record."""
    return text.rstrip(_TRAILING_NOISE)


def out_of_range(when: datetime) -> str | None:
    """Why `when` (naive: UTC) cannot be a record's time, or None when it can."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    if EARLIEST_TIME <= aware < LATEST_TIME:
        return None
    return f"{when.isoformat()} is not between {EARLIEST_TIME.year} and {LATEST_TIME.year}"


def _a_record_time(when: datetime) -> datetime:
    if why := out_of_range(when):
        raise ValueError(why)
    return when


RecordTime = Annotated[datetime, AfterValidator(_a_record_time)]
"""A time a question about the record may name (`since`, `at`...): one a record can have, so
windows around it and its conversion to UTC cannot overflow."""


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether JSON-like `value` (dicts and lists) nests deeper than `limit` levels; iterative, so
    it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class RawEvent(BaseModel):
    """A log record as a source adapter hands it over, before any rule has looked at it."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="Which adapter received it, e.g. `papertrail`.")
    provider_id: str = Field(min_length=1, description="The provider's own id for this record.")
    received_at: datetime | None = Field(default=None, description="When the provider saw it.")
    time_without_zone: bool = Field(
        default=False,
        description="`received_at` had no zone of its own (an RFC 3164 stamp, a naive JSON time) "
        "and was taken as UTC: it may be off by the writer's UTC offset.",
    )
    host: str | None = None
    program: str | None = None
    message: str = ""
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Structured fields, for JSON rules (e.g. CloudTrail)."
    )
    id_namespace: str | None = Field(
        default=None,
        description="Whose id `provider_id` is when it is not the source's own: `cloudtrail` "
        "for CloudTrail's eventID, whichever route delivered it.",
    )
    addendum_id: str | None = Field(
        default=None,
        description="A CloudTrail addendum's own eventID: this record re-delivers, with fields "
        "updated, the record `provider_id` names (`powertrip.sources.cloudtrail`). None: the "
        "record is its own.",
    )

    @property
    def event_id(self) -> str:
        return event_id_for(self.id_namespace or self.source, self.provider_id)

    @model_validator(mode="before")
    @classmethod
    def _note_a_missing_zone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "time_without_zone" not in data:
            value = data.get("received_at")
            if isinstance(value, str):
                try:
                    value = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return data  # pydantic says what is wrong with it
            if isinstance(value, datetime) and value.tzinfo is None:
                return {**data, "time_without_zone": True}
        return data

    @field_validator("message")
    @classmethod
    def _without_trailing_noise(cls, value: str) -> str:
        # Every adapter builds its records here: a `\r` or blank a transport left after the
        # message must not make a rule anchored at its end (`ssh2$`) miss, nor a copy without it
        # another shape or identity. The record as received stays in `fields` where the
        # provider gave one.
        return without_trailing_noise(value)

    @field_validator("fields")
    @classmethod
    def _not_nested_too_deeply(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Temporal's converter refuses what pydantic cannot serialise (about 250 levels): a
        # record nested that deeply would fail its whole batch at the workflow start instead of
        # being this record's `invalid`.
        if nesting_exceeds(value, MAX_FIELD_DEPTH):
            raise ValueError(f"nested deeper than {MAX_FIELD_DEPTH} levels")
        # A number no Python value stands for (`NaN`, `1e999`, an integer over the conversion
        # limit; powertrip.jsontext): this record's problem, not its batch's.
        if found := unreadable(value):
            raise ValueError(f"not a usable number: {found}")
        return value

    @field_validator("received_at")
    @classmethod
    def _utc_when_no_zone(cls, value: datetime | None) -> datetime | None:
        # A sender's time without a zone is taken as UTC (as syslog stamps are): a naive time
        # cannot be compared with the backfill's cut-off or stored as a search attribute.
        if value is not None and (why := out_of_range(value)):
            raise ValueError(why)
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


class EventStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REPORTED = "reported"
    ACKNOWLEDGED = "acknowledged"


class EventKind(StrEnum):
    """What kind of action an event is. A rule says which kind it recognises; the HIDS asks about
    one kind at a time, so a sudo approval never answers a question about a login."""

    LOGIN = "login"
    """A session opened: sshd, a console login, a VPN login."""
    PRIVILEGE = "privilege"
    """More rights taken within or over a session: sudo, su, an admin role, the root account."""
    CHANGE = "change"
    """A change to who may do what: IAM users, policies, keys."""
    OTHER = "other"
    """Anything else a rule asks about; the default for rules that do not say."""


# Events recorded before rules had a `kind` carry none; the built-in rules' kinds stand in, so
# the HIDS still finds those logins.
_KINDS_BEFORE_RULES_HAD_ONE = {
    "sshd-accepted": EventKind.LOGIN,
    "cloudtrail-console-login": EventKind.LOGIN,
    "custom-vpn-login": EventKind.LOGIN,
    "sudo-command": EventKind.PRIVILEGE,
    "su-root-session": EventKind.PRIVILEGE,
    "su-root-classic": EventKind.PRIVILEGE,
    "cloudtrail-root-activity": EventKind.PRIVILEGE,
    "cloudtrail-assume-admin-role": EventKind.PRIVILEGE,
    "custom-break-glass": EventKind.PRIVILEGE,
    "cloudtrail-iam-change": EventKind.CHANGE,
}


class Routing(StrEnum):
    DM_ACTOR = "dm_actor"
    CHANNEL = "channel"


class StepUpMethod(StrEnum):
    """What an approval must be confirmed with beyond a Slack click (a rule's `step_up`)."""

    PASSKEY = "passkey"
    """A WebAuthn assertion with user verification on Powertrip's own page."""


class CredentialRef(BaseModel):
    """Which passkey was used: what a step-up decision carries into the record."""

    credential_id: str = Field(description="base64url credential id.")
    label: str


class SecurityEvent(BaseModel):
    """A recognised event that a human must confirm."""

    event_id: str = Field(description="Readable, stable id; also the workflow id.")
    source: str
    provider_id: str
    rule_id: str
    rule_title: str
    kind: EventKind = Field(
        default=EventKind.OTHER, description="login, privilege, change or other (the rule's)."
    )
    action: str = Field(description="What happened, e.g. `ssh login (publickey)`.")
    actor: str = Field(description="The unix or cloud user who did it.")
    host: str | None = None
    address: str | None = Field(default=None, description="Where it came from (remote address).")
    port: int | None = Field(
        default=None, ge=0, le=65535, description="The remote (source) port, when logged."
    )
    occurred_at: datetime
    time_without_zone: bool = Field(
        default=False,
        description="`occurred_at` came from a stamp without a zone, taken as UTC (see "
        "`RawEvent.time_without_zone`).",
    )
    message: str = Field(default="", description="The original log line.")
    addendum_id: str | None = Field(
        default=None,
        description="Delivered by a CloudTrail addendum: its own eventID (`RawEvent.addendum_id`).",
    )
    identity_text: str | None = Field(
        default=None,
        description="What stands in for the source port in the natural identity (the rule's "
        "`identity`, e.g. `su to root`); None: the message text (`powertrip.identity`).",
    )
    details: dict[str, str] = Field(default_factory=dict)
    routing: Routing = Routing.DM_ACTOR
    renotify_after_seconds: float = 15 * 60
    actor_may_approve: bool = Field(
        default=True, description="False when only the security team (or the listed) may approve."
    )
    extra_approvers: list[str] = Field(
        default_factory=list, description="Slack user ids that may approve besides the team."
    )
    urgency: Urgency = Field(
        default=Urgency.HIGH,
        description="`high` pages at any hour; `low` pages only within business hours.",
    )
    escalation: EscalationPolicy | None = Field(
        default=None,
        description="The rule's policy when the event was recognised; None for events "
        "recorded before policies existed (see `escalation_policy`).",
    )
    business_hours: BusinessHours | None = Field(
        default=None, description="The config's business hours when the event was recognised."
    )
    step_up: StepUpMethod | None = Field(
        default=None,
        description="`passkey`: an approval counts only with the approver's passkey (the rule's "
        "`step_up`, or the config's `step_up_rules`); None: a Slack click approves.",
    )
    group_window_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Events like this one (same actor, host, kind and authority) within this "
        "many seconds of a group's first, while it is undecided, join its one question (the "
        "rule's `group_window`); 0: asked on its own (events recorded before groups).",
    )

    @property
    def record_id(self) -> str:
        """The delivered record's own id: an addendum's eventID, else `provider_id`. Records of
        one event with different ids may say different things; one id says one thing."""
        return self.addendum_id or self.provider_id

    def escalation_policy(self) -> EscalationPolicy:
        """The event's policy; for events recorded before policies, the one `renotify_after`
        stands for (a reminder every so long)."""
        if self.escalation is not None:
            return self.escalation
        return EscalationPolicy.from_renotify(timedelta(seconds=self.renotify_after_seconds))

    @model_validator(mode="before")
    @classmethod
    def _kind_of_older_events(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" not in data:
            known = _KINDS_BEFORE_RULES_HAD_ONE.get(str(data.get("rule_id")))
            if known is not None:
                return {**data, "kind": known}
        return data


class DecisionKind(StrEnum):
    APPROVED = "approved"
    REPORTED = "reported"
    ACKNOWLEDGED = "acknowledged"


def user_label(user: str, name: str | None) -> str:
    """A Slack user as plain text (the CLI, the API): `@alice (U0ALICE)` when the name is
    known, else the id. Slack's own `<@U0ALICE>` means something only inside Slack."""
    return f"@{name} ({user})" if name else user


class Decision(BaseModel):
    kind: DecisionKind
    by: str = Field(description="Slack user id (or operator name) who decided.")
    at: datetime
    via: str = Field(description="`slack`, `cli` or `api`.")
    reason: str | None = None
    on_behalf: bool = Field(
        default=False, description="A security-team member decided for someone else."
    )
    name: str | None = Field(default=None, description="`by`'s Slack user name, when known.")
    operator: str | None = Field(
        default=None,
        description="CLI: the operating-system user and host that ran it (`user@host`).",
    )
    requested_at: datetime | None = Field(
        default=None,
        description="When the API or CLI signed the request; `at`: when the workflow received it.",
    )
    authenticated: bool = Field(
        default=False,
        description="Signed by the API or CLI and verified by the workflow (decisions recorded "
        "before decisions were signed are false).",
    )
    step_up: StepUpMethod | None = Field(
        default=None,
        description="`passkey`: the approver confirmed it with a passkey on Powertrip's page.",
    )
    credential: CredentialRef | None = Field(
        default=None, description="The passkey the approver stepped up with."
    )
    group: str | None = Field(
        default=None,
        description="Decided as part of this group (its workflow id): one answer to the one "
        "question a burst of events was asked as (issue 13).",
    )
    expectation: str | None = Field(
        default=None,
        description="`via: expectation`: the id of the expectation that pre-approved the event "
        "(`by`: who created it, `reason`: why).",
    )

    @property
    def who(self) -> str:
        return user_label(self.by, self.name)


_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,120}$")


def event_id_for(source: str, provider_id: str) -> str:
    """Derive the workflow id from the source and the provider's id.

    Same record, same id: that is what makes retried deliveries and overlapping backfills
    duplicates rather than new events. Ids that are unsafe or too long are hashed so the id
    stays readable and bounded.
    """
    if _SAFE_ID.match(provider_id):
        return f"{source}-{provider_id}"
    digest = hashlib.sha256(provider_id.encode()).hexdigest()[:32]
    return f"{source}-h{digest}"
