"""The WebAuthn relying party: ceremony options and response checks, all through py_webauthn
(`webauthn` on PyPI); no CBOR, COSE or signature code of our own.

Domain layer (docs/architecture.md): pure functions over bytes and models, no Temporal, no HTTP.
The RP id is the host of `POWERTRIP_PUBLIC_URL` and the only accepted origin is that URL's
scheme, host and port: an assertion made for any other site (a phishing page) never verifies here.

User verification (a PIN, fingerprint or face on the authenticator) is required in both
ceremonies: a passkey alone is something the thief of an unlocked laptop also has.
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from powertrip.contracts.passkeys import PasskeyCredential, PasskeyRefused, Refusal

# How long the browser gives the person to touch their authenticator.
CEREMONY_TIMEOUT_MS = 120_000
DEFAULT_LABEL = "Passkey"


@dataclass(frozen=True)
class VerifiedAssertion:
    credential: PasskeyCredential
    sign_count: int
    backed_up: bool


def new_challenge() -> bytes:
    """32 random bytes: unpredictable, and used for one ceremony only."""
    return secrets.token_bytes(32)


def clean_label(label: str | None) -> str:
    """A passkey's name as its owner typed it, safe to show anywhere: control and bidi
    characters removed, whitespace collapsed, at most 64 characters."""
    text = "".join(
        " " if ch.isspace() else ch
        for ch in (label or "")
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(text.split())[:64] or DEFAULT_LABEL


def _descriptors(credentials: list[PasskeyCredential]) -> list[PublicKeyCredentialDescriptor]:
    known = {t.value for t in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(c.credential_id),
            transports=[AuthenticatorTransport(t) for t in c.transports if t in known] or None,
        )
        for c in credentials
    ]


def _as_json(response: str | dict[str, Any]) -> str:
    return response if isinstance(response, str) else json.dumps(response)


@dataclass(frozen=True)
class RelyingParty:
    """`rp_id`: a host name (`powertrip.example.com`, `localhost`); `origin`: the exact origin
    browsers report (`https://powertrip.example.com`, `http://localhost:8000`)."""

    rp_id: str
    origin: str
    name: str = "Powertrip"

    @classmethod
    def for_public_url(cls, public_url: str) -> RelyingParty:
        url = urlsplit(public_url)
        if not url.hostname:
            raise ValueError(f"no host in {public_url!r}")
        return cls(rp_id=url.hostname, origin=f"{url.scheme}://{url.netloc}")

    def registration_options(
        self,
        *,
        challenge: bytes,
        user_handle: str,
        user_name: str,
        existing: list[PasskeyCredential],
    ) -> str:
        """`PublicKeyCredentialCreationOptionsJSON` for `navigator.credentials.create`. The
        user's passkeys are excluded so one authenticator is not registered twice."""
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.name,
            user_id=base64url_to_bytes(user_handle),
            user_name=user_name,
            user_display_name=user_name,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=_descriptors(existing),
        )
        return options_to_json(options)

    def authentication_options(
        self, *, challenge: bytes, credentials: list[PasskeyCredential]
    ) -> str:
        """`PublicKeyCredentialRequestOptionsJSON` for `navigator.credentials.get`, listing only
        the link user's passkeys."""
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=_descriptors(credentials),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options)

    def verify_registration(
        self, response: str | dict[str, Any], *, challenge: bytes, label: str | None, now: datetime
    ) -> PasskeyCredential:
        """Check `navigator.credentials.create`'s answer (its `toJSON()`); return the credential
        to store. Raises PasskeyRefused (USER_VERIFICATION_MISSING or INVALID_RESPONSE)."""
        try:
            parsed = parse_registration_credential_json(_as_json(response))
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            raise _refused(exc, _registration_user_verified(response)) from exc
        return PasskeyCredential(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=[t.value for t in parsed.response.transports or []],
            label=clean_label(label),
            created_at=now,
            aaguid=verified.aaguid,
            backed_up=verified.credential_backed_up,
        )

    def verify_assertion(
        self,
        response: str | dict[str, Any],
        *,
        challenge: bytes,
        credentials: list[PasskeyCredential],
        user_handle: str,
    ) -> VerifiedAssertion:
        """Check `navigator.credentials.get`'s answer against the link user's passkeys.

        The sign count is *not* compared here but by the credential workflow, atomically with
        storing the new one (two concurrent assertions must not both pass). Raises PasskeyRefused:
        CREDENTIAL_NOT_REGISTERED (a passkey that is not the user's), USER_VERIFICATION_MISSING,
        INVALID_RESPONSE (bad signature, challenge, origin, RP id, malformed JSON).
        """
        try:
            parsed = parse_authentication_credential_json(_as_json(response))
        except WebAuthnException as exc:
            raise PasskeyRefused(Refusal.INVALID_RESPONSE, str(exc)) from exc
        credential_id = bytes_to_base64url(parsed.raw_id)
        stored = next((c for c in credentials if c.credential_id == credential_id), None)
        handle = parsed.response.user_handle
        if stored is None or (handle and bytes_to_base64url(handle) != user_handle):
            raise PasskeyRefused(
                Refusal.CREDENTIAL_NOT_REGISTERED,
                "this passkey is not registered to the user the link was sent to",
                credential_id,
            )
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(stored.public_key),
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            raise _refused(exc, _user_verified(parsed), credential_id) from exc
        return VerifiedAssertion(
            credential=stored,
            sign_count=verified.new_sign_count,
            backed_up=verified.credential_backed_up,
        )


def _refused(
    exc: WebAuthnException, user_verified: bool, credential_id: str | None = None
) -> PasskeyRefused:
    """An answer without the UV flag is told apart from a broken one, so the person learns to
    use a passkey that verifies them. Unreadable data counts as verified in the helpers below
    (the refusal is then INVALID_RESPONSE)."""
    refusal = Refusal.INVALID_RESPONSE if user_verified else Refusal.USER_VERIFICATION_MISSING
    return PasskeyRefused(refusal, str(exc), credential_id)


def _user_verified(parsed: AuthenticationCredential) -> bool:
    try:
        return parse_authenticator_data(parsed.response.authenticator_data).flags.uv
    except WebAuthnException:
        return True


def _registration_user_verified(response: str | dict[str, Any]) -> bool:
    try:
        parsed = parse_registration_credential_json(_as_json(response))
        return parse_attestation_object(parsed.response.attestation_object).auth_data.flags.uv
    except WebAuthnException:
        return True
