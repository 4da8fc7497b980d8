"""Temporal visibility's query language, as Powertrip speaks it: literals it can search for, event
filters over the `Powertrip*` search attributes, and the opaque page tokens that continue a list.

Pure: builds strings and checks tokens; the services (`views`, `hids`, `audit`, `known`) run the
queries. `RecordError` (an HTTP 422, a CLI message) names what cannot be asked as asked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from powertrip import temporal as attributes
from powertrip.contracts.approval import APPROVAL_WORKFLOW
from powertrip.hosts import HostMatch, host_key, is_address, short_host
from powertrip.models import EventStatus, RecordTime

WORKFLOW_TYPE = APPROVAL_WORKFLOW
MAX_PAGE_SIZE = 500


class RecordError(ValueError):
    """A request the record cannot answer as asked; the message says why (a 4xx, not a 5xx)."""


class PageTokenError(RecordError):
    """A `page_token` this API did not issue for these filters (HTTP 400)."""


def literal(value: str) -> str:
    """A visibility query string literal.

    The dev server (SQLite) cannot match values holding `"` or `\\` even when escaped, and no
    host or unix user contains them: refuse rather than silently find nothing.
    """
    if any(c in value for c in '"\\') or any(ord(c) < 32 for c in value):
        raise RecordError(f"{value!r} contains characters Temporal visibility cannot search for")
    return f'"{value}"'


def aware(at: datetime) -> datetime:
    """Times without a zone are ambiguous between a HIDS, a log provider and Temporal: refuse."""
    if at.tzinfo is None:
        raise RecordError(f"{at.isoformat()} has no time zone; add Z or an offset like +02:00")
    return at


def time_literal(at: datetime) -> str:
    """A visibility query datetime literal (UTC); RecordError for a time without a zone."""
    return f'"{aware(at).astimezone(UTC).isoformat()}"'


def host_clause(host: str, match: HostMatch) -> str:
    """Compare against `PowertripHostKey` (lower-cased full name, see powertrip.hosts)."""
    key = host_key(host)
    if not key:
        raise RecordError("host is empty")
    name = attributes.HOST_KEY.name
    if match is HostMatch.FQDN or is_address(key):
        return f"{name} = {literal(key)}"
    short = short_host(key)
    # `bastion`, `bastion.corp.example.com`, `Bastion.other.org`: same first label, same host.
    return f"({name} = {literal(short)} OR {name} STARTS_WITH {literal(short + '.')})"


class EventFilter(BaseModel):
    """Filters of `GET /v1/events` and `powertrip events list`; all optional, combined with AND."""

    status: EventStatus | None = Field(default=None, description="pending, approved, ...")
    actor: str | None = Field(default=None, description="The unix or cloud user, exactly.")
    host: str | None = Field(
        default=None, description="Host name, compared ignoring case (see `host_match`)."
    )
    host_match: HostMatch = Field(
        default=HostMatch.FQDN, description="`fqdn`: full name; `short`: first label decides."
    )
    rule: str | None = Field(default=None, description="Rule id, e.g. `sshd-accepted`.")
    source: str | None = Field(default=None, description="Source adapter, e.g. `papertrail`.")
    since: RecordTime | None = Field(default=None, description="Event time at or after this.")
    until: RecordTime | None = Field(default=None, description="Event time before this.")

    def query(self) -> str:
        """The visibility query; RecordError for values Temporal cannot search for."""
        clauses = [
            f"WorkflowType = {literal(WORKFLOW_TYPE)}",
            # A continued-as-new run is the same event; its successor carries memo and attributes.
            'ExecutionStatus != "ContinuedAsNew"',
        ]
        exact = [
            (attributes.STATUS.name, self.status.value if self.status else None),
            (attributes.ACTOR.name, self.actor),
            (attributes.RULE.name, self.rule),
            (attributes.SOURCE.name, self.source),
        ]
        clauses += [f"{name} = {literal(value)}" for name, value in exact if value is not None]
        if self.host is not None:
            clauses.append(host_clause(self.host, self.host_match))
        if self.since is not None:
            clauses.append(f"{attributes.EVENT_TIME.name} >= {time_literal(self.since)}")
        if self.until is not None:
            clauses.append(f"{attributes.EVENT_TIME.name} < {time_literal(self.until)}")
        if self.since and self.until and self.until <= self.since:
            raise RecordError("`until` must be later than `since`")
        return " AND ".join(clauses)


# Page tokens -----------------------------------------------------------------------------------


def _query_digest(query: str) -> bytes:
    return hashlib.sha256(query.encode()).digest()[:6]


# Without a key from the caller, tokens are valid in this process only (the CLI's own paging).
_PROCESS_KEY = secrets.token_bytes(32)
_MAC_BYTES = 16


def process_key() -> bytes:
    """A key page tokens are valid with in this process only (the CLI's own paging)."""
    return _PROCESS_KEY


def page_token_key(secret: str) -> bytes:
    """The key page tokens are signed with, from a secret every API replica shares (the API
    token), so a token from one replica is good on another."""
    return hashlib.sha256(b"powertrip page token\0" + secret.encode()).digest()


def _mac(key: bytes, query: str, token: bytes) -> bytes:
    return hmac.new(key, query.encode() + b"\0" + token, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_page_token(query: str, token: bytes, key: bytes = _PROCESS_KEY) -> str:
    """Opaque to clients, bound to the query it continues and signed: Temporal only ever sees
    page tokens it issued (an altered one made it fail with `Unknown` after ~10 s of retries)."""
    raw = _query_digest(query) + _mac(key, query, token) + token
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(query: str, text: str, key: bytes = _PROCESS_KEY) -> bytes:
    """The Temporal page token inside `text`; `PageTokenError` (a 400) for anything this API
    did not issue for these filters: other filters, altered, truncated, not base64."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PageTokenError("page_token is not a token this API issued") from exc
    digest, mac, token = raw[:6], raw[6 : 6 + _MAC_BYTES], raw[6 + _MAC_BYTES :]
    if digest != _query_digest(query):
        raise PageTokenError("page_token belongs to other filters; repeat the same filters")
    if not token or not hmac.compare_digest(mac, _mac(key, query, token)):
        raise PageTokenError("page_token is not a token this API issued (altered or truncated)")
    return token
