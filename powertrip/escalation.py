"""Escalation as data: what happens to an event nobody has decided, and when.

A policy is a list of steps after the question was first asked (the DM to the owner, or the
security channel for accounts nobody owns). Each step is one of:

- `remind`: a reminder in the security channel (today's reminders), `after` the question was
  asked, then every `every`, `repeat` more times (forever when `repeat` is not given);
- `page`: a PagerDuty page to the on-call human, `after` the question was asked, then every
  `every`, `repeat` more times (a page always repeats a bounded number of times).

```yaml
escalation:
  - {do: remind, after: 15m, every: 15m}
  - {do: page, after: 1h, every: 4h, repeat: 2, severity: warning}
```

`after` and `every` are elapsed time (UTC arithmetic: "1h" is one real hour across a DST change).
A repeat is due `every` after the previous one was *taken*, so a worker that was down for a day
takes one overdue step at once and the next `every` later, never a burst.

The simplest policy is today's `renotify_after` (a reminder every so long, forever);
`pagerduty: {page_after: 1h}` adds one page. How a rule's policy is found: `Rule` (rules.py)
and `EscalationDefaults.policy_for`.

Urgency and business hours (`business_hours.py`) shape only pages: a `low` urgency event outside
business hours is still asked and still reminded in the channel, but its pages wait for the
start of the next business period; a `high` urgency event pages at any hour. A *Not me* is not a
step: it pages at once, `critical`, whatever the policy (`paging.py`).

`next_step` is pure (no I/O, no clock): workflow code calls it with `workflow.now()`-derived
inputs and sleeps until the step it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from powertrip.business_hours import BusinessHours
from powertrip.durations import Duration, parse_duration


class Urgency(StrEnum):
    """How soon an undecided event may wake someone."""

    HIGH = "high"
    """Pages at any hour (logins, root, console logins; every *Not me*)."""
    LOW = "low"
    """Pages only within business hours; outside them, at the start of the next period."""


class Severity(StrEnum):
    """PagerDuty's `payload.severity`."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


DEFAULT_PAGE_SEVERITY = Severity.WARNING
"""An undecided event's page, unless its rule or step says otherwise. A *Not me* is critical."""


class StepKind(StrEnum):
    REMIND = "remind"
    """A reminder in the security channel."""
    PAGE = "page"
    """A PagerDuty page to whoever is on call."""


def _not_negative(value: object) -> timedelta:
    duration = parse_duration(value)
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {value!r}")
    return duration


Delay = Annotated[timedelta, BeforeValidator(_not_negative)]
"""A duration that may be zero (`after: 0`: at once)."""


class EscalationStep(BaseModel):
    """One step of a policy; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    do: StepKind
    after: Delay = Field(description="Since the question was first asked.")
    every: Duration | None = Field(default=None, description="Between repeats.")
    repeat: int | None = Field(
        default=None,
        ge=0,
        description="Repeats after the first; not given: none without `every`, and for a "
        "`remind` with `every`, forever.",
    )
    severity: Severity | None = Field(
        default=None, description="`page` only; default: the rule's severity, else warning."
    )

    @model_validator(mode="after")
    def _consistent(self) -> EscalationStep:
        if self.severity is not None and self.do is not StepKind.PAGE:
            raise ValueError("severity: only a `page` step has a severity")
        if self.repeat and self.every is None:
            raise ValueError(f"repeat: {self.repeat} repeats need `every` (how long between them)")
        if self.do is StepKind.PAGE and self.every is not None and self.repeat is None:
            raise ValueError(
                "repeat: a page that repeats must say how many times (`repeat: 2`); "
                "PagerDuty's own escalation policy keeps notifying within each page"
            )
        return self

    @property
    def occurrences(self) -> int | None:
        """How many times the step is taken in all; None: without end."""
        if self.every is None:
            return 1
        return None if self.repeat is None else 1 + self.repeat

    def describe(self) -> str:
        """e.g. `page (warning) after 1h, then every 4h, 2 more times`."""
        what = "remind the security channel" if self.do is StepKind.REMIND else "page on-call"
        if self.severity is not None:
            what += f" ({self.severity.value})"
        text = f"{what} after {format_duration(self.after)}"
        if self.every is not None:
            text += f", then every {format_duration(self.every)}"
            text += ", without end" if self.repeat is None else f", {self.repeat} more times"
        return text


class EscalationPolicy(BaseModel):
    """The steps taken while an event stays undecided; YAML gives them as a bare list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[EscalationStep] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        return {"steps": data} if isinstance(data, list) else data

    @classmethod
    def from_renotify(cls, renotify_after: timedelta) -> EscalationPolicy:
        """Today's behaviour: a reminder in the channel every `renotify_after`, forever."""
        return cls(
            steps=[EscalationStep(do=StepKind.REMIND, after=renotify_after, every=renotify_after)]
        )

    def steps_of(self, kind: StepKind) -> list[EscalationStep]:
        return [step for step in self.steps if step.do is kind]

    def with_reminders_every(self, renotify_after: timedelta) -> EscalationPolicy:
        """The same pages, and instead of its reminders one every `renotify_after`."""
        return EscalationPolicy(
            steps=[
                *EscalationPolicy.from_renotify(renotify_after).steps,
                *self.steps_of(StepKind.PAGE),
            ]
        )

    def with_one_page(self, page_after: timedelta) -> EscalationPolicy:
        """The same reminders, and instead of its pages one page `page_after` (once)."""
        page = EscalationStep(do=StepKind.PAGE, after=page_after)
        return EscalationPolicy(steps=[*self.steps_of(StepKind.REMIND), page])

    def with_severity(self, severity: Severity) -> EscalationPolicy:
        """Every page that names no severity gets `severity`."""
        return EscalationPolicy(
            steps=[
                step.model_copy(update={"severity": severity})
                if step.do is StepKind.PAGE and step.severity is None
                else step
                for step in self.steps
            ]
        )

    def describe(self) -> list[str]:
        """One line per step, starting with the question itself."""
        return ["ask the owner (or the security channel)"] + [s.describe() for s in self.steps]


class PagerDutyOptions(BaseModel):
    """`pagerduty:` in the config or a rule: the simple form of a policy's page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_after: Duration | None = Field(
        default=None,
        description="Page on-call once when nobody with authority has decided after this long.",
    )
    severity: Severity | None = Field(
        default=None, description="Of that page; default: the rule's severity, else warning."
    )


class EscalationDefaults(BaseModel):
    """What the config file says for every rule: the default policy, its paging options and
    business hours (each rule may override the first two)."""

    model_config = ConfigDict(frozen=True)

    policy: EscalationPolicy
    pagerduty: PagerDutyOptions = PagerDutyOptions()
    business_hours: BusinessHours | None = None

    @classmethod
    def from_config(
        cls,
        renotify_after: timedelta,
        escalation: EscalationPolicy | None = None,
        pagerduty: PagerDutyOptions | None = None,
        business_hours: BusinessHours | None = None,
    ) -> EscalationDefaults:
        """The config file's `escalation` (else `renotify_after`), with `pagerduty.page_after`
        as its one page when given. Raises ValueError when both forms name a page."""
        options = pagerduty or PagerDutyOptions()
        policy = escalation or EscalationPolicy.from_renotify(renotify_after)
        if options.page_after is not None:
            if escalation is not None and escalation.steps_of(StepKind.PAGE):
                raise ValueError(
                    "pagerduty.page_after: the `escalation` policy already has a page step; "
                    "give the page in one place"
                )
            policy = policy.with_one_page(options.page_after)
        return cls(policy=policy, pagerduty=options, business_hours=business_hours)

    def policy_for(
        self,
        *,
        escalation: EscalationPolicy | None = None,
        renotify_after: timedelta | None = None,
        pagerduty: PagerDutyOptions | None = None,
        severity: Severity | None = None,
    ) -> EscalationPolicy:
        """A rule's policy from its own settings, in this order:

        - its `escalation`, whole, if it has one; else the config's policy, where
        - its `renotify_after` replaces the reminders by one every so long, and
        - its `pagerduty.page_after` replaces the pages by one page after so long (once);

        then pages that name no severity get the rule's `pagerduty.severity`, else its
        `severity`, else the config's `pagerduty.severity`, else warning."""
        policy = escalation or self.policy
        if escalation is None and renotify_after is not None:
            policy = policy.with_reminders_every(renotify_after)
        if escalation is None and pagerduty is not None and pagerduty.page_after is not None:
            policy = policy.with_one_page(pagerduty.page_after)
        own = pagerduty.severity if pagerduty is not None else None
        return policy.with_severity(
            own or severity or self.pagerduty.severity or DEFAULT_PAGE_SEVERITY
        )


# --- The schedule --------------------------------------------------------------------------------


class TakenStep(BaseModel):
    """A step the workflow took: `step` indexes the policy's steps; `at` is when it was taken
    (the workflow's time, never the time the step was due: a page when its timer fired, a
    reminder once it was posted)."""

    step: int = Field(ge=0)
    at: datetime


class DueStep(BaseModel):
    """The next step, and when to take it."""

    step: int = Field(description="Index into the policy's steps.")
    do: StepKind
    occurrence: int = Field(description="0 for the first time, 1 for the first repeat, ...")
    occurrences: int | None = Field(description="How many in all; None: without end.")
    severity: Severity | None = Field(default=None, description="For a page.")
    planned: datetime = Field(description="When the policy alone would take it (UTC).")
    due: datetime = Field(description="When to take it (UTC): `planned`, or later if deferred.")

    @property
    def deferred(self) -> bool:
        """Moved to the start of the next business period (a low-urgency page)."""
        return self.due > self.planned

    def describe(self) -> str:
        """For the timeline, e.g. `page 2 of 3` or `remind 4`."""
        count = f" of {self.occurrences}" if self.occurrences is not None else ""
        return f"{self.do.value} {self.occurrence + 1}{count}"


def next_step(
    policy: EscalationPolicy,
    started_at: datetime,
    urgency: Urgency,
    business_hours: BusinessHours | None,
    taken: Sequence[TakenStep],
    only: StepKind | None = None,
) -> DueStep | None:
    """The step to take next and when, or None when the policy has nothing more to do.

    `started_at` is when the question was first asked (aware). `taken` lists every step taken
    so far (any order; entries for steps the policy does not have are ignored). `only`: consider
    steps of that kind alone (a reported event is still reminded of, but no longer paged about
    as undecided); step indexes stay the policy's. The earliest due step wins; at equal times,
    the one listed first. A due time may lie in the past (the worker was down): take it at once.
    Pure: no clock, no I/O; raises ValueError for naive times."""
    start = _utc(started_at)
    candidates: list[DueStep] = []
    for index, step in enumerate(policy.steps):
        if only is not None and step.do is not only:
            continue
        done = [_utc(t.at) for t in taken if t.step == index]
        limit = step.occurrences
        if limit is not None and len(done) >= limit:
            continue
        if not done:
            planned = start + step.after
        else:
            assert step.every is not None  # more than one occurrence needs `every`
            planned = max(done) + step.every
        due = planned
        if step.do is StepKind.PAGE and urgency is Urgency.LOW and business_hours is not None:
            due = business_hours.opening(planned)
        candidates.append(
            DueStep(
                step=index,
                do=step.do,
                occurrence=len(done),
                occurrences=limit,
                severity=step.severity,
                planned=planned,
                due=due,
            )
        )
    return min(candidates, key=lambda d: (d.due, d.step), default=None)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time without a zone: {at.isoformat()} (give an aware datetime)")
    return at.astimezone(UTC)


def format_duration(duration: timedelta) -> str:
    """`1h30m`, `15m`, `90s`, `0s`: the way config files write durations."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
