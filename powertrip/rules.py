"""Rules as data: a regex (or JSON field match) that recognises a log record and a template that
turns it into a `SecurityEvent`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from powertrip.durations import Duration, DurationOrOff
from powertrip.escalation import (
    EscalationDefaults,
    EscalationPolicy,
    PagerDutyOptions,
    Severity,
    Urgency,
)
from powertrip.jsontext import decimal
from powertrip.models import (
    EventKind,
    RawEvent,
    Routing,
    SecurityEvent,
    StepUpMethod,
    out_of_range,
)

# PCRE/Ruby/.NET spell a named group `(?<name>...)`; Python's `re` wants `(?P<name>...)`.
# Lookbehinds `(?<=` and `(?<!` must be left alone.
_PCRE_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?![=!])([A-Za-z_][A-Za-z0-9_]*)>")
# `{name}` or, with fallbacks, `{first|second|third}`: the first that has a value wins.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*(?:\|[A-Za-z_][A-Za-z0-9_.-]*)*)\}")


# Real log lines are a few hundred characters. A regex over a megabyte of attacker-chosen text
# can take seconds (measured: the sshd rule, 1.2 s at 92 kB) in the API's event loop. Longer
# records are not matched: they stay unrecognised and go to the security channel for review.
MAX_MESSAGE_CHARS = 16 * 1024


class RuleError(ValueError):
    """A rule that cannot work; the message names the rule."""


# RE2 matches in time linear in the text whatever the pattern (no backtracking), so a rule such
# as `^(a+)+$` cannot stall the API on a crafted line. Its compile errors are reported to the
# user with the rule's id, not logged by RE2 itself to stderr.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_REFUSES = (
    "rule regexes run on RE2 (linear-time matching): no lookaround (`(?=`, `(?!`, `(?<=`, "
    "`(?<!`), no backreferences (`\\1`, `(?P=name)`), repetition counts up to 1000; "
    "write a negative lookahead as the rule's `unless:` or `unless_fields:` instead"
)


def compile_pattern(pattern: str) -> Any:
    """A rule's regex compiled with RE2 (`google-re2`; syntax:
    https://github.com/google/re2/wiki/Syntax), a `re.Pattern`-like object (`search`,
    `groupindex`, `pattern`).

    Raises `re2.error` for a pattern RE2 refuses: lookaround, backreferences, or one too large
    to compile in RE2's memory budget. Those are the patterns that can backtrack
    catastrophically in a backtracking engine; they are refused, never run on Python's `re`.
    """
    return re2.compile(_PCRE_NAMED_GROUP.sub(r"(?P<\1>", pattern), _RE2_OPTIONS)


def _re2_reason(pattern: str, exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    try:  # valid for a backtracking engine: RE2 refuses it on purpose, say why
        re.compile(_PCRE_NAMED_GROUP.sub(r"(?P<\1>", pattern))
    except re.error:
        return text
    return f"{text}; {_RE2_REFUSES}"


class RuleMatch(BaseModel):
    """What a rule recognises. All given conditions must hold."""

    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(default=None, description="Regex searched in the message.")
    unless: str | None = Field(
        default=None,
        description="Regex that, when found in the message, vetoes the match (failures, noise).",
    )
    program: str | None = Field(default=None, description="Regex the program name must match.")
    host: str | None = Field(default=None, description="Regex the host name must match.")
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted JSON field paths and the values they must equal (a list: any of).",
    )
    field_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="JSON field paths and regexes their values must match; their named groups "
        "can be used in the event template like message groups.",
    )
    unless_fields: dict[str, str] = Field(
        default_factory=dict,
        description="JSON field paths and regexes that veto the match when the field exists and "
        "matches (e.g. `errorCode: '.'` for failed API calls).",
    )
    extract: dict[str, str] = Field(
        default_factory=dict,
        description="JSON field paths and regexes whose named groups are bound when they match; "
        "never a condition (e.g. the user name inside an ARN).",
    )
    namespace: Literal["cloudtrail"] | None = Field(
        default=None,
        description="`cloudtrail`: only CloudTrail records a route configured as CloudTrail "
        "delivered (EventBridge, CloudTrail SNS topics and log groups, a CloudTrail backfill); "
        "a CloudTrail-shaped record from anywhere else is ordinary JSON and does not match.",
    )


class EventTemplate(BaseModel):
    """How to build the event: `{group}` names a regex group, `{a.b}` a JSON field path,
    `{host}`/`{program}`/`{message}` the record's own."""

    model_config = ConfigDict(extra="forbid")

    actor: str
    action: str
    host: str | None = "{host}"
    address: str | None = None
    port: str | None = Field(default=None, description="The remote port, e.g. `{port}`.")
    time: str | None = Field(default=None, description="Field holding the event time (ISO 8601).")
    identity: str | None = Field(
        default=None,
        description="What tells this action from another by the same actor on the same host in "
        "its natural identity when the record has no source port (default: the message text). "
        "`su to root` makes the two lines one su writes (util-linux and PAM) one action.",
    )
    details: dict[str, str] = Field(default_factory=dict)


DEFAULT_GROUP_WINDOW = timedelta(minutes=10)
"""A rule's `group_window` unless it sets one."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str
    kind: EventKind = Field(
        default=EventKind.OTHER,
        description="What the rule recognises: `login`, `privilege`, `change` or `other`. The "
        "HIDS match (`/v1/approvals/match`) only answers a question with events of its kind.",
    )
    match: RuleMatch
    event: EventTemplate | None = Field(
        default=None, description="The event it builds; required unless `non_event`."
    )
    non_event: bool = Field(
        default=False,
        description="A well-known record that is no action to ask about (a failed login, a "
        "disconnect, PAM bookkeeping): counted as `non_event`, never reviewed. Tried only when "
        "no event rule recognises the record, so it can never hide an event.",
    )
    routing: Routing = Routing.DM_ACTOR
    approvers: Literal["actor", "security_team"] | list[str] = Field(
        default="actor",
        description="`actor` (the actor or the security team), `security_team`, or Slack user "
        "ids that may approve besides the security team.",
    )
    renotify_after: Duration | None = None
    enabled: bool = True
    urgency: Urgency | None = Field(
        default=None,
        description="`high` pages at any hour, `low` only within business hours. Default: "
        "`low` for `kind: privilege` (sudo, su) unless the actor is root, else `high`.",
    )
    severity: Severity | None = Field(
        default=None, description="Of this rule's pages (PagerDuty's severity); default warning."
    )
    escalation: EscalationPolicy | None = Field(
        default=None, description="This rule's own policy (steps), instead of the config's."
    )
    pagerduty: PagerDutyOptions | None = Field(
        default=None, description="`page_after` (and its `severity`) for this rule's events."
    )
    group_window: DurationOrOff | None = Field(
        default=None,
        description="Events of this rule by the same actor on the same host (asked of the same "
        "people) within this long of the first, while it is undecided, are one question "
        "updated in place (issue 13). `off` or `0`: each is asked on its own. None: the "
        "config's `group_window`.",
    )
    step_up: StepUpMethod | None = Field(
        default=None,
        description="`passkey`: *Approve* in Slack answers with a one-time link, and only the "
        "approver's passkey (with user verification) on Powertrip's page approves. *Not me* "
        "stays one click. The config's `step_up_rules` sets it on any rule, built-in ones too.",
    )

    @field_validator("id")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _check(self) -> Rule:
        compiled = self._compiled()
        groups = set(compiled["message"].groupindex) if compiled.get("message") else set()
        builtins = {"host", "program", "message", "source", "provider_id"}
        # A rule over plain lines can only use its groups; a JSON rule may name any field path.
        if self.match.message is not None and not (self.match.fields or self.match.field_patterns):
            for name, template in self._templates():
                for placeholder in _PLACEHOLDER.findall(template):
                    for ref in placeholder.split("|"):
                        if ref not in groups and ref not in builtins:
                            raise RuleError(
                                f"rule {self.id!r}: {name} uses {{{ref}}} but the message regex "
                                f"has no group named {ref!r} (groups: {sorted(groups) or 'none'})"
                            )
        if not (self.match.message or self.match.fields or self.match.field_patterns):
            raise RuleError(f"rule {self.id!r}: match needs a message regex or JSON fields")
        if self.event is None and not self.non_event:
            raise RuleError(f"rule {self.id!r}: needs an `event` (or `non_event: true`)")
        if self.escalation is not None:
            simple = [
                name
                for name, given in (
                    ("renotify_after", self.renotify_after is not None),
                    ("pagerduty.page_after", bool(self.pagerduty and self.pagerduty.page_after)),
                )
                if given
            ]
            if simple:
                raise RuleError(
                    f"rule {self.id!r}: escalation: gives the whole policy; drop "
                    f"{' and '.join(simple)} (or put them in its steps)"
                )
        return self

    def escalation_policy(self, defaults: EscalationDefaults) -> EscalationPolicy:
        """This rule's policy over the config's `defaults` (EscalationDefaults.policy_for)."""
        cached = self.__dict__.get("_policy")
        if cached is not None and cached[0] is defaults:
            return cached[1]
        policy = defaults.policy_for(
            escalation=self.escalation,
            renotify_after=self.renotify_after,
            pagerduty=self.pagerduty,
            severity=self.severity,
        )
        self.__dict__["_policy"] = (defaults, policy)
        return policy

    def _templates(self) -> list[tuple[str, str]]:
        event = self.event
        if event is None:
            return []
        pairs = [("actor", event.actor), ("action", event.action)]
        pairs += [
            (k, v)
            for k, v in (
                ("host", event.host),
                ("address", event.address),
                ("port", event.port),
                ("identity", event.identity),
            )
            if v is not None
        ]
        pairs += [(f"details.{k}", v) for k, v in event.details.items()]
        return pairs

    def _compiled(self) -> dict[str, Any]:
        cached = self.__dict__.get("_patterns")
        if cached is not None:
            return cached
        patterns: dict[str, Any] = {}
        sources = {
            "message": self.match.message,
            "program": self.match.program,
            "host": self.match.host,
            "unless": self.match.unless,
        }
        sources.update({f"field:{k}": v for k, v in self.match.field_patterns.items()})
        sources.update({f"unless:{k}": v for k, v in self.match.unless_fields.items()})
        sources.update({f"extract:{k}": v for k, v in self.match.extract.items()})
        for where, pattern in sources.items():
            if pattern is None:
                continue
            try:
                patterns[where] = compile_pattern(pattern)
            except re2.error as exc:
                raise RuleError(
                    f"rule {self.id!r}: {where} regex does not compile: {_re2_reason(pattern, exc)}"
                ) from exc
        self.__dict__["_patterns"] = patterns
        return patterns

    def apply(self, raw: RawEvent) -> dict[str, str] | None:
        """The values a match binds, or None when this rule does not recognise the record."""
        values = self._evaluate(raw)
        return values if isinstance(values, dict) else None

    def why_not(self, raw: RawEvent) -> str | None:
        """Why this rule does not recognise the record (for `powertrip rules test`); None if it
        does."""
        values = self._evaluate(raw)
        return values if isinstance(values, str) else None

    def _evaluate(self, raw: RawEvent) -> dict[str, str] | str:
        patterns = self._compiled()
        # A condition on a field never passes when the record lacks the field or leaves it
        # empty: a bare line claiming to be sshd's is not sshd's.
        if self.match.namespace and raw.id_namespace != self.match.namespace:
            return f"not a {self.match.namespace} record from a route configured as one"
        for name in ("program", "host"):
            actual = getattr(raw, name)
            if name in patterns and not (actual and patterns[name].search(actual)):
                return f"{name} {actual!r} does not match {getattr(self.match, name)!r}"
        values: dict[str, str] = {"source": raw.source, "provider_id": raw.provider_id}
        for key, wanted in self.match.fields.items():
            actual = lookup(raw.fields, key)
            options = wanted if isinstance(wanted, list) else [wanted]
            if actual in (None, "") or actual not in options:
                return f"field {key} is {actual!r}, not {_options(options)}"
        for key, pattern in patterns.items():
            kind, _, path = key.partition(":")
            if not path or kind == "unless":
                continue
            actual = lookup(raw.fields, path)
            text = None if actual in (None, "") else str(actual)
            found = None if text is None or len(text) > MAX_MESSAGE_CHARS else pattern.search(text)
            if found is not None:
                values.update({k: v for k, v in found.groupdict().items() if v is not None})
            elif kind == "field":
                return f"field {path} ({actual!r}) does not match {pattern.pattern!r}"
        if "message" in patterns:
            if len(raw.message) > MAX_MESSAGE_CHARS:
                return (
                    f"message is {len(raw.message)} characters; "
                    f"rules read at most {MAX_MESSAGE_CHARS}"
                )
            found = patterns["message"].search(raw.message)
            if found is None:
                return "message does not match the regex"
            values.update({k: v for k, v in found.groupdict().items() if v is not None})
        if "unless" in patterns and patterns["unless"].search(raw.message):
            return "message matches the rule's `unless` regex"
        for path in self.match.unless_fields:
            actual = lookup(raw.fields, path)
            if actual is not None and patterns[f"unless:{path}"].search(str(actual)):
                return f"field {path} ({actual!r}) vetoes the match"
        return values

    def build(
        self,
        raw: RawEvent,
        values: dict[str, str],
        default_renotify: timedelta,
        escalation: EscalationDefaults | None = None,
        group_window: timedelta = DEFAULT_GROUP_WINDOW,
    ) -> SecurityEvent:
        """The event this rule recognised in `raw` (`values`: what its match extracted);
        `default_renotify`, `escalation` and `group_window`: the config's, for what the rule
        does not set. ValueError when the rule builds no event or no actor."""
        event = self.event
        if event is None:
            raise ValueError(f"rule {self.id!r} recognises a non-event: it builds no event")

        def render(template: str) -> str:
            return _PLACEHOLDER.sub(lambda m: _resolve(m.group(1), raw, values), template).strip()

        occurred, zoneless = raw.received_at, raw.time_without_zone
        if event.time:
            value = lookup(raw.fields, event.time)
            if (own := _parse_time(value)) is not None:
                occurred, zoneless = own, _parse_time(value, assume_utc=False) is None
        details = {k: rendered for k, v in event.details.items() if (rendered := render(v))}
        actor = render(event.actor)
        if not actor:
            raise ValueError(f"rule {self.id!r} matched but produced no actor")
        defaults = escalation or EscalationDefaults.from_config(default_renotify)
        return SecurityEvent(
            event_id=raw.event_id,
            source=raw.source,
            provider_id=raw.provider_id,
            rule_id=self.id,
            rule_title=self.title,
            kind=self.kind,
            action=render(event.action),
            actor=actor,
            host=(render(event.host) or None) if event.host else None,
            address=(render(event.address) or None) if event.address else None,
            port=_port(render(event.port)) if event.port else None,
            occurred_at=occurred or datetime.now(UTC),
            time_without_zone=occurred is not None and zoneless,
            message=clip(raw.message, MAX_MESSAGE_CHARS),
            addendum_id=raw.addendum_id,
            identity_text=(render(event.identity) or None) if event.identity else None,
            details=details,
            routing=self.routing,
            renotify_after_seconds=(self.renotify_after or default_renotify).total_seconds(),
            actor_may_approve=self.approvers == "actor",
            extra_approvers=self.approvers if isinstance(self.approvers, list) else [],
            urgency=self.urgency or default_urgency(self.kind, actor),
            escalation=self.escalation_policy(defaults),
            business_hours=defaults.business_hours,
            step_up=self.step_up,
            group_window_seconds=(
                group_window if self.group_window is None else self.group_window
            ).total_seconds(),
        )


ROOT_ACCOUNTS = frozenset({"root"})
"""Actors whose every event is high urgency, whatever the rule's kind."""


def default_urgency(kind: EventKind, actor: str) -> Urgency:
    """A rule without `urgency`: ordinary privilege use (sudo, su) can wait for business
    hours; anything by root, and every login, change or other event, cannot."""
    if actor.lower() in ROOT_ACCOUNTS:
        return Urgency.HIGH
    return Urgency.LOW if kind is EventKind.PRIVILEGE else Urgency.HIGH


def _port(text: str) -> int | None:
    """A rendered port: a number from 0 to 65535, else none (a template whose group is empty, a
    number no port has: `99999`, 5000 digits, `²`)."""
    port = decimal(text, 5)
    return port if port is not None and 0 <= port <= 65535 else None


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lookup(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested dicts and lists; None where the path does not exist."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def _options(options: list[Any]) -> str:
    return repr(options[0]) if len(options) == 1 else f"one of {options!r}"


def _resolve(placeholder: str, raw: RawEvent, values: dict[str, str]) -> str:
    for name in placeholder.split("|"):
        if name in values:
            found: Any = values[name]
        elif name in ("host", "program", "message"):
            found = getattr(raw, name)
        else:
            found = lookup(raw.fields, name)
        if found not in (None, ""):
            return str(found)
    return ""


def _parse_time(value: Any, assume_utc: bool = True) -> datetime | None:
    """An ISO 8601 time; one without a zone is UTC, or None unless `assume_utc`. None too for
    a time no record can have (`models.out_of_range`): the record's own time stands."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if out_of_range(parsed):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC) if assume_utc else None
    return parsed


class RuleSet:
    """The active rules, in order: the first event rule that recognises a record wins; non-event
    rules are tried only after every event rule passed on it."""

    def __init__(
        self,
        rules: list[Rule],
        default_renotify: timedelta,
        escalation: EscalationDefaults | None = None,
        group_window: timedelta = DEFAULT_GROUP_WINDOW,
    ) -> None:
        enabled = [rule for rule in rules if rule.enabled]
        self.group_window = group_window
        self.rules = [rule for rule in enabled if not rule.non_event]
        self.non_event_rules = [rule for rule in enabled if rule.non_event]
        self.default_renotify = default_renotify
        self.escalation = escalation or EscalationDefaults.from_config(default_renotify)

    def recognise(self, raw: RawEvent) -> SecurityEvent | None:
        for rule in self.rules:
            values = rule.apply(raw)
            if values is not None:
                return rule.build(
                    raw, values, self.default_renotify, self.escalation, self.group_window
                )
        return None

    def _build(self, rule: Rule, raw: RawEvent, values: dict[str, str]) -> SecurityEvent:
        return rule.build(raw, values, self.default_renotify, self.escalation, self.group_window)

    def non_event(self, raw: RawEvent) -> Rule | None:
        """The non-event rule that knows this record (call after `recognise` found no event)."""
        return next((rule for rule in self.non_event_rules if rule.apply(raw) is not None), None)

    def explain(self, raw: RawEvent) -> tuple[SecurityEvent | None, dict[str, str]]:
        """The event the first recognising rule builds, else why each event rule passed on the
        record."""
        reasons: dict[str, str] = {}
        for rule in self.rules:
            values = rule._evaluate(raw)
            if isinstance(values, dict):
                return rule.build(
                    raw, values, self.default_renotify, self.escalation, self.group_window
                ), reasons
            reasons[rule.id] = values
        return None, reasons
