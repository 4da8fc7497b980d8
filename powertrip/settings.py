"""Process settings from `POWERTRIP_*` environment variables: the only place they are read."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from powertrip.durations import Duration
from powertrip.hosts import HostMatch

FAKE_SLACK_TOKEN = "xoxb-powertrip-local-fake"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com"
MAX_CACHED_WORKFLOWS = 1000


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


API_SECRETS = ("webhook_token", "api_token", "slack_signing_secret", "decision_key")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POWERTRIP_", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = Field(default=None, description="Client certificate (mTLS).")
    temporal_tls_key: Path | None = Field(default=None, description="Client key (mTLS).")
    temporal_tls_ca: Path | None = Field(
        default=None, description="CA that signed the server certificate (self-hosted TLS)."
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="Expected server name if it differs from the address host."
    )
    task_queue: str = "powertrip"

    slack_bot_token: SecretStr = SecretStr(FAKE_SLACK_TOKEN)
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="API: verifies Slack's interaction requests."
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Base URL of the Slack Web API."
    )
    security_channel: str | None = Field(
        default=None, description="Overrides `security_channel` in the config file."
    )
    decision_key: SecretStr | None = Field(
        default=None,
        description="API and worker: the API signs every decision from Slack with it before it "
        "reaches a workflow, which verifies it (powertrip.signing). At least 32 characters. "
        "Never give it to CLI operators.",
    )
    decision_key_previous: SecretStr | None = Field(
        default=None,
        description="Worker: also accepted while a new POWERTRIP_DECISION_KEY rolls out.",
    )
    cli_decision_key: SecretStr | None = Field(
        default=None,
        description="CLI (`events approve`) and worker: signs the security team's overrides, "
        "which can only be `via: cli` decisions. At least 32 characters; not the API's key.",
    )
    cli_decision_key_previous: SecretStr | None = Field(
        default=None,
        description="Worker: also accepted while a new POWERTRIP_CLI_DECISION_KEY rolls out.",
    )

    # Paging (activities/pagerduty.py). Without a routing key, pages are recorded as skipped.
    pagerduty_routing_key: SecretStr | None = Field(
        default=None,
        description="Worker: the Integration Key of an Events API v2 integration on the "
        "PagerDuty service that pages on-call.",
    )
    pagerduty_events_url: str = Field(
        default=PAGERDUTY_EVENTS_URL,
        description="Base URL of the Events API v2 (https; `/v2/enqueue` is added), e.g. a local "
        "fake's.",
    )
    pagerduty_ca_file: Path | None = Field(
        default=None,
        description="PEM certificates to trust for the Events API instead of the system's "
        "(a local fake's self-signed one, or a TLS-inspecting proxy's).",
    )

    config: Path | None = Field(default=None, description="Path to the YAML config file.")
    webhook_token: SecretStr | None = Field(
        default=None, description="API: the shared secret of every webhook without its own."
    )
    # Each source may have its own secret; unset, it falls back to POWERTRIP_WEBHOOK_TOKEN.
    webhook_token_papertrail: SecretStr | None = None
    webhook_token_cloudwatch: SecretStr | None = None
    webhook_token_sns: SecretStr | None = None
    webhook_token_eventbridge: SecretStr | None = None
    webhook_token_json: SecretStr | None = None
    webhook_token_wazuh: SecretStr | None = None
    sns_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SNS topics whose messages and subscription confirmations are accepted "
        "(comma-separated ARNs).",
    )
    sns_max_age: Duration = Field(
        default=timedelta(hours=1),
        description="SNS messages whose signed Timestamp is older are refused (replays); raise "
        "it for a topic whose delivery policy retries for longer.",
    )
    cloudtrail_sns_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SNS topics that carry CloudTrail (EventBridge events, CloudWatch data of the "
        "CloudTrail log groups): only their CloudTrail records are trusted as CloudTrail "
        "(comma-separated ARNs, also in SNS_TOPIC_ARNS).",
    )
    cloudtrail_log_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CloudWatch Logs groups a trail writes to: only their CloudTrail records are "
        "trusted as CloudTrail; in any other group such a line is ordinary JSON (comma-separated).",
    )
    api_token: SecretStr | None = Field(
        default=None, description="API: bearer token for reading the record (/v1)."
    )
    api_write_token: SecretStr | None = Field(
        default=None,
        description="API: bearer token for what changes the record over HTTP (creating and "
        "revoking expectations); unset: those routes answer 403. Kept apart from the API "
        "token so that a HIDS holding the read token cannot pre-approve work.",
    )
    # Polling and `powertrip backfill --source papertrail` read Papertrail's search API.
    papertrail_api_token: SecretStr | None = None
    papertrail_api_url: str = "https://papertrailapp.com/api/v1/"
    # CloudWatch Logs polling and backfill take credentials and region from the standard AWS
    # environment (boto3's default chain: AWS_PROFILE, AWS_ACCESS_KEY_ID, instance roles, ...).
    aws_endpoint_url: str | None = Field(
        default=None, description="CloudWatch Logs API endpoint; unset: AWS's own for the region."
    )
    max_body_bytes: int = Field(default=5_000_000, gt=0)
    max_records_per_request: int = Field(
        default=10_000,
        gt=0,
        description="Webhooks: most records one request may carry (413 above). CloudWatch Logs "
        "batches hold at most 10,000 log events (PutLogEvents), so its deliveries always fit.",
    )
    start_concurrency: int = Field(default=64, gt=0, description="Workflow starts in flight.")
    temporal_ui_url: str = "http://localhost:8233"
    host_match: HostMatch = Field(
        default=HostMatch.FQDN,
        description="How /v1 compares hosts: `fqdn` (full name) or `short` (first label).",
    )

    public_url: str | None = Field(
        default=None,
        description="Where people's browsers reach the API (step-up and passkey pages), e.g. "
        "`https://powertrip.example.com`; its host is the WebAuthn relying-party id. https, or "
        "http only on localhost (browsers treat it as a secure context).",
    )
    step_up_link_seconds: int = Field(
        default=300, gt=0, le=3600, description="How long a step-up (approve) link is valid."
    )
    passkey_link_seconds: int = Field(
        default=900, gt=0, le=86400, description="How long a passkey registration link is valid."
    )

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    metrics_bind: str | None = Field(
        default=None,
        description="Worker: host:port of its Prometheus endpoint (Temporal SDK + Powertrip).",
    )
    graceful_shutdown_seconds: float = Field(
        default=30.0, ge=0, description="Worker: how long in-flight activities get on SIGTERM."
    )
    max_cached_workflows: int = Field(
        default=MAX_CACHED_WORKFLOWS,
        ge=0,
        description="Worker: workflow runs kept in memory between their tasks (Temporal's sticky "
        "cache). A run evicted from it is rebuilt by replaying its whole history when its next "
        "task (a reminder, a click) comes. Size it to the approvals pending at once; each costs "
        "memory (bench/README.md).",
    )
    workflow_sandbox: bool = Field(
        default=False,
        description="Worker: run workflow code in the Temporal SDK's sandbox, which fails a "
        "workflow task that reads the clock, randomness or files, at the cost of re-running "
        "each workflow's module for every run it starts (a third of the worker's CPU: "
        "bench/README.md). Off by default: the in-process tests run every workflow sandboxed "
        "(tests/harness.py) and the replay tests replay every recorded history both ways; turn "
        "it on while changing workflow code.",
    )

    @field_validator("temporal_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        # The SDK refuses anything else only when a command first connects, as a ValueError
        # ("invalid target URL") that names no setting.
        text = value.strip()
        host, _, port = text.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]") and len(host) > 2  # [::1]
        plain = bool(host) and not any(c in host for c in ":/[]@ \t")
        if not (
            (bracketed or plain) and port.isascii() and port.isdigit() and 0 < int(port) < 65536
        ):
            raise ValueError(
                f"{value!r} is no Temporal frontend address: give host:port, e.g. localhost:7233"
            )
        return text

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto base_url and needs the trailing slash.
        return value if value.endswith("/") else value + "/"

    @field_validator("public_url")
    @classmethod
    def _secure_origin(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = urlsplit(value.strip())
        local = url.hostname in ("localhost", "127.0.0.1", "::1")
        if url.scheme != "https" and not (url.scheme == "http" and local):
            # WebAuthn only runs in a secure context: https, or http on this machine.
            raise ValueError("must be https:// (http:// only for localhost)")
        if not url.hostname or url.query or url.fragment or url.username or url.password:
            raise ValueError("must be a plain base URL such as https://powertrip.example.com")
        return value.strip().rstrip("/")

    @field_validator("pagerduty_events_url")
    @classmethod
    def _events_base_url(cls, value: str) -> str:
        # The documented endpoint is `.../v2/enqueue`; the client wants the base it is under.
        base = value.strip().rstrip("/").removesuffix("/v2/enqueue")
        if not base.startswith("https://"):
            raise ValueError("the Events API is reached over https:// only")
        return base

    @model_validator(mode="after")
    def _tls_files(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "POWERTRIP_TEMPORAL_TLS_CERT and POWERTRIP_TEMPORAL_TLS_KEY go together (mTLS)"
            )
        for name in (
            "temporal_tls_cert",
            "temporal_tls_key",
            "temporal_tls_ca",
            "pagerduty_ca_file",
        ):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"POWERTRIP_{name.upper()}: no such file: {path}")
        # Said by name here: at connect the SDK says only `PrivateKeyParseError` or
        # `NoCertificatesPresented`, which read as Temporal being unreachable.
        for name, marker, what in (
            ("temporal_tls_cert", b"-----BEGIN CERTIFICATE-----", "PEM certificate"),
            ("temporal_tls_key", b"PRIVATE KEY-----", "PEM private key"),
            ("temporal_tls_ca", b"-----BEGIN CERTIFICATE-----", "PEM certificate"),
        ):
            path = getattr(self, name)
            if path is None:
                continue
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"POWERTRIP_{name.upper()}: cannot read {path}: {exc.strerror}"
                ) from exc
            if marker not in pem:
                raise ValueError(f"POWERTRIP_{name.upper()}: {path} holds no {what}")
        return self

    @field_validator(
        "sns_topic_arns", "cloudtrail_sns_topic_arns", "cloudtrail_log_groups", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [arn.strip() for arn in value.split(",") if arn.strip()]
        return value

    def require(self, *names: str, who: str) -> None:
        """Secrets only one service uses are checked by that service at start-up, so the CLI
        and the worker do not need the API's."""
        missing = [f"POWERTRIP_{name.upper()}" for name in names if getattr(self, name) is None]
        if missing:
            raise SettingsError(f"missing settings for the {who}: {', '.join(missing)}")

    def secret(self, name: str) -> str:
        value: SecretStr | None = getattr(self, name)
        if value is None:
            raise SettingsError(f"missing setting: POWERTRIP_{name.upper()}")
        return value.get_secret_value()

    def webhook_token_for(self, source: str) -> str:
        own: SecretStr | None = getattr(self, f"webhook_token_{source}", None)
        return own.get_secret_value() if own else self.secret("webhook_token")

    @property
    def uses_fake_slack(self) -> bool:
        return self.slack_bot_token.get_secret_value() == FAKE_SLACK_TOKEN


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            # A check across fields (TLS files) has no location; its message names them.
            f"POWERTRIP_{str(e['loc'][0]).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc


@lru_cache
def get_settings() -> Settings:
    return load_settings()
