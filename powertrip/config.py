"""The YAML config file (`POWERTRIP_CONFIG`): who is who, who may approve, and the rules."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from powertrip.business_hours import BusinessHours
from powertrip.durations import Duration, DurationOrOff, parse_duration
from powertrip.escalation import EscalationDefaults, EscalationPolicy, PagerDutyOptions
from powertrip.models import StepUpMethod
from powertrip.rules import DEFAULT_GROUP_WINDOW, Rule, RuleSet
from powertrip.sources.log_search import SearchScope
from powertrip.sources.shippers import FieldMap

# How long the owner may still say *Not me* after the security team approved on their behalf.
DEFAULT_CONTEST_WINDOW = timedelta(days=7)


class ConfigError(ValueError):
    """The config file cannot be used; the message says where and why."""


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slack: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]+$")
    email: str | None = None
    shared: bool = Field(default=False, description="A shared account: the security team approves.")

    @model_validator(mode="after")
    def _needs_identity(self) -> UserEntry:
        if not (self.slack or self.email or self.shared):
            raise ValueError("give `slack` (a user id), `email`, or `shared: true`")
        return self


class PollOptions(SearchScope):
    """Continuous polling of a source's search API, as a Temporal Schedule (`powertrip-poll-*`)."""

    every: Duration = Field(default=timedelta(minutes=1), description="Poll interval.")
    alert_after: Duration = Field(
        default=timedelta(minutes=15),
        description="Tell the security channel (once) when polling has failed this long.",
    )
    lookback: Duration = Field(
        default=timedelta(hours=1), description="How far back the very first poll looks."
    )


class SourceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_unmatched: bool = Field(
        default=False, description="Count unmatched lines but do not ask the team to review them."
    )
    poll: PollOptions | None = Field(default=None, description="Poll this source's API.")
    case_insensitive_users: bool = Field(
        default=False,
        description="The systems behind this source treat user names case-insensitively "
        "(Windows/AD): fold case when mapping its actors to people. Off: names compare exactly, "
        "as unix user names do.",
    )
    fields: FieldMap | None = Field(
        default=None,
        description="JSON sources: where records keep id, time, host, program, pid and message "
        "when a shipper names them otherwise (dotted paths, tried before the shipper's names).",
    )


DEFAULT_RULE_PACKS = ("sshd", "sudo", "su")
"""The packs a config without `rule_packs` enables: host privileged access (logins, sudo, su).
Bursts of them are one question (`group_window`), so covering sudo no longer means a DM per
command (issue 13 §4)."""


class PowertripConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    security_channel: str | None = None
    security_team: list[str] = Field(default_factory=list)
    users: dict[str, UserEntry] = Field(default_factory=dict)
    bots: list[str] = Field(default_factory=list)
    renotify_after: Duration = timedelta(minutes=15)
    group_window: DurationOrOff = Field(
        default=DEFAULT_GROUP_WINDOW,
        description="Like events (same actor, host, rule and who is asked) within this long of "
        "the first, while it is undecided, are one question (issue 13); a rule's own "
        "`group_window` overrides it. `off`: every event is asked on its own.",
    )
    stale_after: Duration = Field(
        default=timedelta(days=7),
        description="Backfilled events older than this get no DM: one security-channel digest.",
    )
    rule_packs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RULE_PACKS),
        description="Built-in rule packs to enable, by name (default: host privileged access, "
        "`sshd`, `sudo` and `su`).",
    )
    rules: list[Rule] = Field(default_factory=list, description="Your own rules, tried first.")
    include: list[str] = Field(
        default_factory=list, description="More YAML files holding `rules:`, relative to this one."
    )
    sources: dict[str, SourceOptions] = Field(default_factory=dict)
    # Slack presentation and identity (issue 4).
    security_team_group: str | None = Field(
        default=None,
        pattern=r"^S[A-Z0-9]+$",
        description="A Slack user group (S…) whose members count as the security team, resolved "
        "with usergroups.users.list, besides `security_team`.",
    )
    networks: dict[str, str] = Field(
        default_factory=dict,
        description="CIDR -> label shown next to a source address, e.g. `10.8.0.0/16: office VPN`.",
    )
    reverse_dns: bool = Field(
        default=False, description="Also show the reverse-DNS name of a source address."
    )
    digest_after: int = Field(
        default=5,
        ge=1,
        description="When more reminders than this are due together, post one digest instead.",
    )
    reviews_before_digest: int = Field(
        default=3,
        ge=0,
        description="Unrecognised or invalid record shapes one source may post on their own "
        "each hour; later ones are listed in a digest.",
    )
    review_digest_every: Duration = Field(
        default=timedelta(minutes=10),
        description="At most one review digest per source this often.",
    )
    # Escalation (issue 14): powertrip/escalation.py says what each key means.
    escalation: EscalationPolicy | None = Field(
        default=None,
        description="The default policy (steps); without it, a reminder every "
        "`renotify_after` and, with `pagerduty.page_after`, one page.",
    )
    pagerduty: PagerDutyOptions = Field(
        default_factory=PagerDutyOptions,
        description="`page_after`: page on-call once when an event is undecided this long.",
    )
    business_hours: BusinessHours | None = Field(
        default=None,
        description="When low-urgency events may page: `{timezone, days, start, end}`.",
    )
    contest_window: Annotated[timedelta, BeforeValidator(parse_duration)] = Field(
        default=DEFAULT_CONTEST_WINDOW,
        ge=timedelta(0),
        description="After the security team approves on someone's behalf, that person may "
        "still say *Not me* this long (their DM keeps the button; the event stays open). "
        "`0`: an approval on behalf is final.",
    )

    max_expectation: Duration = Field(
        default=timedelta(hours=24),
        description="The longest an expectation (expected work, pre-approved) may last.",
    )
    step_up_rules: list[str] = Field(
        default_factory=list,
        description="Rule ids (yours, included ones or built-in packs') whose events need a "
        "passkey to approve, as if the rule said `step_up: passkey`.",
    )

    @field_validator("networks")
    @classmethod
    def _cidrs(cls, value: dict[str, str]) -> dict[str, str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"networks: {cidr!r} is not a CIDR ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _one_policy(self) -> PowertripConfig:
        if self.escalation is not None and "renotify_after" in self.model_fields_set:
            raise ValueError(
                "renotify_after: `escalation` gives the whole policy; put the reminders in its "
                "steps (`{do: remind, after: 15m, every: 15m}`) and drop renotify_after"
            )
        self.escalation_defaults()  # a page given twice
        return self

    @model_validator(mode="after")
    def _step_up_rules(self) -> PowertripConfig:
        known = {rule.id for rule in self.rules}
        unknown = [rule_id for rule_id in self.step_up_rules if rule_id not in known]
        if unknown:
            raise ValueError(
                f"step_up_rules: no rule {', '.join(map(repr, unknown))} (is its pack in "
                f"`rule_packs`?); known: {', '.join(sorted(known)) or 'none'}"
            )
        wanted = set(self.step_up_rules)
        self.rules = [
            rule.model_copy(update={"step_up": StepUpMethod.PASSKEY})
            if rule.id in wanted and rule.step_up is None
            else rule
            for rule in self.rules
        ]
        return self

    def escalation_defaults(self) -> EscalationDefaults:
        """The default policy, paging options and business hours every rule starts from."""
        cached = self.__dict__.get("_escalation_defaults")
        if cached is None:
            cached = EscalationDefaults.from_config(
                self.renotify_after, self.escalation, self.pagerduty, self.business_hours
            )
            self.__dict__["_escalation_defaults"] = cached
        return cached

    def rule_set(self) -> RuleSet:
        return RuleSet(
            self.rules, self.renotify_after, self.escalation_defaults(), self.group_window
        )

    def source_options(self, source: str) -> SourceOptions:
        return self.sources.get(source, SourceOptions())


def available_rule_packs() -> list[str]:
    folder = resources.files("powertrip") / "rulepacks"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def rule_pack(name: str) -> dict[str, Any]:
    """A built-in pack: `description` and `rules` (as data, validated when a config loads)."""
    path = resources.files("powertrip") / "rulepacks" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown rule pack {name!r}; available: {', '.join(available_rule_packs())}"
        )
    return dict(yaml.safe_load(path.read_text()))


def _pack_rules(name: str) -> list[dict[str, Any]]:
    return list(rule_pack(name)["rules"])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML config (byte {exc.start} is no UTF-8 text)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: Path | str | None) -> PowertripConfig:
    """Read the config file, its includes and the enabled rule packs; validate everything."""
    if path is None:
        return config_from_mapping({}, Path.cwd(), "config")
    return config_from_mapping(_read_yaml(Path(path)), Path(path).parent, str(path))


def config_from_mapping(data: dict[str, Any], base: Path, where: str) -> PowertripConfig:
    data = dict(data)
    rules = list(data.get("rules") or [])
    for include in data.get("include") or []:
        rules.extend(_read_yaml(base / include).get("rules") or [])
    for pack in data.get("rule_packs", DEFAULT_RULE_PACKS) or []:
        rules.extend(_pack_rules(pack))
    data["rules"] = rules
    try:
        config = PowertripConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where, rules)) from exc
    ids = [rule.id for rule in config.rules]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"{where}: rule ids used twice: {', '.join(duplicated)}")
    return config


def _explain(exc: ValidationError, where: str, rules: list[Any]) -> str:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        message = error["msg"]
        # `rules.12.escalation.steps.0.repeat` says little: name the rule by its id.
        rule = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and loc[1] < len(rules):
            given = rules[loc[1]]
            rule_id = given.get("id") if isinstance(given, dict) else None
            if rule_id:
                loc = loc[2:]
                rule = "" if f"rule {rule_id!r}" in message else f"rule {rule_id!r}: "
        # A policy is written as a bare list of steps.
        field = ".".join(str(p) for p in loc).replace("escalation.steps.", "escalation.")
        if rule:
            lines.append(f"  {rule}{field}: {message}" if field else f"  {rule}{message}")
        elif loc or not error["loc"]:
            lines.append(f"  {field or '(top level)'}: {message}")
        else:
            lines.append(f"  {message}")
    return f"{where}: invalid config\n" + "\n".join(lines)
