"""Test helpers."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.settings import Settings
from powertrip.sources.sns import (
    SnsMessage,
    SnsVerifier,
    string_to_sign,
)
from tests.harness import (
    settings_with_config,
)
from tests.servers import ServedApp

TOPIC = "arn:aws:sns:eu-west-1:123456789012:powertrip-logs"


CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem"


EXTRA = """
rule_packs: [sshd, sudo, cloudtrail, custom-example]
sources:
  eventbridge: {ignore_unmatched: true}
"""


@dataclass
class FakeAws:
    """Serves the signing certificate and subscription confirmations; records every fetch."""

    key: rsa.RSAPrivateKey
    pem: bytes
    fetched: list[str] = field(default_factory=list)

    async def get(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.pem if url.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"

    def sign(self, message: dict[str, Any]) -> dict[str, Any]:
        unsigned = {**message, "Signature": "x"}
        digest = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        data = string_to_sign(SnsMessage.model_validate(unsigned))
        signature = self.key.sign(data, padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}


def make_fake_aws() -> FakeAws:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return FakeAws(key=key, pem=cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Served:
    http: httpx.AsyncClient
    settings: Settings
    aws: FakeAws
    http_app: Any = None


@asynccontextmanager
async def serving(
    env: WorkflowEnvironment, slack_api_url: str, folder: Path, config_yaml: str, **more: Any
) -> AsyncIterator[Served]:
    """The API with `config_yaml`, trusting SNS topic TOPIC (secret `sns-secret`) with its
    signatures checked against a local fake AWS; `more` settings on top."""
    more = {"sns_topic_arns": [TOPIC], "webhook_token_sns": "sns-secret", **more}
    settings = settings_with_config(env, slack_api_url, folder, config_yaml, **more)
    aws = make_fake_aws()
    app = create_app(settings)
    app.state.sns_verifier = SnsVerifier(http_get=aws.get)
    async with (
        ServedApp(app) as running,
        httpx.AsyncClient(base_url=running.url, timeout=20) as http,
    ):
        yield Served(http, settings, aws, app)


def bearer(token: str = "hook-secret") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique() -> str:
    return uuid.uuid4().hex[:10]


def subscription(*events: dict[str, Any], stream: str = "i-0abc") -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/var/log/secure",
        "logStream": stream,
        "subscriptionFilters": ["powertrip"],
        "logEvents": list(events),
    }


def log_event(message: str, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or unique(), "timestamp": 1795741323000, "message": message}


def sns_time(at: datetime | None = None) -> str:
    """SNS's Timestamp format (when the topic published the message)."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(message: str, version: str = "1", topic: str = TOPIC) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Subject": "logs",
        "Message": message,
        "Timestamp": sns_time(),
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


async def post_sns(served: Served, message: dict[str, Any]) -> httpx.Response:
    return await served.http.post(
        "/webhooks/sns?token=sns-secret",
        content=json.dumps(message),
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": message["Type"],
        },
    )


def cloudtrail_login(event_id: str, user: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS Console Sign In via CloudTrail",
        "source": "aws.signin",
        "account": "123456789012",
        "time": "2026-11-27T01:02:04Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "arn": f"arn:aws:iam::123456789012:user/{user}",
                "accountId": "123456789012",
                "userName": user,
            },
            "eventTime": "2026-11-27T01:02:03Z",
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.20",
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MFAUsed": "Yes"},
            "eventID": event_id,
            "eventType": "AwsConsoleSignIn",
            "recipientAccountId": "123456789012",
        },
    }
