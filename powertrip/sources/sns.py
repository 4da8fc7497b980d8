"""Amazon SNS HTTP(S) subscriptions: CloudWatch Logs data (or any text) relayed by a topic.

Every message is checked before anything in it is believed: the topic must be one we were told
to trust, the signing certificate must come from `https://sns.<the topic's region>.amazonaws.com/`
(checked before it is fetched, so a forged URL never makes us call out), and the signature
(version 1: SHA1, version 2: SHA256, RSA PKCS#1 v1.5) must verify over the canonical string SNS
signs. A `SubscriptionConfirmation` is confirmed (GET `SubscribeURL`, checked the same way) only
for a trusted topic. A message whose signed `Timestamp` is older than `max_age` (or in the future
beyond clock skew) is refused: a captured message cannot be replayed later. Signing
certificates are cached, a bounded number for a bounded time.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from cachetools import TTLCache
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from powertrip import jsontext
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid
from powertrip.sources.cloudwatch import parse_cloudwatch
from powertrip.sources.eventbridge import is_eventbridge_event, parse_eventbridge
from powertrip.sources.syslog import event_from_text
from powertrip.zones import CLOCK_SKEW

SOURCE = "sns"
MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
# arn:<partition>:sns:<region>:<account>:<topic> (AWS General Reference, "Amazon Resource Names").
_TOPIC_REGION = re.compile(r"arn:aws(?:-[a-z]+)*:sns:([a-z]{2}(?:-[a-z]+)+-[0-9]+):[0-9]{12}:[^:]+")
# What may follow the host: the default port spelt out at most, then a path or query of visible
# ASCII without a backslash (which some URL parsers read as `/`, ending the host early).
_AFTER_HOST = r"(?::443)?[/?][!-\[\]-~]*"
_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_KEYS["UnsubscribeConfirmation"] = _SIGNED_KEYS["SubscriptionConfirmation"]

HttpGet = Callable[[str], Awaitable[bytes]]

# SNS's default HTTP(S) delivery policy retries for about a minute; a topic with a custom policy
# that retries for longer needs POWERTRIP_SNS_MAX_AGE raised to match.
DEFAULT_MAX_AGE = timedelta(hours=1)
# One certificate per region and key rotation: a handful. The cap bounds memory whatever URLs
# (all on sns.<region>.amazonaws.com) signed-looking messages name.
CERTIFICATES_CACHED = 32
CERTIFICATE_TTL = timedelta(hours=24)


class SnsRejected(PayloadError):
    """The message is not provably from a trusted topic (HTTP 403)."""


class SnsMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    Type: Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
    MessageId: str = Field(min_length=1)
    TopicArn: str = Field(min_length=1)
    Message: str
    Timestamp: str
    SignatureVersion: Literal["1", "2"]
    Signature: str = Field(min_length=1)
    SigningCertURL: str
    Subject: str | None = None
    SubscribeURL: str | None = None
    Token: str | None = None


def parse_sns_message(payload: Any, header_type: str | None) -> SnsMessage:
    if not isinstance(payload, dict):
        raise PayloadError("expected an SNS message (a JSON object)")
    kind = payload.get("Type")
    if kind not in MESSAGE_TYPES:
        raise PayloadError(
            f"unknown SNS message type {kind!r}: expected one of {', '.join(MESSAGE_TYPES)}"
        )
    if header_type and header_type != kind:
        raise PayloadError(f"x-amz-sns-message-type {header_type!r} disagrees with Type {kind!r}")
    try:
        return SnsMessage.model_validate(payload)
    except ValidationError as exc:
        raise PayloadError(f"malformed SNS message: {describe_validation_error(exc)}") from exc


def sns_host(topic_arn: str) -> str | None:
    """The SNS endpoint of a topic's region: `sns.<region>.amazonaws.com`, in China
    `sns.<region>.amazonaws.com.cn` (AWS General Reference, "Amazon SNS endpoints"); None for an
    ARN that names no SNS topic."""
    found = _TOPIC_REGION.fullmatch(topic_arn)
    if found is None:
        return None
    region = found.group(1)
    return f"sns.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


def check_aws_url(url: str, what: str, topic_arn: str) -> None:
    """Only `https://sns.<region>.amazonaws.com/...` of the topic's region is SNS (the form SNS
    sends `SigningCertURL` and `SubscribeURL` in: https://docs.aws.amazon.com/sns/latest/dg/
    sns-message-and-json-formats.html); anything else is refused unfetched (SnsRejected).

    Matched as text, not parsed: a parser's leniency (a port `:abc`, `:0` or `:99999`, a `user@`,
    a backslash, a tab or line break it drops, a `[` it reads as IPv6) is where what we check and
    what the HTTP client fetches could part, and where a parser raises instead of answering."""
    host = sns_host(topic_arn)
    if host is None or not re.fullmatch(f"https://{re.escape(host)}{_AFTER_HOST}", url):
        expected = f"https://{host or 'sns.<region>.amazonaws.com'}/"
        raise SnsRejected(f"{what} must be an {expected} URL (the topic's region), got {url!r}")


def string_to_sign(message: SnsMessage) -> bytes:
    values = message.model_dump()
    lines = []
    for key in _SIGNED_KEYS[message.Type]:
        value = values.get(key)
        if value is not None:
            lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode()


async def httpx_get(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.content


class SnsVerifier:
    """Verifies signatures with cached signing certificates and confirms subscriptions.

    `http_get` is injectable so tests use a locally generated key and certificate, no network.
    """

    def __init__(
        self,
        http_get: HttpGet = httpx_get,
        max_age: timedelta = DEFAULT_MAX_AGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.http_get = http_get
        self.max_age = max_age
        self.clock = clock
        self._certificates: TTLCache[str, x509.Certificate] = TTLCache(
            maxsize=CERTIFICATES_CACHED, ttl=CERTIFICATE_TTL.total_seconds()
        )

    @property
    def cached_certificates(self) -> int:
        return len(self._certificates)

    async def verify(self, message: SnsMessage, allowed_topics: list[str]) -> None:
        if message.TopicArn not in allowed_topics:
            raise SnsRejected(
                f"topic {message.TopicArn!r} is not configured (POWERTRIP_SNS_TOPIC_ARNS)"
            )
        check_aws_url(message.SigningCertURL, "SigningCertURL", message.TopicArn)
        certificate = await self._certificate(message.SigningCertURL)
        now = self.clock()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsRejected("the SNS signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected("the SNS signing certificate does not hold an RSA key")
        try:
            signature = base64.b64decode(message.Signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SnsRejected("Signature is not base64") from exc
        # SignatureVersion 1 is SHA1: weak, but what SNS still sends unless the topic opts into 2.
        digest = hashes.SHA1() if message.SignatureVersion == "1" else hashes.SHA256()
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), digest)
        except InvalidSignature as exc:
            raise SnsRejected("SNS signature does not verify") from exc
        self._check_fresh(message, now)

    def _check_fresh(self, message: SnsMessage, now: datetime) -> None:
        """The signed `Timestamp` (when SNS published the message) bounds replays."""
        try:
            sent = datetime.fromisoformat(message.Timestamp.replace("Z", "+00:00"))
        except ValueError as exc:
            raise SnsRejected(f"Timestamp {message.Timestamp!r} is not an ISO 8601 time") from exc
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
        if sent > now + CLOCK_SKEW:
            raise SnsRejected(f"Timestamp {message.Timestamp} is in the future")
        if now - sent > self.max_age:
            raise SnsRejected(
                f"Timestamp {message.Timestamp} is older than {self.max_age} "
                "(POWERTRIP_SNS_MAX_AGE): a stale or replayed message"
            )

    async def confirm(self, message: SnsMessage) -> None:
        if not message.SubscribeURL:
            raise PayloadError("SubscriptionConfirmation without a SubscribeURL")
        check_aws_url(message.SubscribeURL, "SubscribeURL", message.TopicArn)
        try:
            await self.http_get(message.SubscribeURL)
        except httpx.HTTPError as exc:
            raise PayloadError(f"confirming the subscription failed: {exc}") from exc

    async def _certificate(self, url: str) -> x509.Certificate:
        cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            pem = await self.http_get(url)
            certificate = x509.load_pem_x509_certificate(pem)
        except (httpx.HTTPError, ValueError) as exc:
            raise SnsRejected(f"cannot load the SNS signing certificate: {exc}") from exc
        self._certificates[url] = certificate
        return certificate


def parse_notification(
    message: SnsMessage,
    cloudtrail_topics: Collection[str] = (),
    cloudtrail_groups: Collection[str] = (),
) -> list[ParsedItem]:
    """What a topic relays: CloudWatch Logs subscription data (wire or decoded form), EventBridge
    events, or a text line (syslog framing parsed), keyed by the SNS MessageId.

    Trust comes from the transport, never from the content: CloudTrail records are trusted as
    such only from a topic in `cloudtrail_topics`, the one thing SNS vouches for (it signs the
    `TopicArn`). CloudWatch data's `logGroup` is what whoever published to the topic wrote, so on
    any other topic a group in `cloudtrail_groups` trusts nothing; on a CloudTrail topic the
    group must be listed too (a forwarder relaying several groups there)."""
    body: Any = None
    if message.Message.lstrip().startswith(("{", "[")):
        try:
            body = jsontext.loads(message.Message)
        except jsontext.JsonError:
            body = None
    trusted = message.TopicArn in cloudtrail_topics
    if isinstance(body, dict) and ("awslogs" in body or "logEvents" in body):
        return parse_cloudwatch(body, cloudtrail_groups if trusted else ())
    if is_eventbridge_event(body):
        return parse_eventbridge(body, cloudtrail=trusted)
    try:
        received = datetime.fromisoformat(message.Timestamp.replace("Z", "+00:00"))
    except ValueError:
        received = None
    # The topic's own metadata wins over the message's JSON.
    fields = {
        **(body if isinstance(body, dict) else {}),
        "TopicArn": message.TopicArn,
        "Subject": message.Subject,
    }
    try:
        raw = event_from_text(
            message.Message, SOURCE, message.MessageId, received_at=received, fields=fields
        )
    except ValidationError as exc:
        return [invalid(0, describe_validation_error(exc), message.Message)]
    return [ParsedItem(index=0, raw=raw)]
