"""Authenticated decisions: only the component that verified the human may decide an event, and
only as that component. This module signs and verifies; `powertrip.services.decisions` sends,
`activities.decisions` verifies in the worker.

Each signer has a key of its own:
- the **API** (`POWERTRIP_DECISION_KEY`) signs what Slack's request signature proved: a click
  (`via: slack`) by the user Slack names;
- the **CLI** (`POWERTRIP_CLI_DECISION_KEY`), for the security team's `powertrip events approve`,
  signs `via: cli` decisions only, with the operator (`user@host`) that ran it.
The worker holds both and verifies each decision in a local activity before the workflow counts
it, and checks that its `via` is one its signer may vouch for: whoever holds the CLI's key (every
operator) can record an operator's override, never what looks like the owner's own click. Anyone
who can only reach Temporal (its frontend, the `temporal` CLI, the Web UI) can still send a
`decide` signal, but not a signed one: the workflow records it as `rejected` and changes nothing.

The signature is `v1=` + hex HMAC-SHA256 over canonical JSON (sorted keys, no spaces, ASCII) of
the event id and every field of the `Click` except `signature` and `response_url`: action, user
and user name, the signing time, `via`, reason, operator (CLI: `user@host`), a refusal, and a
random nonce the workflow takes once, so a signed decision read from one event's history can be
replayed neither to that event nor to another. Fields left unset are left out, so an API or CLI
one release older or newer than the worker still signs the same message. Which key verified it
says who signed it (the verdict names the signer); the message format is the one decisions had
when one key was shared, so workers and APIs of either release verify each other's Slack clicks
while an upgrade rolls out.

The key never enters workflow code or history: the local activity's verdict is recorded in
history, so replaying a workflow does not depend on the keys a worker holds today, and a rotated
key (`POWERTRIP_DECISION_KEY_PREVIOUS`, `POWERTRIP_CLI_DECISION_KEY_PREVIOUS` on the worker while
the new one rolls out) changes no past result.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from powertrip.contracts.approval import Action, Click, Verdict
from powertrip.contracts.expectations import Expectation, Revocation
from powertrip.settings import Settings, SettingsError

SIGNATURE_VERSION = "v1"
MIN_KEY_CHARS = 32
_UNSIGNED_FIELDS = {"signature", "response_url"}
# What `events approve` sets on a decision (powertrip.services.decisions.approve_as_security):
# a decision the CLI's key signed with any other field set (one a later release gives a meaning,
# such as proof of a step-up) is one the CLI never sent.
_CLI_FIELDS = {
    "action", "user", "at", "via", "name", "reason", "operator", "refused", "nonce", "signature",
}  # fmt: skip


class Signer(StrEnum):
    """Who signed a decision: the component whose key verified it."""

    API = "api"
    """`POWERTRIP_DECISION_KEY`: the API, after Slack's request signature."""
    CLI = "cli"
    """`POWERTRIP_CLI_DECISION_KEY`: `powertrip events approve`."""

    @property
    def setting(self) -> str:
        return "decision_key" if self is Signer.API else "cli_decision_key"

    def may_sign(self, click: Click) -> bool:
        """The CLI's key vouches only for what `events approve` sends: an approval `via: cli`
        with the fields it sets, no other (the workflow also requires its user to be on the
        security team). The API's key
        vouches for what Slack proved (`via: slack`) and, for decisions an older CLI signed
        while one key was shared (the API's, now), `via: cli` too: it is the stronger key, and
        stays on the API's hosts. Never the CLI's: a step-up's proof (`step_up`,
        `credential`), which only the API sets, after the approver's passkey answered."""
        if self is Signer.CLI:
            return click.via == "cli" and click.action is Action.APPROVE and not _beyond_cli(click)
        return True


def _beyond_cli(click: Click) -> list[str]:
    """The fields set on `click` that `events approve` never sets, sorted."""
    return sorted(click.model_dump(exclude_none=True).keys() - _CLI_FIELDS)


def _key(settings: Settings, signer: Signer, who: str) -> str:
    name = f"POWERTRIP_{signer.setting.upper()}"
    settings.require(signer.setting, who=who)
    key = settings.secret(signer.setting)
    if len(key) < MIN_KEY_CHARS:
        raise SettingsError(
            f"{name} is {len(key)} characters; the {who} needs at least "
            f"{MIN_KEY_CHARS} (e.g. `openssl rand -hex 32`)"
        )
    return key


def decision_key(settings: Settings, who: str) -> str:
    """The API's signing key (POWERTRIP_DECISION_KEY), checked at start-up.

    Raises SettingsError naming it when it is missing or shorter than MIN_KEY_CHARS."""
    return _key(settings, Signer.API, who)


def cli_decision_key(settings: Settings, who: str) -> str:
    """The CLI's signing key (POWERTRIP_CLI_DECISION_KEY), checked before `events approve`.

    Raises SettingsError naming it when it is missing or shorter than MIN_KEY_CHARS."""
    return _key(settings, Signer.CLI, who)


def verification_keys(settings: Settings) -> dict[Signer, list[str]]:
    """The worker's keys per signer: the current one, then the `_PREVIOUS` one if set.

    Raises SettingsError when one is missing or short, or when the CLI's key is one of the
    API's (then every operator could sign as the API)."""
    keys = {
        Signer.API: [decision_key(settings, "worker")],
        Signer.CLI: [cli_decision_key(settings, "worker")],
    }
    for signer, previous in (
        (Signer.API, settings.decision_key_previous),
        (Signer.CLI, settings.cli_decision_key_previous),
    ):
        if previous is not None:
            keys[signer].append(previous.get_secret_value())
    if set(keys[Signer.API]) & set(keys[Signer.CLI]):
        raise SettingsError(
            "POWERTRIP_CLI_DECISION_KEY must differ from POWERTRIP_DECISION_KEY (and from each "
            "`_PREVIOUS`): the CLI's operators must not hold the key that signs Slack clicks"
        )
    return keys


def _message(event_id: str, click: Click) -> bytes:
    fields = click.model_dump(mode="json", exclude=_UNSIGNED_FIELDS, exclude_none=True)
    document = {"event_id": event_id, **fields}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signature(key: str, event_id: str, click: Click) -> str:
    digest = hmac.new(key.encode(), _message(event_id, click), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def sign(key: str, event_id: str, click: Click) -> Click:
    """A copy of `click` for `event_id` with a fresh nonce and its signature."""
    unsigned = click.model_copy(update={"nonce": secrets.token_urlsafe(16), "signature": None})
    return unsigned.model_copy(update={"signature": _signature(key, event_id, unsigned)})


def signed_click(key: str, event_id: str, action: Action, user: str, **fields: object) -> Click:
    """A new decision by `user`, signed now; `fields` are the other `Click` fields."""
    click = Click.model_validate(
        {"action": action, "user": user, "at": datetime.now(UTC), **fields}
    )
    return sign(key, event_id, click)


def verify(keys: Mapping[Signer, Sequence[str]], event_id: str, click: Click) -> Verdict:
    """Whether one of `keys` signed exactly this click for exactly this event, and its signer
    may vouch for such a click (`Signer.may_sign`). The verdict names the signer.

    Taking the nonce once is the workflow's part (it holds the nonces it took)."""
    if not click.signature:
        return Verdict(authentic=False, reason="unsigned")
    if not click.nonce:
        return Verdict(authentic=False, reason="no nonce")
    if not click.signature.startswith(f"{SIGNATURE_VERSION}="):
        return Verdict(authentic=False, reason="unknown signature version")
    signer = next(
        (
            signer
            for signer, signer_keys in keys.items()
            if any(
                hmac.compare_digest(_signature(k, event_id, click), click.signature)
                for k in signer_keys
            )
        ),
        None,
    )
    if signer is None:
        return Verdict(
            authentic=False,
            reason="bad signature (forged, altered, meant for another event, or signed with a "
            "key this worker does not hold)",
        )
    if not signer.may_sign(click):
        beyond = _beyond_cli(click)
        carrying = f" carrying {', '.join(beyond)}" if beyond else ""
        return Verdict(
            authentic=False,
            reason="signed with the CLI's key, which vouches only for an operator's override "
            f"(approve via cli), not {click.action.value} via {click.via[:16]!r}{carrying}",
        )
    return Verdict(authentic=True, signer=signer.value)


def operator() -> str:
    """Who runs this CLI: the operating-system user and host, `user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (minimal containers)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


# Expectations (issue 13): created and revoked as decisions are, by whoever verified the human.

_EXPECTATION_UNSIGNED = {"signature", "status", "revoked_by", "revoked_at"}


def _document_signature(key: str, kind: str, subject: str, document: dict[str, object]) -> str:
    message = json.dumps(
        {"kind": kind, "subject": subject, **document},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()
    return f"{SIGNATURE_VERSION}={hmac.new(key.encode(), message, hashlib.sha256).hexdigest()}"


def _expectation_fields(expectation: Expectation) -> dict[str, object]:
    return expectation.model_dump(mode="json", exclude=_EXPECTATION_UNSIGNED, exclude_none=True)


def _revocation_fields(revocation: Revocation) -> dict[str, object]:
    return revocation.model_dump(mode="json", exclude={"signature"}, exclude_none=True)


def sign_expectation(key: str, expectation: Expectation) -> Expectation:
    """A copy of `expectation` with a fresh nonce and its signature (over every field the
    creator set: actor, hosts, rules, until, reason, creator, via, operator, nonce)."""
    unsigned = expectation.model_copy(
        update={"nonce": secrets.token_urlsafe(16), "signature": None}
    )
    signature = _document_signature(key, "expectation", unsigned.id, _expectation_fields(unsigned))
    return unsigned.model_copy(update={"signature": signature})


def sign_revocation(key: str, expectation_id: str, revocation: Revocation) -> Revocation:
    """A copy of `revocation` of `expectation_id`, with a fresh nonce and its signature."""
    unsigned = revocation.model_copy(update={"nonce": secrets.token_urlsafe(16), "signature": None})
    signature = _document_signature(key, "revocation", expectation_id, _revocation_fields(unsigned))
    return unsigned.model_copy(update={"signature": signature})


def _signer_of(
    keys: Mapping[Signer, Sequence[str]], signature: str | None, sign_with: Callable[[str], str]
) -> Signer | None:
    if not signature or not signature.startswith(f"{SIGNATURE_VERSION}="):
        return None
    return next(
        (
            signer
            for signer, signer_keys in keys.items()
            if any(hmac.compare_digest(sign_with(k), signature) for k in signer_keys)
        ),
        None,
    )


def verify_expectation(keys: Mapping[Signer, Sequence[str]], expectation: Expectation) -> Verdict:
    """Whether one of `keys` signed exactly this expectation. The CLI's key vouches only for
    `via: cli` ones (the caller also requires their creator to be on the security team)."""
    fields = _expectation_fields(expectation)
    signer = _signer_of(
        keys,
        expectation.signature,
        lambda k: _document_signature(k, "expectation", expectation.id, fields),
    )
    if signer is None:
        return Verdict(authentic=False, reason="unsigned, forged or altered")
    if signer is Signer.CLI and expectation.via != "cli":
        return Verdict(authentic=False, reason=f"the CLI's key signed a via {expectation.via!r}")
    return Verdict(authentic=True, signer=signer.value)


def verify_revocation(
    keys: Mapping[Signer, Sequence[str]], expectation_id: str, revocation: Revocation
) -> Verdict:
    """Whether one of `keys` signed exactly this revocation of `expectation_id`."""
    fields = _revocation_fields(revocation)
    signer = _signer_of(
        keys,
        revocation.signature,
        lambda k: _document_signature(k, "revocation", expectation_id, fields),
    )
    if signer is None:
        return Verdict(authentic=False, reason="unsigned, forged or altered")
    return Verdict(authentic=True, signer=signer.value)
